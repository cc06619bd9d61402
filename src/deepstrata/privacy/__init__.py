"""Training that does not leak its data: DP-SGD on Opacus (dp_sgd.py), with Poisson sampling
(poisson.py) and models made compatible with per-sample gradients (compat.py)."""
