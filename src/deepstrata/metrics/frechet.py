"""Fréchet distance between feature distributions: sample quality measured by a classifier.

Problem: a likelihood says little about how samples look, and inspecting grids by eye does
not scale or compare.
Idea: embed real and generated images with a trained classifier's penultimate layer, fit a
Gaussian to each set of features and compute the Fréchet (2-Wasserstein) distance
||mu_r - mu_g||² + Tr(S_r + S_g - 2 (S_r S_g)^½). With Inception-v3 features this is FID
(Heusel et al. 2017); here the features come from a small digit classifier trained on the
same data, so values compare between models of this toolkit, not with published FIDs.
The real-vs-real distance (two disjoint held-out halves) is the floor to compare against.
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"frechet features must be (N, D) with N >= 2, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(cov1 + cov2 - 2 (cov1 cov2)^½) between two Gaussians.

    Tr((cov1 cov2)^½) is computed as Σ √λ of the symmetric PSD matrix cov1^½ cov2 cov1^½ (same
    eigenvalues as cov1 cov2), which stays real and stable when the covariances are singular
    (dead ReLU features), where a general matrix square root warns and loses accuracy.
    """
    w1, v1 = np.linalg.eigh(cov1)
    half = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T  # cov1^½
    lam = np.linalg.eigvalsh(half @ cov2 @ half)
    tr_covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_covmean)


def frechet_from_features(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
