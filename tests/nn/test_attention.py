"""Attention: the fused path equals the reference formula, our MHA equals torch's, masks do what they say."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.nn.attention import KVCache, MultiHeadAttention, causal_mask, padding_mask, reference_attention, scaled_dot_product_attention


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_mask", "cross_lengths"])
def test_fused_equals_reference(case: str) -> None:
    q, k, v = rand(2, 3, 7, 16, seed=1), rand(2, 3, 7, 16, seed=2), rand(2, 3, 7, 16, seed=3)
    kw: dict = {}
    if case == "causal":
        kw["is_causal"] = True
    elif case == "bool_mask":
        kw["attn_mask"] = rand(7, 7, seed=4) > -0.5
        kw["attn_mask"][:, 0] = True  # no fully masked row
    elif case == "float_mask":
        kw["attn_mask"] = rand(2, 1, 7, 7, seed=5)
    elif case == "cross_lengths":
        k, v = rand(2, 3, 11, 16, seed=6), rand(2, 3, 11, 8, seed=7)
    fused = scaled_dot_product_attention(q, k, v, **kw)
    ref, weights = reference_attention(q, k, v, **kw)
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_causal_mask_with_offset() -> None:
    m = causal_mask(2, 5)  # the last two queries of a five-token sequence
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())


def copied_pair(embed: int = 32, heads: int = 4, bias: bool = True) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(embed, heads, batch_first=True, bias=bias).eval()
    with torch.no_grad():  # torch initialises biases to zero; make them matter
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return MultiHeadAttention(embed, heads, bias=bias).load_from_torch(theirs).eval(), theirs


@pytest.mark.parametrize("bias", [True, False])
def test_mha_equals_torch_self_attention_with_weights(bias: bool) -> None:
    ours, theirs = copied_pair(bias=bias)
    x = rand(3, 9, 32)
    out, w = ours(x, need_weights=True)
    ref, ref_w = theirs(x, x, x, need_weights=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)
    out_h, w_h = ours(x, need_weights=True, average_attn_weights=False)
    _, ref_w_h = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(w_h, ref_w_h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours(x)[0], ref, rtol=1e-5, atol=1e-5)  # fused path, same numbers


def test_mha_equals_torch_with_padding_and_causal_masks_and_cross_attention() -> None:
    ours, theirs = copied_pair()
    x, mem = rand(2, 6, 32, seed=1), rand(2, 8, 32, seed=2)
    pad = torch.zeros(2, 8, dtype=torch.bool)
    pad[1, 5:] = True
    out, w = ours(x, mem, key_padding_mask=pad, need_weights=True)
    ref, ref_w = theirs(x, mem, mem, key_padding_mask=pad)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)
    assert (w[1, :, 5:] == 0).all()
    # causal self-attention: torch's boolean attn_mask is True where attention is NOT allowed
    out, w = ours(x, is_causal=True, need_weights=True)
    ref, ref_w = theirs(x, x, x, attn_mask=~causal_mask(6))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours(x, is_causal=True)[0], ref, rtol=1e-5, atol=1e-5)


def test_gradients_match_torch() -> None:
    ours, theirs = copied_pair()
    x = rand(2, 5, 32).requires_grad_()
    ours(x)[0].square().sum().backward()
    g_ours = x.grad.clone()
    x.grad = None
    theirs(x, x, x)[0].square().sum().backward()
    torch.testing.assert_close(g_ours, x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad]), theirs.in_proj_weight.grad, rtol=1e-4, atol=1e-5
    )


def test_padding_does_not_change_other_positions() -> None:
    ours, _ = copied_pair()
    x = rand(1, 5, 32)
    padded = torch.cat([x, rand(1, 3, 32, seed=9)], dim=1)  # three junk padding vectors
    pad = torch.tensor([[False] * 5 + [True] * 3])
    out = ours(padded, key_padding_mask=pad)[0]
    torch.testing.assert_close(out[:, :5], ours(x)[0], rtol=1e-5, atol=1e-5)


def test_kv_cache_decoding_equals_full_causal_pass() -> None:
    ours, _ = copied_pair()
    x = rand(2, 7, 32)
    full = ours(x, is_causal=True)[0]
    cache = KVCache()
    prefix = ours(x[:, :3], is_causal=True, cache=cache)[0]  # prefill three tokens
    steps = [ours(x[:, t : t + 1], is_causal=True, cache=cache)[0] for t in range(3, 7)]
    torch.testing.assert_close(torch.cat([prefix, *steps], dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 7
    chunk_cache = KVCache()  # several new tokens at once after a prefix: offset causal mask
    a = ours(x[:, :4], is_causal=True, cache=chunk_cache)[0]
    b = ours(x[:, 4:], is_causal=True, cache=chunk_cache)[0]
    torch.testing.assert_close(torch.cat([a, b], dim=1), full, rtol=1e-5, atol=1e-5)


def test_shape_errors_name_the_layer_and_shapes() -> None:
    mha = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention expected query \(N, L, 16\), got \(2, 5, 8\)"):
        mha(rand(2, 5, 8))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(rand(2, 5, 16), key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="scaled_dot_product_attention expected"):
        scaled_dot_product_attention(rand(1, 4, 8), rand(1, 4, 6), rand(1, 4, 6))
    assert padding_mask(torch.tensor([[5, 6, 0]]), 0).tolist() == [[False, False, True]]
