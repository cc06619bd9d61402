"""What a generative model produces: sample grids over training, interpolations, latent maps, likelihood curves.

Problem: a generative model's numbers (negative ELBO, bits/dim, both GAN losses) do not show
blurry samples, a collapsed mode, a latent space with holes or classes ignored by a
conditional model.
Idea: the report draws the samples saved during training (`samples/epoch_NNN.npy`, same noise
each time) as a grid per epoch, a scatter of samples over held-out points for 2-D data, the
per-epoch objective terms (in nats or bits/dim), and for VAEs a walk between two test images
in latent space and the decoder's 2-D latent map.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run

SAMPLES_DIR = "samples"


def image_grid(images: np.ndarray, *, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) images in [0, 1] -> one (rows*(H+pad), cols*(W+pad)[, C]) array.

    The gaps are 0: white under the reversed grey colour map used for ink-on-paper digits.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 4:
        x = x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)
    n = len(x)
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    h, w = x.shape[1:3]
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, *x.shape[3:]), dtype=np.float32)
    for i, img in enumerate(x):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return np.clip(grid, 0.0, 1.0)


def save_samples_png(samples: np.ndarray, path: Path, *, cols: int | None = None, title: str = "") -> Path:
    """Images -> a PNG grid (ink dark on white); 2-D points -> a scatter plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.6)
        ax.set_aspect("equal")
    else:
        grid = image_grid(samples, cols=cols)
        fig, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] / 20), max(2.0, grid.shape[0] / 20)))
        ax.imshow(grid, cmap="gray_r" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _is_generative(run: Run) -> bool:
    from deepstrata.tasks.generative import GenerativeTask

    try:
        return issubclass(run.task_class, GenerativeTask)
    except Exception:  # noqa: BLE001 - a run naming an unknown task has no generative section
        return False


def _conditional(run: Run) -> bool:
    return bool((run.config.get("model") or {}).get("num_classes"))


@register_report_section("generative_samples")
def generative_samples(run: Run) -> Section | None:
    """Samples saved during training (same noise every time): a grid per epoch, or scatter plots for 2-D data."""
    files = sorted((run.run_dir / SAMPLES_DIR).glob("epoch_*.npy"))
    if not _is_generative(run) or not files:
        return None
    import matplotlib.pyplot as plt

    shown = files if len(files) <= 4 else [files[i] for i in np.linspace(0, len(files) - 1, 4).round().astype(int)]
    arrays = [np.load(f, allow_pickle=False) for f in shown]
    epochs = [int(f.stem.split("_")[1]) for f in shown]
    fig, axes = plt.subplots(1, len(arrays), figsize=(3.2 * len(arrays), 3.4), squeeze=False)
    points = arrays[0].ndim == 2 and arrays[0].shape[1] == 2
    held_out = _held_out_points(run) if points else None
    for ax, arr, epoch in zip(axes[0], arrays, epochs):
        if points:
            if held_out is not None:
                ax.scatter(held_out[:, 0], held_out[:, 1], s=2, c="#bbbbbb", label="held-out")
            ax.scatter(arr[:, 0], arr[:, 1], s=2, c="#1f77b4", label="samples")
            ax.set_aspect("equal")
        else:
            cols = 10 if _conditional(run) else None
            grid = image_grid(arr, cols=cols)
            ax.imshow(grid, cmap="gray_r" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
        ax.set_title(f"epoch {epoch}", fontsize=9)
    if points:
        axes[0][0].legend(fontsize=7, loc="lower left")
    note = "Conditional models: one class per column (0, 1, ..., K-1)." if _conditional(run) else ""
    return Section("Samples over training", f"<p>Same noise at every epoch. {note}</p>" + figure_html(fig, alt="samples over training"), order=26)


def _held_out_points(run: Run) -> np.ndarray | None:
    """The run's test split for 2-D data (rebuilt through the Run; cheap for two moons)."""
    try:
        test = run.split("test")
    except Exception:  # noqa: BLE001 - the scatter is still useful without the reference points
        return None
    return np.stack([test[i][0].numpy() for i in range(len(test))])


@register_report_section("generative_likelihood")
def generative_likelihood(run: Run) -> Section | None:
    """Each objective term per epoch (train and validation): recon and KL, bits/dim, both GAN players."""
    epochs = run.scope("epoch")
    if not _is_generative(run) or not epochs:
        return None
    import matplotlib.pyplot as plt

    units = getattr(run.model(), "objective_units", None) if run.has_model else None
    terms = sorted({k.split("/", 1)[1] for r in epochs for k in r if k.startswith(("train/", "val/")) and k.split("/", 1)[1] not in ("lr",)})
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3.0), squeeze=False)
    for ax, term in zip(axes[0], terms):
        for split, style in (("train", "-"), ("val", "--")):
            pts = [(r["epoch"], r[f"{split}/{term}"]) for r in epochs if r.get(f"{split}/{term}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=2, label=split)
        ax.set_title(term + (f" ({units})" if units and term in ("loss", "recon", "kl") else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    test = run.test_metrics
    text = ", ".join(f"{k} = {v:.4f}" for k, v in sorted(test.items()))
    return Section("Objective terms per epoch", f"<p>Test: {text}</p>" + figure_html(fig, alt="objective terms per epoch"), order=24)


@register_report_section("vae_latent")
def vae_latent(run: Run) -> Section | None:
    """VAE only: interpolation between test images in latent space, and the decoded 2-D latent map."""
    if not _is_generative(run) or not run.has_model:
        return None
    from deepstrata.models.vae import VAE

    model = run.model()
    if not isinstance(model, VAE) or len(model.data_shape) != 3:  # the walk and the map decode a VAE's latent
        return None
    import matplotlib.pyplot as plt
    import torch

    exp_x, exp_y = _test_pair(run, model)
    parts = []
    with torch.no_grad():
        y = exp_y if model.conditional else None
        mu, _ = model.encode(exp_x, y)
        alphas = torch.linspace(0, 1, 10)
        rows = []
        for a_idx, b_idx in ((0, 1), (2, 3), (4, 5)):
            z = torch.stack([(1 - a) * mu[a_idx] + a * mu[b_idx] for a in alphas])
            labels = None if y is None else torch.where(alphas < 0.5, y[a_idx], y[b_idx])
            rows.append(model.mean(z, labels))
        grid = image_grid(torch.cat(rows).numpy(), cols=10)
        fig, ax = plt.subplots(figsize=(7, 2.4))
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        parts.append("<p>Linear paths between the latent means of pairs of test images (endpoints: their reconstructions).</p>" + figure_html(fig, alt="latent interpolation"))
        # 2-D latent map: the first two latent dimensions on a grid of N(0,1) quantiles, others 0.
        from scipy.stats import norm

        q = torch.tensor(norm.ppf(np.linspace(0.05, 0.95, 12)), dtype=torch.float32)
        z = torch.zeros(144, model.latent_dim)
        z[:, 0] = q.repeat(12)
        z[:, 1] = q.repeat_interleave(12)
        labels = torch.full((144,), int(exp_y[0])) if model.conditional else None
        grid = image_grid(model.mean(z, labels).numpy(), cols=12)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        parts.append("<p>Decoder over a 12x12 grid of the first two latent coordinates (normal quantiles 5%..95%, other coordinates 0).</p>" + figure_html(fig, alt="latent map"))
    return Section("Latent space", "".join(parts), order=27)


def _test_pair(run: Run, model: Any) -> tuple[Any, Any]:
    """Six test examples (x, y); grey levels binarised at 0.5 for a Bernoulli VAE, as it sees them."""
    import torch

    test = run.split("test")
    xs, ys = zip(*(test[i] for i in range(6)))
    x = torch.stack(xs)
    if model.likelihood == "bernoulli":
        x = (x > 0.5).float() if not bool(((x == 0) | (x == 1)).all()) else x
    return x, torch.stack(ys)
