"""Metrics by name (torchmetrics), logged as `<split>/<name>`."""
