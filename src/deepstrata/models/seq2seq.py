"""GRU encoder-decoder with attention: additive (Bahdanau) or multiplicative (Luong).

Problem: an encoder-decoder that squeezes the whole source sentence into one fixed vector
(Cho et al. 2014; Sutskever et al. 2014) forgets long inputs, and the decoder cannot tell
which source word it is translating. Idea: keep every encoder state and, at each output step,
let the decoder take a softmax-weighted average of them (the attention weights say where it
looks): additive scores v^T tanh(W s + U h_j) from the previous decoder state (Bahdanau, Cho &
Bengio 2015, "Neural Machine Translation by Jointly Learning to Align and Translate"), or
multiplicative scores s^T W h_j from the current one with input feeding (Luong, Pham &
Manning 2015, "Effective Approaches to Attention-based Neural Machine Translation").

Training uses teacher forcing (the decoder reads the true previous token); inference decodes
greedily or with beam search, and returns the attention weights (N, T_out, T_src) for plotting.
The source and target share one vocabulary and one embedding (dates: one character set).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepstrata.nn.input_checks import check_input
from deepstrata.registry import register_model

State = tuple[torch.Tensor, ...]  # decoder state tensors, each with the batch first
Memory = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # encoder states, their projection, source mask


class AdditiveAttention(nn.Module):
    """score(q, h_j) = v^T tanh(W_q q + W_k h_j) (Bahdanau et al. 2015)."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.w_query = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_key = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(N, S, K) -> (N, S, A), computed once per source sentence."""
        return self.w_key(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, projected: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (N, Q), keys (N, S, K), mask (N, S) True at real tokens -> context (N, K), weights (N, S)."""
        scores = self.v(torch.tanh(self.w_query(query)[:, None, :] + projected)).squeeze(-1)  # (N, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights[:, None, :], keys).squeeze(1), weights


class MultiplicativeAttention(nn.Module):
    """score(q, h_j) = q^T W h_j, Luong et al. 2015's "general" score."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.w = nn.Linear(key_dim, query_dim, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(N, S, K) -> W h_j: (N, S, Q)."""
        return self.w(keys)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, projected: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.bmm(projected, query[:, :, None]).squeeze(-1)  # (N, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights[:, None, :], keys).squeeze(1), weights


def _reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) lengths -> (N, width) time indices reversing each row's first length[i] steps, padding kept in place."""
    t = torch.arange(width, device=lengths.device)[None, :]  # (1, S)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


class AttentionSeq2Seq(nn.Module):
    """Bidirectional GRU encoder; GRU decoder with additive or multiplicative attention.

    forward(src (N, S), tgt_in (N, T)) -> logits (N, T, V) under teacher forcing, where
    tgt_in starts with <bos>; without tgt_in it decodes greedily for `max_target_len - 1` steps.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        attention: Literal["additive", "multiplicative"] = "additive",
        embed_dim: int = 64,
        hidden_size: int = 128,
        encoder_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        max_target_len: int = 32,
    ):
        super().__init__()
        if attention not in ("additive", "multiplicative"):
            raise ValueError(f"unknown attention '{attention}'; choose additive (Bahdanau) or multiplicative (Luong)")
        self.vocab_size, self.attention, self.hidden_size = vocab_size, attention, hidden_size
        self.pad_id, self.bos_id, self.eos_id, self.max_target_len = pad_id, bos_id, eos_id, max_target_len
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        # Two GRU stacks, one per direction. The backward one reads each source reversed within
        # its own length, so padding never enters a state and no packing is needed (packed
        # sequences make the CPU GRU backward pass several times slower).
        self.encoder_fwd = nn.GRU(embed_dim, hidden_size, num_layers=encoder_layers, batch_first=True, dropout=dropout if encoder_layers > 1 else 0.0)
        self.encoder_bwd = nn.GRU(embed_dim, hidden_size, num_layers=encoder_layers, batch_first=True, dropout=dropout if encoder_layers > 1 else 0.0)
        enc_dim = 2 * hidden_size
        self.bridge = nn.Linear(enc_dim, hidden_size)  # first decoder state from the encoder's final states
        if attention == "additive":
            self.attn: nn.Module = AdditiveAttention(hidden_size, enc_dim, hidden_size)
            self.decoder = nn.GRUCell(embed_dim + enc_dim, hidden_size)  # input: [y_{t-1}; c_t]
            self.out = nn.Linear(hidden_size + enc_dim + embed_dim, vocab_size)  # from [s_t; c_t; y_{t-1}]
        else:
            self.attn = MultiplicativeAttention(hidden_size, enc_dim)
            self.decoder = nn.GRUCell(embed_dim + hidden_size, hidden_size)  # input feeding: [y_{t-1}; h~_{t-1}]
            self.combine = nn.Linear(enc_dim + hidden_size, hidden_size)  # h~_t = tanh(W_c [c_t; s_t])
            self.out = nn.Linear(hidden_size, vocab_size)

    # ------------------------------------------------------------------ encoder
    def encode(self, src: torch.Tensor) -> tuple[Memory, State]:
        """src (N, S) token ids -> memory (states (N, S, 2H), their projection, mask (N, S)) and the first decoder state."""
        check_input("AttentionSeq2Seq.encoder", src, (None, None))
        if src.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"AttentionSeq2Seq.encoder expected token ids (N, S) of an integer dtype, got {src.dtype}")
        mask = src != self.pad_id  # (N, S)
        mask[:, 0] |= ~mask.any(dim=1)  # an all-padding source still gets one position to attend to
        lengths = mask.sum(dim=1)  # (N,)
        longest = int(lengths.max())
        src, mask = src[:, :longest], mask[:, :longest]  # drop columns that are padding in every row
        emb = self.drop(self.embed(src))  # (N, S, E)
        fwd, _ = self.encoder_fwd(emb)  # (N, S, H); position t has read tokens 0..t only
        reverse = _reverse_index(lengths, longest)  # (N, S)
        bwd, _ = self.encoder_bwd(emb.gather(1, reverse[:, :, None].expand_as(emb)))
        bwd = bwd.gather(1, reverse[:, :, None].expand_as(bwd))  # back to source order: position t has read t..end
        states = torch.cat([fwd, bwd], dim=-1).masked_fill(~mask[:, :, None], 0.0)  # (N, S, 2H)
        last = (lengths - 1)[:, None, None].expand(-1, 1, fwd.shape[-1])
        final = torch.cat([fwd.gather(1, last).squeeze(1), bwd[:, 0]], dim=-1)  # forward after the end, backward after the start (N, 2H)
        s0 = torch.tanh(self.bridge(final))  # (N, H)
        memory = (states, self.attn.project_keys(states), mask)
        if self.attention == "additive":
            return memory, (s0,)
        return memory, (s0, torch.zeros_like(s0))  # (s, h~): Luong's input feeding starts from zeros

    # ------------------------------------------------------------------ one decoder step
    def step(self, token: torch.Tensor, state: State, memory: Memory) -> tuple[torch.Tensor, State, torch.Tensor]:
        """token (N,) -> logits (N, V), new state, attention weights (N, S)."""
        states, projected, mask = memory
        y = self.drop(self.embed(token))  # (N, E)
        if self.attention == "additive":
            (s_prev,) = state
            context, weights = self.attn(s_prev, states, projected, mask)  # attend with the previous state
            s = self.decoder(torch.cat([y, context], dim=-1), s_prev)
            logits = self.out(self.drop(torch.cat([s, context, y], dim=-1)))
            return logits, (s,), weights
        s_prev, h_tilde_prev = state
        s = self.decoder(torch.cat([y, h_tilde_prev], dim=-1), s_prev)
        context, weights = self.attn(s, states, projected, mask)  # attend with the current state
        h_tilde = torch.tanh(self.combine(torch.cat([context, s], dim=-1)))
        return self.out(self.drop(h_tilde)), (s, h_tilde), weights

    # ------------------------------------------------------------------ training: teacher forcing
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor | None = None, *, return_attention: bool = False):  # type: ignore[no-untyped-def]
        """Teacher forcing: logits (N, T, V) for tgt_in (N, T); (logits, attention (N, T, S)) if asked."""
        if tgt_in is None:
            tokens, attention, logits = self._greedy(src, self.max_target_len - 1)
            return (logits, attention) if return_attention else logits
        check_input("AttentionSeq2Seq.decoder", tgt_in, (src.shape[0], None))
        memory, state = self.encode(src)
        all_logits, all_weights = [], []
        for t in range(tgt_in.shape[1]):
            logits, state, weights = self.step(tgt_in[:, t], state, memory)
            all_logits.append(logits)
            all_weights.append(weights)
        logits = torch.stack(all_logits, dim=1)  # (N, T, V)
        return (logits, torch.stack(all_weights, dim=1)) if return_attention else logits

    # ------------------------------------------------------------------ inference
    def _greedy(self, src: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        memory, state = self.encode(src)
        token = torch.full((src.shape[0],), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros_like(token, dtype=torch.bool)
        tokens, weights_all, logits_all = [], [], []
        for _ in range(max_len):
            logits, state, weights = self.step(token, state, memory)
            token = logits.argmax(dim=-1).masked_fill(done, self.pad_id)  # after <eos>: padding
            tokens.append(token)
            weights_all.append(weights)
            logits_all.append(logits)
            done |= token == self.eos_id
            if bool(done.all()):
                break
        return torch.stack(tokens, 1), torch.stack(weights_all, 1), torch.stack(logits_all, 1)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """src (N, S) -> tokens (N, L) ending in <eos> then <pad>, attention weights (N, L, S)."""
        tokens, attention, _ = self._greedy(src, max_len or self.max_target_len - 1)
        return tokens, attention

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, *, beam_size: int = 4, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the `beam_size` most probable prefixes per input; returns tokens (N, L) and their log-probabilities (N,).

        A finished hypothesis (ended with <eos>) keeps its score and is extended only by <pad>
        at no cost, so hypotheses of different lengths compete on total log-probability.
        """
        max_len = max_len or self.max_target_len - 1
        n, k, v = src.shape[0], beam_size, self.vocab_size
        memory, state = self.encode(src)
        memory = tuple(m.repeat_interleave(k, dim=0) for m in memory)  # type: ignore[assignment]  # (N*K, ...)
        state = tuple(s.repeat_interleave(k, dim=0) for s in state)
        scores = torch.full((n, k), float("-inf"), device=src.device)
        scores[:, 0] = 0.0  # start from one hypothesis, not K copies of it
        token = torch.full((n * k,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(n * k, dtype=torch.bool, device=src.device)
        history = torch.zeros(n * k, 0, dtype=torch.long, device=src.device)
        base = (torch.arange(n, device=src.device) * k)[:, None]  # (N, 1) offset of each input's beams
        for _ in range(max_len):
            logits, state, _ = self.step(token, state, memory)
            logp = F.log_softmax(logits.float(), dim=-1)  # (N*K, V)
            finished = torch.full_like(logp, float("-inf"))
            finished[:, self.pad_id] = 0.0
            logp = torch.where(done[:, None], finished, logp)
            total = (scores.reshape(-1, 1) + logp).reshape(n, k * v)
            scores, flat = total.topk(k, dim=-1)  # (N, K)
            parent = (base + flat // v).reshape(-1)  # (N*K,) rows to continue
            token = (flat % v).reshape(-1)
            state = tuple(s.index_select(0, parent) for s in state)
            history = torch.cat([history.index_select(0, parent), token[:, None]], dim=1)
            done = done.index_select(0, parent) | (token == self.eos_id)
            if bool(done.all()):
                break
        best = history.reshape(n, k, -1)[:, 0]  # topk is sorted: beam 0 is the best
        return best, scores[:, 0]


@register_model(
    "gru_attention_seq2seq",
    not_exportable="translation is a greedy decoding loop whose length depends on the outputs (`generate`); its forward is one teacher-forced step, and exporting the encoder and a decoder step separately is not built",
    example={
        "input_shape": [10],
        "dtype": "long",
        "vocab_size": 12,
        "kwargs": {"vocab_size": 12, "embed_dim": 8, "hidden_size": 16, "max_target_len": 6},
    },
)
def gru_attention_seq2seq(
    *,
    vocab_size: int,
    attention: Literal["additive", "multiplicative"] = "additive",
    embed_dim: int = 64,
    hidden_size: int = 128,
    encoder_layers: int = 1,
    dropout: float = 0.0,
    pad_id: int = 0,
    bos_id: int = 1,
    eos_id: int = 2,
    max_target_len: int = 32,
) -> AttentionSeq2Seq:
    """GRU encoder-decoder with Bahdanau (additive) or Luong (multiplicative) attention; greedy and beam decoding."""
    return AttentionSeq2Seq(
        vocab_size=vocab_size,
        attention=attention,
        embed_dim=embed_dim,
        hidden_size=hidden_size,
        encoder_layers=encoder_layers,
        dropout=dropout,
        pad_id=pad_id,
        bos_id=bos_id,
        eos_id=eos_id,
        max_target_len=max_target_len,
    )
