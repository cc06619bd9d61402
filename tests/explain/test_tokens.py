"""Token attributions: layer Integrated Gradients on the embeddings, equal to Captum, complete along its path, (N, T)."""

from __future__ import annotations

import torch
from captum.attr import LayerIntegratedGradients

from deepstrata.explain.base import make_explainer
from tests.explain.small_models import tiny_bert, tiny_cnn, tiny_hf_encoder

IDS = torch.tensor([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])


def _score_with_embeddings_of(model, ids, embedding_ids, target):
    """The target score of `ids` with the token embedding's output replaced by that of `embedding_ids` (the path's end)."""
    layer = model.get_input_embeddings()
    hook = layer.register_forward_hook(lambda m, a, out: torch.nn.functional.embedding(embedding_ids, m.weight))
    try:
        with torch.no_grad():
            return model(ids).gather(1, target[:, None])[:, 0]
    finally:
        hook.remove()


def test_layer_ig_on_bert_equals_captum_and_is_complete():
    model = tiny_bert()
    with torch.no_grad():
        target = model(IDS).argmax(1)
    ours = make_explainer("layer_integrated_gradients").attribute(model, IDS, target)
    assert ours.shape == IDS.shape and (ours[0, 4:] == 0).all()
    baseline = torch.where(IDS == 0, IDS, torch.zeros_like(IDS))
    theirs = LayerIntegratedGradients(model, model.encoder.tok_embed).attribute(IDS, baselines=baseline, target=target, n_steps=50)
    torch.testing.assert_close(ours, theirs.sum(-1).detach())
    gap = _score_with_embeddings_of(model, IDS, IDS, target) - _score_with_embeddings_of(model, IDS, baseline, target)
    assert ((ours.sum(1) - gap).abs() <= 0.01 * gap.abs()).all(), (ours.sum(1), gap)


def test_layer_ig_on_the_hf_encoder_wrapper(tmp_path):
    model = tiny_hf_encoder(tmp_path)
    ids = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 3, 0, 0, 0, 0]])
    target = torch.tensor([0, 2])
    ours = make_explainer("layer_integrated_gradients", n_steps=20).attribute(model, ids, target)
    assert ours.shape == ids.shape and (ours[1, 3:] == 0).all() and ours.abs().sum() > 0
    theirs = LayerIntegratedGradients(model, model.encoder.get_input_embeddings()).attribute(
        ids, baselines=torch.where(ids == 0, ids, 0), target=target, n_steps=20
    )
    torch.testing.assert_close(ours, theirs.sum(-1).detach())


def test_layer_ig_refuses_image_models():
    assert "integrated_gradients" in make_explainer("layer_integrated_gradients").why_not(tiny_cnn(), torch.randn(2, 1, 8, 8))
