"""Where a Vision Transformer looks: attention rollout over test images.

Problem: a ViT's accuracy does not say which parts of the image its class token draws on;
raw per-layer attention maps are many and hard to read.
Idea: for a few test images, combine every layer's head-averaged attention (plus the residual
identity) into one rollout map from the class token to the patches (Abnar & Zuidema 2020,
"Quantifying Attention Flow in Transformers") and draw it next to the image.
"""

from __future__ import annotations

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, figure_html
from deepstrata.run.run import Run

NUM_IMAGES = 8


@register_report_section("vit_attention")
def vit_attention(run: Run) -> Section | None:
    """Attention rollout of the class token over the first test images (models with `attention_maps`)."""
    if not run.has_model:
        return None
    from deepstrata.models.vit import VisionTransformer

    model = run.model()
    if not isinstance(model, VisionTransformer):  # the rollout reads a ViT's class-token attention
        return None
    import numpy as np
    import torch
    import torch.nn.functional as F

    from deepstrata.models.vit import attention_rollout

    xs, _ = next(iter(run.loader("test")))  # model inputs, with the run's evaluation transforms
    xs = xs[:NUM_IMAGES]  # (n, C, S, S)
    with torch.no_grad():
        preds = model(xs).argmax(1)
        grid = model.patch_embed.grid
        heat = attention_rollout(model.attention_maps(xs), grid=grid)  # (n, g, g)
        heat = F.interpolate(heat[:, None], size=xs.shape[-2:], mode="nearest")[:, 0]  # one block per patch
    import matplotlib.pyplot as plt

    n = len(xs)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.0), squeeze=False)
    for i in range(n):
        img = xs[i].numpy()
        shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
        axes[0, i].imshow(shown, cmap="gray_r" if img.shape[0] == 1 else None)
        axes[0, i].set_title(f"pred {int(preds[i])}", fontsize=8)
        axes[1, i].imshow(heat[i].numpy(), cmap="inferno")
        for ax in axes[:, i]:
            ax.axis("off")
    text = (
        f"<p>Top: the first {n} test images with the predicted class. Bottom: attention rollout from the class "
        f"token to each of the {grid}x{grid} patches through all {len(model.blocks)} layers (brighter = more weight).</p>"
    )
    return Section("ViT attention (rollout)", text + figure_html(fig, alt="ViT attention rollout"), order=40)
