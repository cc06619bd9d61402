"""Encoder-only Transformer (BERT-style): masked-language-model pretraining, then classification.

Problem: labelled text is scarce, and a classifier trained from scratch on a few hundred
examples has to learn the language and the task at once. Idea: pretrain a bidirectional
encoder on unlabelled text by hiding tokens and predicting them from both sides (the masked
language model, 80/10/10 rule in `transforms.text.mlm_mask`), then put a small head on the
pooled encoder output and fine-tune on the labels (Devlin et al. 2019, "BERT: Pre-training of
Deep Bidirectional Transformers for Language Understanding").

`bert_mlm` and `bert_classifier` share the `encoder.*` weights, so a classifier starts from a
pretraining run with `init_from: runs/text_bert_pretrain` (that run directory, or the newest
run inside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.data.tokenizers import PAD
from deepstrata.errors import UserError
from deepstrata.models.base import Backbone
from deepstrata.nn.attention import padding_mask
from deepstrata.nn.attention_weights import capture_attention_weights
from deepstrata.nn.input_checks import check_tokens
from deepstrata.nn.norms import NormKind, make_norm
from deepstrata.nn.pooling import masked_mean, nonzero_steps
from deepstrata.nn.positional import LearnedPositionalEmbedding
from deepstrata.nn.transformer import TransformerStack
from deepstrata.registry import register_model


class BertEncoder(nn.Module):
    """Token + learned position embeddings, LayerNorm, pre-LN bidirectional blocks; padding masked."""

    def __init__(
        self, *, vocab_size: int, max_len: int, dim: int, depth: int, num_heads: int,
        mlp_ratio: float, dropout: float, norm: NormKind, pad_id: int,
    ):
        super().__init__()
        self.vocab_size, self.max_len, self.dim, self.pad_id = vocab_size, max_len, dim, pad_id
        self.tok_embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.tok_embed.weight, std=0.02)
        self.pos = LearnedPositionalEmbedding(dim, max_len=max_len)
        self.embed_norm = make_norm(norm, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = TransformerStack(dim, depth, num_heads, mlp_ratio=mlp_ratio, dropout=dropout, norm=norm, norm_first=True)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (N, T) -> (hidden states (N, T, D), padding mask (N, T), True at padding)."""
        check_tokens(type(self).__name__, tokens, self.max_len)
        pad = padding_mask(tokens, self.pad_id)
        pad = pad & ~pad.all(dim=1, keepdim=True)  # an all-padding row attends to itself rather than to nothing
        x = self.dropout(self.embed_norm(self.pos(self.tok_embed(tokens))))
        # Exported graphs always take the mask: whether a batch holds padding is known only at run time.
        masked = torch.compiler.is_exporting() or bool(pad.any())
        return self.blocks(x, key_padding_mask=pad if masked else None), pad




class BertMLM(nn.Module):
    """Encoder + MLM head (Linear-GELU-norm, output tied to the token embedding): (N, T) -> (N, T, V)."""

    def __init__(self, **encoder_kwargs: object):
        super().__init__()
        self.encoder = BertEncoder(**encoder_kwargs)  # type: ignore[arg-type]
        dim = self.encoder.dim
        self.mlm_dense = nn.Linear(dim, dim)
        self.mlm_norm = nn.LayerNorm(dim)
        self.mlm_bias = nn.Parameter(torch.zeros(self.encoder.vocab_size))

    def forward(self, tokens: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (N, T) -> logits (N, T, V); with `select` (N, T) bool, only the selected positions'
        logits (M, V), in row-major order: the loss needs no others, and the V-wide output layer
        is the costliest part of a small model's step."""
        h, _ = self.encoder(tokens)  # (N, T, D)
        if select is not None:
            if select.shape != tokens.shape:
                raise ValueError(f"BertMLM.forward: select must be shaped like tokens {tuple(tokens.shape)}, got {tuple(select.shape)}")
            h = h[select]  # (M, D)
        h = self.mlm_norm(F.gelu(self.mlm_dense(h)))
        return h @ self.encoder.tok_embed.weight.T + self.mlm_bias  # (N, T, V) or (M, V)


class BertClassifier(Backbone):
    """Encoder, pooled over non-padding tokens ("mean") or the first (<cls>) token, then a linear head.

    `forward_features` gives the encoder's token states (N, T, D); with mean pooling the padding
    tokens' states are zeros, so the head averages the others without seeing the input. The
    stages of `forward_intermediates` are the encoder blocks (before the final norm, padding kept).
    """

    feature_format = "NLC"

    def __init__(self, *, num_classes: int, pooling: Literal["mean", "cls"], **encoder_kwargs: object):
        super().__init__()
        self.encoder = BertEncoder(**encoder_kwargs)  # type: ignore[arg-type]
        self.pooling = pooling
        self.head = nn.Linear(self.encoder.dim, num_classes)

    def forward_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, T) -> token states (N, T, D), zeros at padding when pooling is "mean"."""
        h, pad = self.encoder(tokens)  # (N, T, D)
        if self.pooling == "cls":
            return h
        return h * (~pad).unsqueeze(-1).to(h.dtype)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, T, D) -> the first token, or the mean of the non-padding (non-zero) tokens, (N, D) -> head."""
        x = features[:, 0] if self.pooling == "cls" else masked_mean(features, nonzero_steps(features))
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return list(self.encoder.blocks.blocks)

    @torch.no_grad()
    def attention_maps(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Every block's self-attention weights, one (N, heads, T, T) tensor per block; padding keys get weight 0."""
        blocks = self.encoder.blocks.blocks
        return capture_attention_weights([b.self_attn for b in blocks], lambda: self.encoder(tokens))

    def pooled_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) weights with which the head reads the token states: the first token, or the mean of the non-padding ones."""
        if self.pooling == "cls":
            return F.one_hot(torch.zeros_like(tokens[:, 0]), tokens.shape[1]).float()
        real = (tokens != self.encoder.pad_id).float()
        real[real.sum(1) == 0] = 1.0  # an all-padding row: every token, as its attention does
        return real / real.sum(1, keepdim=True)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (as Hugging Face models name it): what token attributions differentiate."""
        return self.encoder.tok_embed


def resolve_run(path: str) -> Path:
    """A run directory holding model.safetensors, or the newest such run inside `path`."""
    root = Path(path)
    if (root / "model.safetensors").is_file():
        return root
    runs = sorted(p.parent for p in root.glob("*/model.safetensors")) if root.is_dir() else []
    if not runs:
        raise UserError(
            f"init_from '{path}' holds no finished run (no model.safetensors); train the pretraining recipe first, "
            f"e.g. `strata train recipes/text_bert_pretrain.yaml`, or pass its run directory"
        )
    return runs[-1]  # run directories are named by start time, so the last sorts newest


def load_encoder(model: nn.Module, path: str) -> tuple[Path, int]:
    """Copy every `encoder.*` weight of a finished run (safetensors, no pickle) into `model.encoder`.

    All or nothing: a tensor missing on either side or of another shape is an error, never a
    silently skipped key. Returns (the run used, the number of tensors copied).
    """
    from safetensors.torch import load_file

    run = resolve_run(path)
    weights = {k.removeprefix("encoder."): v for k, v in load_file(str(run / "model.safetensors")).items() if k.startswith("encoder.")}
    own = model.encoder.state_dict()
    problems = (
        [f"'{k}' missing from the run" for k in own if k not in weights]
        + [f"'{k}' not in this model" for k in weights if k not in own]
        + [f"'{k}' is {tuple(weights[k].shape)} there, {tuple(own[k].shape)} here" for k in own if k in weights and weights[k].shape != own[k].shape]
    )
    if problems:
        raise UserError(
            f"init_from '{run}': its encoder does not match this model's ({len(problems)} tensors differ, e.g. "
            f"{problems[0]}); use the same vocab_size, dim, depth, num_heads, mlp_ratio and max_len as the pretraining run"
        )
    model.encoder.load_state_dict(weights, strict=True)
    return run, len(weights)


_EXAMPLE = {"input_shape": [12], "dtype": "long", "vocab_size": 20}
_SMALL = {"vocab_size": 20, "dim": 32, "depth": 1, "num_heads": 2, "max_len": 16}


@register_model("bert_mlm", example={**_EXAMPLE, "kwargs": _SMALL})
def bert_mlm(
    *,
    vocab_size: int,
    max_len: int = 128,
    dim: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 4.0,
    dropout: float = 0.1,
    norm: NormKind = "layer",
    pad_id: int = PAD,
) -> BertMLM:
    """BERT-style encoder with a masked-language-model head: tokens (N,T) -> logits (N,T,V)."""
    return BertMLM(
        vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth, num_heads=num_heads,
        mlp_ratio=mlp_ratio, dropout=dropout, norm=norm, pad_id=pad_id,
    )


@register_model("bert_classifier", example={**_EXAMPLE, "kwargs": {**_SMALL, "num_classes": 3}})
def bert_classifier(
    *,
    vocab_size: int,
    num_classes: int,
    max_len: int = 128,
    dim: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 4.0,
    dropout: float = 0.1,
    norm: NormKind = "layer",
    pad_id: int = PAD,
    pooling: Literal["mean", "cls"] = "mean",
    init_from: str | None = None,
) -> BertClassifier:
    """BERT-style encoder + pooled linear head for text classification; init_from loads a bert_mlm run's encoder."""
    model = BertClassifier(
        num_classes=num_classes, pooling=pooling, vocab_size=vocab_size, max_len=max_len, dim=dim, depth=depth,
        num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout, norm=norm, pad_id=pad_id,
    )
    if init_from:
        load_encoder(model, init_from)
    return model
