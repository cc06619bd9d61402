"""Labs: small, measured experiments that show the textbook facts of deep learning."""
