"""Federated learning: FedAvg and FedProx rounds, client splits, secure aggregation, DP-FedAvg (docs/privacy.md)."""
