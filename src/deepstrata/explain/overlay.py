"""Overlays: an attribution drawn over the input it explains, as a PNG or as highlighted text.

Problem: an attribution tensor is unreadable as numbers; it has to be seen over the image (or
the text) it explains, the same way for every method, so that methods can be compared side by
side, and text from a user must never turn into markup.
Idea: one heat map per image (the attribution summed over channels, resized to the image when
coarser, as `faithfulness.reduce_to_positions` ranks it). A map with negative values is drawn
with a diverging colour map centred on zero (red: evidence for the class, blue: against); a
non-negative map with a sequential one from its minimum; each position is as opaque as its
strength, over the dimmed image. The image is min-max scaled for display only. Figures are matplotlib `Figure`s (no pyplot state); text is an HTML fragment
whose every token is escaped, its background red or blue with an opacity proportional to
|score| / max |score|.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from deepstrata.explain.faithfulness import reduce_to_positions

ALPHA = 0.9  # opacity of the strongest position of a heat map over the image
DIM = 0.45  # the image under a map is drawn this bright, so that the map stands out


def display_image(x: torch.Tensor) -> np.ndarray:
    """One model input (C, H, W) -> an image for display: (H, W) grey or (H, W, 3) RGB in [0, 1]."""
    a = x.detach().float().cpu().numpy()
    a = (a - a.min()) / max(float(np.ptp(a)), 1e-12)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def heat_maps(attribution: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Attributions of an image batch x (N, C, H, W) -> heat maps (N, H, W), channels summed."""
    return reduce_to_positions(attribution, x).reshape(len(x), *x.shape[-2:]).cpu().numpy()


def _draw(ax, image: np.ndarray, heat: np.ndarray, title: str) -> None:
    """The image dimmed, and over it the map, each position as opaque as its strength (|value| / max |value|)."""
    from matplotlib import colormaps

    ax.imshow(image * DIM, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    if heat.min() < 0:
        limit = max(float(np.abs(heat).max()), 1e-12)
        rgba = colormaps["RdBu_r"]((heat / limit + 1.0) / 2.0)
        strength = np.abs(heat) / limit
    else:
        low, span = float(heat.min()), max(float(np.ptp(heat)), 1e-12)
        strength = (heat - low) / span
        rgba = colormaps["inferno"](strength)
    rgba[..., 3] = ALPHA * strength**0.7
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_figure(x: torch.Tensor, attribution: torch.Tensor, title: str = "") -> Figure:
    """One input (C, H, W) and its attribution (broadcasting against it): the input, and the map over it."""
    image = display_image(x)
    heat = heat_maps(attribution.unsqueeze(0), x.unsqueeze(0))[0]
    figure = Figure(figsize=(4.2, 2.3))
    left, right = figure.subplots(1, 2)
    left.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    left.set_title("input", fontsize=8)
    left.set_xticks([])
    left.set_yticks([])
    _draw(right, image, heat, title)
    return figure


def png_bytes(figure: Figure, *, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def grid_figure(
    x: torch.Tensor, attributions: Mapping[str, torch.Tensor | None], row_labels: Sequence[str], *, title: str = ""
) -> Figure:
    """Examples x methods: one row per input (its label on the left), one column per method; a None method is left blank."""
    methods = list(attributions)
    n = len(x)
    figure = Figure(figsize=(1.6 * (len(methods) + 1), 1.7 * n + 0.4), layout="constrained")
    axes = np.asarray(figure.subplots(n, len(methods) + 1, squeeze=False))
    heats = {m: (heat_maps(a, x) if a is not None else None) for m, a in attributions.items()}
    for i in range(n):
        image = display_image(x[i])
        axes[i, 0].imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        axes[i, 0].set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center")
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        if i == 0:
            axes[i, 0].set_title("input", fontsize=8)
        for j, method in enumerate(methods, start=1):
            heat = heats[method]
            if heat is None:
                axes[i, j].axis("off")
                continue
            _draw(axes[i, j], image, heat[i], method if i == 0 else "")
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def token_html(tokens: Sequence[str], scores: Sequence[float] | np.ndarray, *, title: str = "", separator: str = " ") -> str:
    """Tokens with their attributions as highlighted HTML: red for, blue against the class; all text escaped.

    separator: what stands between tokens ("" for a character tokenizer, whose text is its tokens side by side).
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(values)} scores")
    limit = float(np.abs(values).max()) if len(values) else 0.0
    spans = []
    for token, value in zip(tokens, values):
        strength = abs(value) / limit if limit > 0 else 0.0
        colour = "220,40,40" if value >= 0 else "40,90,220"
        spans.append(
            f'<span title="{value:+.4g}" style="background: rgba({colour},{strength:.3f}); padding: 0 1px">{html.escape(token)}</span>'
        )
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    return f'{head}<p style="font-family: monospace; line-height: 1.8">{html.escape(separator).join(spans)}</p>'


def html_page(fragments: Sequence[str], *, title: str) -> str:
    """A standalone HTML page around escaped fragments (from `token_html`)."""
    body = "\n".join(fragments)
    return f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>\n{body}\n</body></html>\n'
