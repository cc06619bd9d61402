"""Overlays: PNG heat maps over images, and highlighted text whose tokens are escaped."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from deepstrata.explain.overlay import display_image, grid_figure, heat_maps, html_page, overlay_figure, png_bytes, token_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_overlay_is_a_png_of_the_input_and_its_map() -> None:
    x = torch.rand(1, 8, 8)
    data = png_bytes(overlay_figure(x, torch.randn(1, 8, 8), "saliency"))
    assert data.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(data))
    assert image.width > image.height > 50  # two panels side by side


def test_heat_maps_sum_channels_and_resize_coarse_maps() -> None:
    x = torch.rand(2, 3, 6, 6)
    a = torch.rand(2, 3, 6, 6)
    assert np.allclose(heat_maps(a, x), a.sum(1).numpy())
    assert heat_maps(torch.rand(2, 1, 3, 3), x).shape == (2, 6, 6)
    rgb = display_image(x[0])
    assert rgb.shape == (6, 6, 3) and rgb.min() == 0.0 and rgb.max() == 1.0


def test_grid_has_a_row_per_example_and_leaves_a_missing_method_blank() -> None:
    x = torch.rand(3, 1, 8, 8)
    figure = grid_figure(x, {"saliency": torch.rand(3, 1, 8, 8), "grad_cam": None}, ["a", "b", "c"], title="t")
    assert len(figure.axes) == 9
    assert png_bytes(figure).startswith(PNG_MAGIC)


def test_token_html_escapes_every_token_and_shades_by_score() -> None:
    tokens = ["<script>alert(1)</script>", "a&b", '"q"', "plain"]
    out = token_html(tokens, [1.0, -0.5, 0.0, 0.25], title="<b>title</b>")
    assert "<script>" not in out and "&lt;script&gt;" in out and "a&amp;b" in out and "&quot;q&quot;" in out
    assert "&lt;b&gt;title&lt;/b&gt;" in out
    assert "rgba(220,40,40,1.000)" in out  # the strongest evidence for: full red
    assert "rgba(40,90,220,0.500)" in out  # against, half as strong: half-opaque blue
    page = html_page([out], title="<x>")
    assert page.startswith("<!doctype html>") and "<title>&lt;x&gt;</title>" in page
