"""BERT: bidirectional, padding-invariant, MLM head shape, encoder transfer from a saved run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.models.bert import bert_classifier, bert_mlm, load_encoder
from deepstrata.run.artifact import save_model

KW = {"vocab_size": 40, "dim": 32, "depth": 2, "num_heads": 2, "max_len": 20}


def test_mlm_logits_and_bidirectional_context() -> None:
    torch.manual_seed(0)
    model = bert_mlm(**KW).eval()
    x = torch.randint(6, 40, (2, 12), generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert out.shape == (2, 12, 40)
    y = x.clone()
    y[:, -1] = (x[:, -1] + 1 - 6) % 34 + 6  # change the LAST token: an encoder's first position sees it
    with torch.no_grad():
        assert (model(y)[:, 0] - out[:, 0]).abs().max() > 1e-4


def test_mlm_select_computes_only_the_selected_logits() -> None:
    model = bert_mlm(**KW).eval()
    x = torch.randint(6, 40, (3, 12), generator=torch.Generator().manual_seed(2))
    select = torch.rand(3, 12, generator=torch.Generator().manual_seed(3)) < 0.3
    with torch.no_grad():
        torch.testing.assert_close(model(x, select=select), model(x)[select])
    with pytest.raises(ValueError, match="select must be shaped like tokens"):
        model(x, select=select[:, :5])


def test_classifier_ignores_padding() -> None:
    torch.manual_seed(0)
    model = bert_classifier(num_classes=3, **KW).eval()
    x = torch.randint(6, 40, (1, 9), generator=torch.Generator().manual_seed(1))
    padded = torch.cat([x, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(x), rtol=1e-5, atol=1e-5)
        feats = model.forward_features(padded)
        assert feats.shape == (1, 15, 32) and not feats[:, 9:].any() and model.forward_head(feats, pre_logits=True).shape == (1, 32)


def test_init_from_copies_the_pretrained_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretrained = bert_mlm(**KW)
    run = tmp_path / "runs" / "text_bert_pretrain" / "20260101-000000"
    run.mkdir(parents=True)
    save_model(pretrained, run, {"architecture": "bert_mlm", "kwargs": KW})
    for where in (run, run.parent):  # the run itself, or the newest run under the recipe's directory
        clf = bert_classifier(num_classes=4, init_from=str(where), **KW)
        for k, v in pretrained.encoder.state_dict().items():
            torch.testing.assert_close(clf.encoder.state_dict()[k], v)
    with pytest.raises(UserError, match="does not match"):
        bert_classifier(num_classes=4, init_from=str(run), **{**KW, "dim": 64})
    with pytest.raises(UserError, match="no finished run"):
        bert_classifier(num_classes=4, init_from=str(tmp_path / "nothing"), **KW)


def test_init_from_loads_every_encoder_tensor_and_refuses_partial_matches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretrained = bert_mlm(**KW)
    save_model(pretrained, tmp_path, {"architecture": "bert_mlm", "kwargs": KW})
    clf = bert_classifier(num_classes=4, **KW)
    run, copied = load_encoder(clf, str(tmp_path))
    own = clf.encoder.state_dict()
    assert run == tmp_path and copied == len(own) == len(pretrained.encoder.state_dict())
    assert all(torch.equal(own[k], v) for k, v in pretrained.encoder.state_dict().items())
    assert not torch.equal(clf.head.weight, torch.zeros_like(clf.head.weight))  # the head stays freshly initialised
    # A run whose encoder has an extra block is refused instead of loading the common part.
    deeper = tmp_path / "deeper"
    deeper.mkdir()
    save_model(bert_mlm(**{**KW, "depth": 3}), deeper, {"architecture": "bert_mlm", "kwargs": {**KW, "depth": 3}})
    with pytest.raises(UserError, match="not in this model"):
        load_encoder(bert_classifier(num_classes=4, **KW), str(deeper))


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"BertEncoder expected \(N, T\) token ids with 1 <= T <= max_len=20"):
        bert_mlm(**KW)(torch.zeros(2, 21, dtype=torch.long))
