"""GRU attention seq2seq: teacher forcing equals stepwise decoding, padding is invisible, beam search is exact when wide."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepstrata.models.seq2seq import AdditiveAttention, MultiplicativeAttention, gru_attention_seq2seq

ATTENTIONS = ["additive", "multiplicative"]


def _model(attention: str, vocab: int = 12, max_len: int = 6):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return gru_attention_seq2seq(vocab_size=vocab, attention=attention, embed_dim=8, hidden_size=16, max_target_len=max_len).eval()


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_attention_weights_are_a_distribution_over_real_tokens(attention: str) -> None:
    model = _model(attention)
    src = torch.tensor([[5, 6, 7, 0, 0], [4, 5, 6, 7, 8]])
    tgt_in = torch.tensor([[1, 4, 5], [1, 6, 7]])
    logits, attn = model(src, tgt_in, return_attention=True)
    assert logits.shape == (2, 3, 12) and attn.shape == (2, 3, 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3))
    assert attn[0, :, 3:].abs().max() == 0  # padding receives no attention


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padding_does_not_change_the_output(attention: str) -> None:
    """A source padded inside a longer batch gives the same logits and attention as alone."""
    model = _model(attention)
    short = torch.tensor([[5, 6, 7]])
    batch = torch.tensor([[5, 6, 7, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    tgt_in = torch.tensor([[1, 4, 5, 6]])
    alone, attn_alone = model(short, tgt_in, return_attention=True)
    padded, attn_padded = model(batch, tgt_in.repeat(2, 1), return_attention=True)
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attn_padded[0, :, :3], attn_alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_greedy_decoding_is_teacher_forcing_on_its_own_output(attention: str) -> None:
    """Feeding the greedy output back as the teacher-forced input reproduces its logits and argmaxes."""
    model = _model(attention)
    src = torch.randint(3, 12, (4, 7), generator=torch.Generator().manual_seed(1))
    tokens, attn = model.greedy_decode(src, max_len=5)
    assert attn.shape == (4, tokens.shape[1], 7)
    tgt_in = torch.cat([torch.full((4, 1), 1), tokens[:, :-1]], dim=1)
    logits = model(src, tgt_in)
    first_eos = [(row == 2).nonzero()[0].item() if (row == 2).any() else len(row) - 1 for row in tokens]
    for i, end in enumerate(first_eos):
        assert torch.equal(logits[i, : end + 1].argmax(-1), tokens[i, : end + 1])


@torch.no_grad()
def _logprobs(model, src: torch.Tensor, seqs: list[tuple[int, ...]]) -> list[float]:  # type: ignore[no-untyped-def]
    """Total log-probability of each sequence up to and including its first <eos>, in one batch."""
    seq = torch.tensor(seqs)
    tgt_in = torch.cat([torch.ones(len(seqs), 1, dtype=torch.long), seq[:, :-1]], dim=1)
    logp = torch.log_softmax(model(src.expand(len(seqs), -1), tgt_in), dim=-1).gather(-1, seq[:, :, None]).squeeze(-1)
    ends = [s.index(2) + 1 if 2 in s else len(s) for s in seqs]
    return [float(row[:end].sum()) for row, end in zip(logp, ends)]


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_search_width_one_is_greedy(attention: str) -> None:
    model = _model(attention)
    src = torch.randint(3, 12, (5, 6), generator=torch.Generator().manual_seed(2))
    greedy, _ = model.greedy_decode(src, max_len=5)
    beam, _ = model.beam_search(src, beam_size=1, max_len=5)
    assert torch.equal(beam[:, : greedy.shape[1]], greedy)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_wide_beam_search_finds_the_most_probable_sequence(attention: str) -> None:
    """With beam width V^(L-1) nothing is pruned before the last step: beam search equals brute force."""
    vocab, length = 5, 3
    model = _model(attention, vocab=vocab, max_len=length + 1)
    with torch.no_grad():
        model.out.bias.normal_(0, 2.0)  # a peaked model whose <eos> competes with the other tokens
    for seed in range(3):
        src = torch.randint(3, vocab, (1, 4), generator=torch.Generator().manual_seed(seed))
        seqs = list(itertools.product(range(vocab), repeat=length))
        scores = _logprobs(model, src, seqs)
        best_i = max(range(len(seqs)), key=lambda i: scores[i])
        cut = lambda s: tuple(s[: s.index(2) + 1]) if 2 in s else tuple(s)  # noqa: E731
        tokens, score = model.beam_search(src, beam_size=vocab ** (length - 1), max_len=length)
        assert cut(tokens[0].tolist()) == cut(list(seqs[best_i]))
        assert score.item() == pytest.approx(scores[best_i], abs=1e-4)


def test_attention_scores_follow_their_formulas() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(2, 4), torch.randn(2, 5, 6)
    mask = torch.ones(2, 5, dtype=torch.bool)
    add = AdditiveAttention(4, 6, 3)
    ctx, w = add(q, k, add.project_keys(k), mask)
    scores = (torch.tanh(q @ add.w_query.weight.T)[:, None] * 0 + torch.tanh((q @ add.w_query.weight.T)[:, None] + k @ add.w_key.weight.T + add.w_key.bias)) @ add.v.weight.T
    torch.testing.assert_close(w, torch.softmax(scores.squeeze(-1), -1))
    torch.testing.assert_close(ctx, (w[:, :, None] * k).sum(1))
    mul = MultiplicativeAttention(4, 6)
    ctx, w = mul(q, k, mul.project_keys(k), mask)
    torch.testing.assert_close(w, torch.softmax(torch.einsum("nq,qk,nsk->ns", q, mul.w.weight, k), -1))


def test_shape_errors_name_the_layer() -> None:
    model = _model("additive")
    with pytest.raises(ValueError, match=r"AttentionSeq2Seq.encoder expected \(N, \*\) input, got \(2, 3, 4\)"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer dtype"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"AttentionSeq2Seq.decoder expected \(2, \*\) input, got \(3, 4\)"):
        model(torch.ones(2, 3, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))
