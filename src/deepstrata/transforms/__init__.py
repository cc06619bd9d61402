"""Data transforms and augmentations by name (images, batches, text, time series)."""
