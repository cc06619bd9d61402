"""Transformer blocks: equal to torch's layers, and the structural properties the issue lists."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.nn.norms import RMSNorm, make_norm
from deepstrata.nn.positional import RotaryEmbedding, SinusoidalPositionalEncoding
from deepstrata.nn.transformer import TransformerBlock, TransformerStack

D, H = 32, 4


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_rmsnorm_equals_torch() -> None:
    ours, theirs = RMSNorm(D, eps=1e-6), nn.RMSNorm(D, eps=1e-6)
    with torch.no_grad():
        theirs.weight.copy_(torch.rand(D) + 0.5)
        ours.weight.copy_(theirs.weight)
    x = rand(4, 7, D) * 3 + 1
    torch.testing.assert_close(ours(x), theirs(x))
    assert isinstance(make_norm("layer", D), nn.LayerNorm)
    with pytest.raises(ValueError, match=r"RMSNorm expected \(\.\.\., 32\)"):
        ours(rand(2, 5))


def copy_mha(ours: nn.Module, theirs: nn.MultiheadAttention) -> None:
    ours.load_from_torch(theirs)


def copy_block(ours: TransformerBlock, theirs: nn.Module) -> None:
    copy_mha(ours.self_attn, theirs.self_attn)
    if ours.cross_attn is not None:
        copy_mha(ours.cross_attn, theirs.multihead_attn)
    ours.mlp.linear1.load_state_dict(theirs.linear1.state_dict())
    ours.mlp.linear2.load_state_dict(theirs.linear2.state_dict())
    names = ["norm1", "norm2", "norm3"] if ours.cross_attn is not None else ["norm1", "norm2"]
    for name in names:
        getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())


def perturb(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module.eval()


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_encoder_block_equals_torch(norm_first: bool) -> None:
    torch.manual_seed(0)
    theirs = perturb(nn.TransformerEncoderLayer(D, H, dim_feedforward=4 * D, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first))
    ours = TransformerBlock(D, H, norm_first=norm_first).eval()
    copy_block(ours, theirs)
    x = rand(2, 9, D)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[0, 6:] = True
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours(x, key_padding_mask=pad)[~pad], theirs(x, src_key_padding_mask=pad)[~pad], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_decoder_block_equals_torch(norm_first: bool) -> None:
    torch.manual_seed(1)
    theirs = perturb(nn.TransformerDecoderLayer(D, H, dim_feedforward=4 * D, dropout=0.0, activation="relu", batch_first=True, norm_first=norm_first))
    ours = TransformerBlock(D, H, norm_first=norm_first, cross_attention=True, activation="relu").eval()
    copy_block(ours, theirs)
    x, mem = rand(2, 6, D, seed=1), rand(2, 8, D, seed=2)
    expected = theirs(x, mem, tgt_mask=nn.Transformer.generate_square_subsequent_mask(6), tgt_is_causal=True)
    torch.testing.assert_close(ours(x, memory=mem, is_causal=True), expected, rtol=1e-5, atol=1e-5)


def encoder(positional: str | None) -> nn.Module:
    torch.manual_seed(0)
    stack = TransformerStack(D, 2, H).eval()
    pos = SinusoidalPositionalEncoding(D, max_len=64)
    rope = RotaryEmbedding(D // H)
    if positional == "sinusoidal":
        return lambda x: stack(pos(x))
    if positional == "rope":
        return lambda x: stack(x, rotary=rope)
    return lambda x: stack(x)


@pytest.mark.parametrize("positional", [None, "sinusoidal", "rope"])
def test_permutation_equivariance_only_without_positions(positional: str | None) -> None:
    f = encoder(positional)
    x = rand(2, 10, D)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        permuted_out, out_permuted = f(x[:, perm]), f(x)[:, perm]
    if positional is None:
        torch.testing.assert_close(permuted_out, out_permuted, rtol=1e-5, atol=1e-5)
    else:
        assert (permuted_out - out_permuted).abs().max() > 1e-2


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_output_at_t_ignores_later_tokens(norm_first: bool) -> None:
    torch.manual_seed(0)
    stack = TransformerStack(D, 2, H, norm_first=norm_first, norm="rms").eval()
    x = rand(1, 12, D)
    changed = x.clone()
    changed[:, 7:] = rand(1, 5, D, seed=5)  # change every token after t = 6
    with torch.no_grad():
        a, b = stack(x, is_causal=True), stack(changed, is_causal=True)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=1e-5, atol=1e-5)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-2


def test_padding_does_not_change_non_padding_outputs() -> None:
    torch.manual_seed(0)
    stack = TransformerStack(D, 2, H).eval()
    x = rand(1, 6, D)
    padded = torch.cat([x, rand(1, 4, D, seed=8)], dim=1)
    pad = torch.tensor([[False] * 6 + [True] * 4])
    with torch.no_grad():
        torch.testing.assert_close(stack(padded, key_padding_mask=pad)[:, :6], stack(x), rtol=1e-5, atol=1e-5)


def test_pre_ln_keeps_an_identity_residual_path() -> None:
    # With every branch's output projection zeroed, a pre-LN block is exactly the identity; post-LN is not.
    for norm_first, identity in ((True, True), (False, False)):
        block = TransformerBlock(D, H, norm_first=norm_first).eval()
        with torch.no_grad():
            block.self_attn.out_proj.weight.zero_(), block.self_attn.out_proj.bias.zero_()
            block.mlp.linear2.weight.zero_(), block.mlp.linear2.bias.zero_()
        x = rand(2, 5, D) * 4 + 2
        assert torch.allclose(block(x), x) is identity


def test_block_misuse_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs `memory`"):
        TransformerBlock(D, H, cross_attention=True)(rand(1, 3, D))
    with pytest.raises(ValueError, match="caches"):
        TransformerStack(D, 2, H)(rand(1, 3, D), caches=[])
