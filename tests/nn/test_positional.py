"""Positional encodings: values, shapes, and RoPE's relative-offset property."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.nn.positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding


def test_sinusoidal_values_match_the_formula() -> None:
    pe = SinusoidalPositionalEncoding(8, max_len=50)
    out = pe(torch.zeros(1, 10, 8))[0]
    p, i = 7, 1  # feature 2i = 2 and 2i+1 = 3 at position 7
    assert out[p, 2].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 8)), abs=1e-6)
    assert out[p, 3].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 8)), abs=1e-6)
    torch.testing.assert_close(pe(torch.zeros(1, 3, 8), offset=7)[0, 0], out[7])
    assert SinusoidalPositionalEncoding(7, max_len=4)(torch.zeros(1, 4, 7)).shape == (1, 4, 7)  # odd width


def test_learned_embedding_adds_a_trained_vector_per_position() -> None:
    pe = LearnedPositionalEmbedding(4, max_len=6)
    out = pe(torch.zeros(2, 5, 4), offset=1)
    torch.testing.assert_close(out[0], pe.embedding.weight[1:6].detach())
    assert sum(p.numel() for p in pe.parameters()) == 24


def test_rope_scores_depend_only_on_the_relative_offset() -> None:
    rope = RotaryEmbedding(16, max_len=256)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(m: int, n: int) -> float:
        qm = rope(q.view(1, 1, 16), offset=m)[0, 0]
        kn = rope(k.view(1, 1, 16), offset=n)[0, 0]
        return float(qm @ kn)

    for delta in (0, 1, 5, 40):
        scores = [score(m, m + delta) for m in (0, 3, 17, 100)]
        assert max(scores) - min(scores) < 1e-4, (delta, scores)
    assert abs(score(0, 1) - score(0, 40)) > 1e-3  # ... and it does depend on the offset
    # a rotation: norms are preserved
    x = torch.randn(2, 3, 10, 16, generator=g)
    torch.testing.assert_close(rope(x).norm(dim=-1), x.norm(dim=-1))


def test_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match="SinusoidalPositionalEncoding covers 4 positions"):
        SinusoidalPositionalEncoding(8, max_len=4)(torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match=r"LearnedPositionalEmbedding expected \(N, T, 4\)"):
        LearnedPositionalEmbedding(4)(torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match="even head dimension"):
        RotaryEmbedding(7)
