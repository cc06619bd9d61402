"""Input checks name the layer, the expected shape and the shape that came."""

from __future__ import annotations

import pytest
import torch

from deepstrata.nn.input_checks import check_input, check_tokens


def test_check_input_names_the_layer_and_both_shapes() -> None:
    check_input("ResNet.conv1", torch.zeros(2, 1, 8, 8), (None, 1, None, None))
    with pytest.raises(ValueError, match=r"^ResNet.conv1 expected \(N, 1, \*, \*\) input, got \(32, 64\)$"):
        check_input("ResNet.conv1", torch.zeros(32, 64), (None, 1, None, None))
    with pytest.raises(ValueError, match=r"expected \(N, 3\) input, got \(2, 4\)"):
        check_input("MLP.body", torch.zeros(2, 4), (None, 3))


def test_check_tokens_wants_integer_ids_no_longer_than_max_len() -> None:
    check_tokens("GPT", torch.zeros(2, 5, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="GPT expected \\(N, T\\) integer token ids, got torch.float32"):
        check_tokens("GPT", torch.zeros(2, 5), 5)
    with pytest.raises(ValueError, match="1 <= T <= max_len=4, got \\(2, 5\\)"):
        check_tokens("GPT", torch.zeros(2, 5, dtype=torch.long), 4)
