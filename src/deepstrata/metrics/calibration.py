"""Calibration: does a classifier's confidence match how often it is right?

Problem: accuracy says nothing about whether a predicted "0.99" means 99%. A model used to
decide (defer to a human, flag an input) needs confidences that are frequencies, and modern
networks are overconfident (Guo et al. 2017, "On Calibration of Modern Neural Networks").
Idea: sort predictions into confidence bins and compare, in each bin, the mean confidence with
the accuracy. The expected calibration error (ECE, Naeini et al. 2015) is their gap weighted by
the bin's share of samples; the maximum calibration error (MCE) is the worst bin's gap. Bins are
equal-width ([0, 1/B), ...; torchmetrics' and Guo et al.'s choice) or equal-mass (each holds N/B
predictions, Nixon et al. 2019, "Measuring Calibration in Deep Learning"). Classwise ECE (Kull
et al. 2019) applies the binning to every class's probability, not only the top one. The proper
scoring rules need no bins: negative log-likelihood and the Brier score (Brier 1950).

All functions take probabilities `probs` (N, K) that sum to one per row and integer `labels`
(N,), and return Python floats; `reliability_bins` returns the per-bin table a reliability
diagram draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_metric

Binning = Literal["width", "mass"]


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics: `edges` (B+1,), and per bin `count`, `confidence` (mean), `accuracy`.

    Empty bins have count 0 and confidence = accuracy = 0 (they add nothing to the ECE).
    """

    edges: torch.Tensor
    count: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor

    @property
    def gaps(self) -> torch.Tensor:
        return (self.accuracy - self.confidence).abs()

    def rows(self) -> list[dict[str, float]]:
        """One plain dict per non-empty bin, for a result table."""
        return [
            {"low": float(self.edges[i]), "high": float(self.edges[i + 1]), "count": int(self.count[i]), "confidence": float(self.confidence[i]), "accuracy": float(self.accuracy[i])}
            for i in range(len(self.count))
            if int(self.count[i]) > 0
        ]


def check_probabilities(probs: torch.Tensor, labels: torch.Tensor, *, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 probabilities (N, K) and long labels (N,), or a UserError naming the mismatch."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or not probs.is_floating_point():
        got = f"shape {tuple(probs.shape)} dtype {probs.dtype}" if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise UserError(f"{where} expected probs as a floating-point tensor of shape (N, K), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point() or labels.dtype is torch.bool:
        got = f"shape {tuple(labels.shape)} dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise UserError(f"{where} expected labels as an integer tensor of shape (N,), got {got}")
    if probs.shape[0] != labels.shape[0] or probs.shape[0] == 0:
        raise UserError(f"{where} expected probs (N, K) and labels (N,) for the same N > 0 samples, got {tuple(probs.shape)} and {tuple(labels.shape)}")
    p = probs.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu", torch.long)
    if not bool(torch.isfinite(p).all()) or float(p.min()) < 0 or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=torch.float64), atol=1e-4):
        raise UserError(f"{where} expected probabilities (rows >= 0 summing to 1); apply softmax to logits first")
    if int(y.min()) < 0 or int(y.max()) >= p.shape[1]:
        raise UserError(f"{where} expected labels in [0, {p.shape[1]}), got values from {int(y.min())} to {int(y.max())}")
    return p, y


def _bin_index(confidence: torch.Tensor, n_bins: int, binning: Binning) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin of each confidence and the bin edges.

    Equal width, as torchmetrics' `MulticlassCalibrationError`: bin b holds [b/B, (b+1)/B) and a
    confidence of exactly 1 (a float32 softmax saturates there) forms one more bin of its own,
    [1, 1], so there are B + 1 slots. Equal mass: sorted confidences cut into B groups of (nearly)
    equal size; tied confidences may straddle a cut.
    """
    if n_bins < 1:
        raise UserError(f"calibration needs n_bins >= 1, got {n_bins}")
    if binning == "width":
        edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        index = torch.bucketize(confidence.contiguous(), edges, right=True) - 1  # 0 .. n_bins (exactly 1.0)
        return index, torch.cat([edges, edges[-1:]])
    if binning == "mass":
        order = confidence.argsort(stable=True)
        index = torch.empty_like(order)
        index[order] = torch.arange(len(order)) * n_bins // len(order)
        sorted_conf = confidence[order]
        cuts = (torch.arange(1, n_bins + 1) * len(order) + n_bins - 1) // n_bins - 1  # last member of each bin
        edges = torch.cat([sorted_conf[:1], sorted_conf[cuts.clamp(0, len(order) - 1)]])
        return index, edges
    raise UserError(f"binning must be 'width' or 'mass', got {binning!r}")


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, *, n_bins: int = 15, binning: Binning = "width") -> ReliabilityBins:
    """Count, mean confidence and accuracy per bin for `confidence` (N,) and `correct` (N,) in {0, 1}."""
    c = confidence.detach().to("cpu", torch.float64)
    hit = correct.detach().to("cpu", torch.float64)
    index, edges = _bin_index(c, n_bins, binning)
    slots = len(edges) - 1
    count = torch.bincount(index, minlength=slots).to(torch.float64)
    safe = count.clamp_min(1)
    conf = torch.zeros(slots, dtype=torch.float64).index_add_(0, index, c) / safe
    acc = torch.zeros(slots, dtype=torch.float64).index_add_(0, index, hit) / safe
    return ReliabilityBins(edges, count.long(), conf, acc)


def top_label(probs: torch.Tensor, labels: torch.Tensor, *, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    p, y = check_probabilities(probs, labels, where=where)
    conf, pred = p.max(dim=1)
    return conf, (pred == y).to(torch.float64)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 15, binning: Binning = "width") -> float:
    """ECE of the top-label confidence: sum over bins of |accuracy - confidence| x (bin count / N)."""
    conf, correct = top_label(probs, labels, where="expected_calibration_error")
    bins = reliability_bins(conf, correct, n_bins=n_bins, binning=binning)
    return float((bins.gaps * bins.count).sum() / len(conf))


def ece_floor(probs: torch.Tensor, *, n_bins: int = 15, binning: Binning = "width", draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many samples.

    ECE is a biased estimator: with N samples, a bin's accuracy differs from its confidence by
    chance, so even a calibrated model scores above 0, by about sqrt(c(1 - c) / n) per bin.
    Consistency resampling (Broecker & Smith 2007, "Increasing the reliability of reliability
    diagrams") measures that floor: draw each prediction's correctness as Bernoulli(its
    confidence), which is calibrated by construction, and average the ECE over `draws` draws.
    An ECE near its floor cannot be told from perfect calibration on this test set, and a
    before/after ratio is bounded by ECE_before / floor.
    """
    p = probs.detach().to("cpu", torch.float64)
    if p.ndim != 2 or len(p) == 0:
        raise UserError(f"ece_floor: probabilities must have shape (N, K) with N > 0, got {tuple(p.shape)}")
    conf = p.max(dim=1).values
    index, edges = _bin_index(conf, n_bins, binning)
    g = torch.Generator().manual_seed(seed)
    hits = torch.bernoulli(conf.expand(draws, -1), generator=g)  # (draws, N), calibrated by construction
    gap = torch.zeros(draws, len(edges) - 1, dtype=torch.float64).index_add_(1, index, hits - conf)
    return float((gap.abs().sum(dim=1) / len(conf)).mean())


def maximum_calibration_error(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 15, binning: Binning = "width") -> float:
    """MCE: the largest |accuracy - confidence| over the non-empty bins."""
    conf, correct = top_label(probs, labels, where="maximum_calibration_error")
    bins = reliability_bins(conf, correct, n_bins=n_bins, binning=binning)
    return float(bins.gaps[bins.count > 0].max())


def classwise_calibration_error(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 15, binning: Binning = "width") -> float:
    """Classwise ECE (Kull et al. 2019): the mean over classes k of the ECE of p_k against [y == k]."""
    p, y = check_probabilities(probs, labels, where="classwise_calibration_error")
    total = 0.0
    for k in range(p.shape[1]):
        bins = reliability_bins(p[:, k], (y == k).to(torch.float64), n_bins=n_bins, binning=binning)
        total += float((bins.gaps * bins.count).sum() / len(y))
    return total / p.shape[1]


def negative_log_likelihood(probs: torch.Tensor, labels: torch.Tensor, *, eps: float = 1e-12) -> float:
    """Mean -log p(y | x); probabilities are clamped at `eps` so a confident mistake is finite."""
    p, y = check_probabilities(probs, labels, where="negative_log_likelihood")
    return float(-p[torch.arange(len(y)), y].clamp_min(eps).log().mean())


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over samples of sum_k (p_k - [y == k])^2 (Brier 1950; 0 is perfect, 2 the worst)."""
    p, y = check_probabilities(probs, labels, where="brier_score")
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(torch.float64)
    return float(((p - onehot) ** 2).sum(1).mean())


def calibration_report(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 15) -> dict[str, float]:
    """Every measure at once: accuracy, ece (width bins), ece_mass, mce, classwise_ece, nll, brier."""
    conf, correct = top_label(probs, labels, where="calibration_report")
    return {
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(probs, labels, n_bins=n_bins, binning="width"),
        "ece_mass": expected_calibration_error(probs, labels, n_bins=n_bins, binning="mass"),
        "mce": maximum_calibration_error(probs, labels, n_bins=n_bins),
        "classwise_ece": classwise_calibration_error(probs, labels, n_bins=n_bins),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
    }


@register_metric("ece")
def ece(*, num_classes: int, n_bins: int = 15) -> object:
    """Expected calibration error of the top-label confidence, equal-width bins (torchmetrics)."""
    from torchmetrics.classification import MulticlassCalibrationError

    return MulticlassCalibrationError(num_classes=num_classes, n_bins=n_bins, norm="l1")


def reliability_figure(bins: ReliabilityBins, *, title: str = "") -> object:
    """A reliability diagram: accuracy per bin against the diagonal, with each bin's count on its bar."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    centres = ((bins.edges[:-1] + bins.edges[1:]) / 2).numpy()
    widths = (bins.edges[1:] - bins.edges[:-1]).numpy()
    shown = bins.count.numpy() > 0
    ax.bar(centres[shown], bins.accuracy.numpy()[shown], width=widths[shown] * 0.95, color="#4c72b0", edgecolor="white", label="accuracy")
    ax.bar(centres[shown], (bins.confidence - bins.accuracy).numpy()[shown], bottom=bins.accuracy.numpy()[shown], width=widths[shown] * 0.95, color="#dd8452", alpha=0.5, label="gap to confidence")
    for x, a, n in zip(centres[shown], bins.accuracy.numpy()[shown], bins.count.numpy()[shown]):
        ax.text(x, min(a, 0.93) + 0.02, str(int(n)), ha="center", fontsize=6, rotation=90)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return fig
