"""Selective prediction: how the error falls when a classifier may abstain on its least confident inputs.

Problem: accuracy and calibration say nothing about whether a model's confidence *ranks* its
inputs well, which is what matters when low-confidence cases are sent to a person instead.
Idea: sort the inputs by confidence, most confident first; covering the top n of N inputs has
coverage n / N and selective risk (errors among them) / n. The risk-coverage curve plots that
risk at every coverage, and its area, AURC = (1/N) sum_{n=1..N} risk(n), is low when mistakes
sit at the bottom of the ranking (Geifman & El-Yaniv 2017, "Selective Classification for Deep
Neural Networks"; AURC as in Geifman, Uziel & El-Yaniv 2019, "Bias-Reduced Uncertainty
Estimation for Deep Neural Classifiers").

Ties in confidence are broken by input order (a stable sort), so every function here is
deterministic; a confidence that ties everything gives AURC equal to the mean of the
cumulative error rates in input order.
"""

from __future__ import annotations

import math

import torch

from deepstrata.errors import UserError


def _check(confidence: torch.Tensor, correct: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(confidence, torch.Tensor) and isinstance(correct, torch.Tensor)):
        raise UserError(f"{where} expects tensors confidence (N,) and correct (N,), got {type(confidence).__name__} and {type(correct).__name__}")
    if confidence.dim() != 1 or correct.shape != confidence.shape or confidence.numel() == 0:
        raise UserError(f"{where} expects confidence and correct of the same shape (N,) with N >= 1, got {tuple(confidence.shape)} and {tuple(correct.shape)}")
    if not bool(torch.isfinite(confidence.double()).all()):
        raise UserError(f"{where}: confidence holds NaN or infinite values")
    return confidence.detach().cpu().double(), correct.detach().cpu().bool()


def risk_coverage_curve(confidence: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(coverage, risk), each (N,) float64: the n most confident inputs cover n/N and err at `risk[n-1]`.

    confidence: (N,) higher = more sure. correct: (N,) bool, whether each prediction is right.
    """
    conf, ok = _check(confidence, correct, "risk_coverage_curve")
    order = torch.sort(conf, descending=True, stable=True).indices
    errors = (~ok[order]).double().cumsum(0)  # (N,) errors among the top n
    n = torch.arange(1, len(conf) + 1, dtype=torch.float64)
    return n / len(conf), errors / n


def aurc(confidence: torch.Tensor, correct: torch.Tensor) -> float:
    """Area under the risk-coverage curve: the mean of the selective risks at coverage 1/N, 2/N, ..., 1."""
    _, risk = risk_coverage_curve(confidence, correct)
    return float(risk.mean())


def risk_at_coverage(confidence: torch.Tensor, correct: torch.Tensor, coverage: float) -> float:
    """Selective risk when the ceil(coverage * N) most confident inputs are answered (coverage in (0, 1])."""
    if not 0.0 < coverage <= 1.0:
        raise UserError(f"risk_at_coverage: coverage must lie in (0, 1], got {coverage}")
    _, risk = risk_coverage_curve(confidence, correct)
    n = max(1, math.ceil(coverage * len(risk) - 1e-9))  # 0.9 * 10 is 9.000000000000002 in floats
    return float(risk[n - 1])


def optimal_aurc(correct: torch.Tensor) -> float:
    """The AURC of a perfect ranking (every error last) at the same accuracy: what the ranking can reach."""
    ok = correct.detach().cpu().bool()
    return aurc(ok.double(), ok)
