"""Run directories and the artifacts in them."""
