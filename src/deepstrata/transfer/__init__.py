"""Transfer learning: start from trained weights, replace the head, and choose what keeps learning."""
