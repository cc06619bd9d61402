"""Encoder-decoder Transformer (T5/BART-style) for sequence-to-sequence tasks.

Problem: translating one sequence into another of a different length (a date in any format
into ISO 8601) needs the whole input before writing the output, and an RNN squeezes the input
through one state vector. Idea: a bidirectional encoder turns the source into a memory of one
vector per token; a causal decoder writes the target token by token, attending to its own past
and, through cross-attention, to every memory vector (Vaswani et al. 2017; Raffel et al. 2020,
"T5"; Lewis et al. 2020, "BART"). Trained with teacher forcing, decoded greedily.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepstrata.data.tokenizers import BOS, EOS, PAD
from deepstrata.nn.attention import padding_mask
from deepstrata.nn.input_checks import check_tokens
from deepstrata.nn.norms import NormKind
from deepstrata.nn.positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from deepstrata.nn.transformer import TransformerStack
from deepstrata.registry import register_model


class TransformerSeq2Seq(nn.Module):
    """Encoder over source ids, causal decoder over target ids, output projection tied to the target embedding.

    forward(src, tgt=None):
        src: (N, S) long source ids, padded with `pad_id` (padding never changes the output).
        tgt: (N, T) long decoder INPUT ids, i.e. the target shifted right and starting with
             `bos_id` (teacher forcing); its padding is masked too. None means [[bos_id]]:
             the distribution of the first output token.
        returns logits (N, T, tgt_vocab_size); position t predicts target token t+1 of tgt.
    generate(src, max_new_tokens) -> (N, <= max_new_tokens) greedy output ids, without BOS,
        padded with `pad_id` after each row's `eos_id`.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        tgt_vocab_size: int | None = None,
        dim: int = 128,
        encoder_depth: int = 2,
        decoder_depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_len: int = 256,
        positional: Literal["sinusoidal", "learned", "rope"] = "sinusoidal",
        norm: NormKind = "layer",
        norm_first: bool = True,
        pad_id: int = PAD,
        bos_id: int = BOS,
        eos_id: int = EOS,
    ):
        super().__init__()
        self.vocab_size, self.tgt_vocab_size = vocab_size, tgt_vocab_size or vocab_size
        self.dim, self.max_len = dim, max_len
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embed = nn.Embedding(vocab_size, dim)
        self.tgt_embed = nn.Embedding(self.tgt_vocab_size, dim)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=dim**-0.5)  # x sqrt(dim) in forward: unit-scale tokens
        self.rotary = RotaryEmbedding(dim // num_heads, max_len=max_len) if positional == "rope" else None
        self.pos = (
            SinusoidalPositionalEncoding(dim, max_len=max_len) if positional == "sinusoidal"
            else LearnedPositionalEmbedding(dim, max_len=max_len) if positional == "learned" else None
        )
        common = dict(mlp_ratio=mlp_ratio, dropout=dropout, norm=norm, norm_first=norm_first)
        self.encoder = TransformerStack(dim, encoder_depth, num_heads, **common)
        self.decoder = TransformerStack(dim, decoder_depth, num_heads, cross_attention=True, **common)
        self.dropout = nn.Dropout(dropout)

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        x = emb(ids) * self.dim**0.5  # (N, T, D)
        return self.dropout(self.pos(x) if self.pos is not None else x)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (N, S) -> (memory (N, S, D), source padding mask (N, S), True at padding)."""
        check_tokens("TransformerSeq2Seq.encode", src, self.max_len)
        src_pad = padding_mask(src, self.pad_id)
        memory = self.encoder(self._embed(self.src_embed, src), key_padding_mask=src_pad, rotary=self.rotary)
        return memory, src_pad

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """tgt (N, T) decoder input ids -> logits (N, T, tgt_vocab_size)."""
        check_tokens("TransformerSeq2Seq.decode", tgt, self.max_len)
        tgt_pad = padding_mask(tgt, self.pad_id)
        h = self.decoder(
            self._embed(self.tgt_embed, tgt), memory=memory, key_padding_mask=tgt_pad if tgt_pad.any() else None,
            memory_key_padding_mask=src_pad, is_causal=True, rotary=self.rotary,
        )
        return h @ self.tgt_embed.weight.T  # tied output projection: (N, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor | None = None) -> torch.Tensor:
        memory, src_pad = self.encode(src)
        if tgt is None:
            tgt = torch.full((src.shape[0], 1), self.bos_id, dtype=torch.long, device=src.device)
        if tgt.shape[0] != src.shape[0]:
            raise ValueError(f"TransformerSeq2Seq expected src (N, S) and tgt (N, T) with the same N, got {tuple(src.shape)} and {tuple(tgt.shape)}")
        return self.decode(tgt, memory, src_pad)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, *, max_new_tokens: int = 32) -> torch.Tensor:
        """Greedy decoding: (N, S) source ids -> (N, <= max_new_tokens) output ids (no BOS)."""
        memory, src_pad = self.encode(src)
        n = src.shape[0]
        out = torch.full((n, 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(n, dtype=torch.bool, device=src.device)
        for _ in range(min(max_new_tokens, self.max_len - 1)):
            logits = self.decode(out, memory, src_pad)[:, -1]  # (N, V)
            nxt = logits.argmax(dim=-1).masked_fill(done, self.pad_id)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == self.eos_id
            if done.all():
                break
        return out[:, 1:]


@register_model(
    "transformer_seq2seq",
    not_exportable="translation is a greedy decoding loop whose length depends on the outputs (`generate`); its forward is one teacher-forced step, and exporting the encoder and a decoder step separately is not built",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 20, "kwargs": {"vocab_size": 20, "dim": 32, "num_heads": 2, "encoder_depth": 1, "decoder_depth": 1, "max_len": 16}},
)
def transformer_seq2seq(
    *,
    vocab_size: int,
    tgt_vocab_size: int | None = None,
    dim: int = 128,
    encoder_depth: int = 2,
    decoder_depth: int = 2,
    num_heads: int = 4,
    mlp_ratio: float = 4.0,
    dropout: float = 0.1,
    max_len: int = 256,
    positional: Literal["sinusoidal", "learned", "rope"] = "sinusoidal",
    norm: NormKind = "layer",
    norm_first: bool = True,
    pad_id: int = PAD,
    bos_id: int = BOS,
    eos_id: int = EOS,
) -> TransformerSeq2Seq:
    """T5/BART-style encoder-decoder: forward(src (N,S), tgt_in (N,T)) -> logits (N,T,V); generate() decodes greedily."""
    return TransformerSeq2Seq(
        vocab_size=vocab_size, tgt_vocab_size=tgt_vocab_size, dim=dim, encoder_depth=encoder_depth,
        decoder_depth=decoder_depth, num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout, max_len=max_len,
        positional=positional, norm=norm, norm_first=norm_first, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id,
    )
