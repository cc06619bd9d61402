"""Recurrent networks (vanilla RNN, LSTM, GRU) with heads for classification, tagging and forecasting.

Problem: a feed-forward network sees a fixed-size input, but text and time series are
sequences of any length whose meaning depends on order. Idea: carry a hidden state along the
sequence, updated by the same weights at every step (Elman 1990); gated cells keep that state
trainable over long spans: the LSTM (Hochreiter & Schmidhuber 1997) and the GRU (Cho et al.
2014, "Learning Phrase Representations using RNN Encoder-Decoder"). Layers stack, and a
bidirectional layer reads the sequence both ways (Schuster & Paliwal 1997).

The recurrence itself is torch's (`nn.RNN`, `nn.LSTM`, `nn.GRU`, fused and fast); the gate
equations written out for readers are in `models/lstm_cell.py`. Three heads:
- `rnn_classifier`: one label per sequence, from the final states (or the mean over time);
- `rnn_tagger`: one label per position (sequence labelling);
- `rnn_forecaster`: the next `horizon` values of a series, predicted as changes from the
  window's last value (see `Forecaster`).
Token inputs (N, T) with a `pad_id` are packed, so padding never changes the result.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from deepstrata.models.base import Backbone
from deepstrata.nn.input_checks import check_input
from deepstrata.nn.pooling import masked_mean, nonzero_steps
from deepstrata.registry import register_model

Cell = Literal["rnn", "lstm", "gru"]
CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class SequenceEncoder(nn.Module):
    """Inputs -> per-step outputs (N, T, D) and a summary vector (N, D), D = hidden * directions.

    Token ids (N, T) go through an embedding when `vocab_size` is given; otherwise the input is
    (N, T, input_size) floats. The summary is the last layer's final hidden state (forward and,
    if bidirectional, backward concatenated) or the mean of the outputs over non-padding steps;
    `pool` computes it from the outputs alone, whose padding steps are zeros.
    """

    def __init__(
        self,
        *,
        cell: Cell = "lstm",
        vocab_size: int | None = None,
        input_size: int = 1,
        embed_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pad_id: int | None = None,
        pooling: Literal["last", "mean"] = "last",
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown recurrent cell '{cell}'; choose one of {', '.join(CELLS)}")
        self.cell, self.vocab_size, self.input_size, self.pad_id, self.pooling = cell, vocab_size, input_size, pad_id, pooling
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id) if vocab_size else None
        self.rnn = CELLS[cell](
            embed_dim if vocab_size else input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.directions = 2 if bidirectional else 1
        self.out_dim = hidden_size * self.directions

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T) token ids or (N, T, input_size) -> (outputs (N, T, D), summary (N, D))."""
        name = f"SequenceEncoder({self.cell})"
        if self.embed is not None:
            check_input(name, x, (None, None))
            if x.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"{name} expected token ids (integer dtype) for vocab_size={self.vocab_size}, got {x.dtype}")
            seq = self.embed(x)  # (N, T, E)
        else:
            check_input(name, x, (None, None, self.input_size))
            seq = x
        lengths = None
        if self.embed is not None and self.pad_id is not None:
            lengths = (x != self.pad_id).sum(dim=1).clamp(min=1)  # (N,)
        if lengths is not None and bool((lengths < x.shape[1]).any()):
            packed = pack_padded_sequence(seq, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out_packed, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])  # (N, T, D), zeros at padding
        else:
            out, _ = self.rnn(seq)  # (N, T, D)
        return out, self.pool(out, lengths)

    @property
    def masks_padding(self) -> bool:
        """Whether padding steps are packed away (token inputs with a `pad_id`); their outputs are then zeros."""
        return self.embed is not None and self.pad_id is not None

    def pool(self, out: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-step outputs (N, T, D) -> summary (N, D); `lengths` (N,) are the real steps of each row.

        Without `lengths`, a padding-masking encoder counts the non-zero steps (its padding
        outputs are zeros). "last" is the last layer's final hidden state: the forward
        direction's output at the last real step and, if bidirectional, the backward
        direction's output at step 0, the values of torch's h_n (a test checks they are equal).
        """
        if lengths is None and self.masks_padding:
            lengths = nonzero_steps(out).sum(dim=1).clamp(min=1)  # (N,)
        if self.pooling == "mean":
            if lengths is None:
                return out.mean(dim=1)
            return masked_mean(out, torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None])
        hidden = out.shape[-1] // self.directions
        last = out[:, -1, :hidden] if lengths is None else out[torch.arange(out.shape[0], device=out.device), lengths - 1, :hidden]
        return last if self.directions == 1 else torch.cat([last, out[:, 0, hidden:]], dim=-1)  # (N, D)


class RNNClassifier(Backbone):
    """One label per sequence: encoder summary (N, D) -> dropout -> Linear -> (N, num_classes).

    `forward_features` gives the per-step outputs (N, T, D), zeros at padding; the head pools
    them as the encoder does (final state or mean). The recurrent stack is the one stage of
    `forward_intermediates` (torch's fused layers do not expose the states of the lower ones).
    """

    feature_format = "NLC"

    def __init__(self, *, encoder: SequenceEncoder, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T) token ids or (N, T, input_size) -> per-step outputs (N, T, D)."""
        return self.encoder(x)[0]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, T, D) -> summary (final state or mean) -> dropout -> (N, D) -> head."""
        x = self.drop(self.encoder.pool(features))
        return x if pre_logits else self.head(x)

    def feature_stages(self) -> list[nn.Module]:
        return [self.encoder]


class RNNTagger(nn.Module):
    """One label per position: per-step outputs (N, T, D) -> Linear -> (N, T, num_classes)."""

    def __init__(self, *, encoder: SequenceEncoder, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.encoder(x)[0]))


class Forecaster(nn.Module):
    """A window of past values (N, L, C) -> the next `horizon` values of channel 0, (N, horizon).

    With `relative=True` (the default) the network sees the window minus its last value,
    divided by `change_std`, and predicts the change from the last value; the forecast is
    `last + change_std * output`. A series that trends upward (CO2) then reaches levels never
    seen in training without leaving the range the network was trained on. With
    `relative=False` it sees `(x - level_mean) / level_std` and predicts the level itself,
    which fails once the test levels lie above every training level.
    The statistics are fitted by the dataset on its training part only and filled in as
    model defaults (see `data/timeseries.py`).
    """

    def __init__(
        self,
        *,
        encoder: SequenceEncoder,
        horizon: int,
        relative: bool = True,
        level_mean: float = 0.0,
        level_std: float = 1.0,
        change_std: float = 1.0,
    ):
        super().__init__()
        if level_std <= 0 or change_std <= 0:
            raise ValueError(f"Forecaster: level_std and change_std must be positive, got {level_std} and {change_std}")
        self.encoder = encoder
        self.horizon = horizon
        self.relative = relative
        self.register_buffer("level_mean", torch.tensor(float(level_mean)))
        self.register_buffer("level_std", torch.tensor(float(level_std)))
        self.register_buffer("change_std", torch.tensor(float(change_std)))
        self.head = nn.Linear(encoder.out_dim, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("Forecaster", x, (None, None, self.encoder.input_size))
        if self.relative:
            last = x[:, -1:, :]  # (N, 1, C)
            change = self.head(self.encoder((x - last) / self.change_std)[1])  # (N, horizon)
            return last[:, :, 0] + self.change_std * change
        level = self.head(self.encoder((x - self.level_mean) / self.level_std)[1])  # (N, horizon)
        return self.level_mean + self.level_std * level


def _encoder(
    cell: Cell,
    vocab_size: int | None,
    input_size: int,
    embed_dim: int,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    pad_id: int | None,
    pooling: Literal["last", "mean"],
) -> SequenceEncoder:
    return SequenceEncoder(
        cell=cell,
        vocab_size=vocab_size,
        input_size=input_size,
        embed_dim=embed_dim,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        pad_id=pad_id,
        pooling=pooling,
    )


@register_model(
    "rnn_classifier",
    not_exportable="it packs variable-length sequences (pack_padded_sequence) only when a batch holds padding, a branch on the data that torch.export cannot trace",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 20, "kwargs": {"vocab_size": 20, "num_classes": 3, "hidden_size": 16, "embed_dim": 8}},
)
def rnn_classifier(
    *,
    num_classes: int,
    cell: Cell = "lstm",
    vocab_size: int | None = None,
    input_size: int = 1,
    embed_dim: int = 64,
    hidden_size: int = 128,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    pad_id: int | None = 0,
    pooling: Literal["last", "mean"] = "last",
) -> RNNClassifier:
    """Sequence classifier: RNN/LSTM/GRU (stacked, bidirectional) -> final state -> linear head."""
    enc = _encoder(cell, vocab_size, input_size, embed_dim, hidden_size, num_layers, bidirectional, dropout, pad_id, pooling)
    return RNNClassifier(encoder=enc, num_classes=num_classes, dropout=dropout)


@register_model(
    "rnn_tagger",
    not_exportable="it packs variable-length sequences (pack_padded_sequence) only when a batch holds padding, a branch on the data that torch.export cannot trace",
    example={"input_shape": [12], "dtype": "long", "vocab_size": 20, "kwargs": {"vocab_size": 20, "num_classes": 5, "hidden_size": 16, "embed_dim": 8, "bidirectional": True}},
)
def rnn_tagger(
    *,
    num_classes: int,
    cell: Cell = "lstm",
    vocab_size: int | None = None,
    input_size: int = 1,
    embed_dim: int = 64,
    hidden_size: int = 128,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    pad_id: int | None = 0,
) -> RNNTagger:
    """Sequence labeller: RNN/LSTM/GRU (usually bidirectional) -> one label per position."""
    enc = _encoder(cell, vocab_size, input_size, embed_dim, hidden_size, num_layers, bidirectional, dropout, pad_id, "last")
    return RNNTagger(encoder=enc, num_classes=num_classes, dropout=dropout)


@register_model(
    "rnn_forecaster",
    example={"input_shape": [24, 1], "kwargs": {"input_size": 1, "horizon": 4, "hidden_size": 16, "cell": "gru"}},
)
def rnn_forecaster(
    *,
    horizon: int = 1,
    input_size: int = 1,
    cell: Cell = "lstm",
    hidden_size: int = 64,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    relative: bool = True,
    level_mean: float = 0.0,
    level_std: float = 1.0,
    change_std: float = 1.0,
) -> Forecaster:
    """Forecaster: window (N, L, C) -> next `horizon` values, as changes from the last value."""
    enc = _encoder(cell, None, input_size, 0, hidden_size, num_layers, bidirectional, dropout, None, "last")
    return Forecaster(
        encoder=enc, horizon=horizon, relative=relative, level_mean=level_mean, level_std=level_std, change_std=change_std
    )
