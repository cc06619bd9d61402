"""GPT: causal, cached generation equals uncached, sampling filters, shape errors."""

from __future__ import annotations

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.models.gpt import gpt
from deepstrata.nn.sampling import filter_logits, sample_next


def small(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return gpt(vocab_size=30, dim=32, depth=2, num_heads=2, max_len=12, **kw).eval()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rope"])
def test_greedy_generation_with_cache_equals_without(positional: str) -> None:
    model = small(positional=positional)
    prompt = torch.randint(6, 30, (3, 5), generator=torch.Generator().manual_seed(1))
    with_cache = model.generate(prompt, 12, temperature=0, use_cache=True)  # runs past max_len=12: cropped context
    without = model.generate(prompt, 12, temperature=0, use_cache=False)
    assert with_cache.shape == (3, 17) and torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :5], prompt)


def test_sampling_with_cache_equals_without_given_the_seed() -> None:
    model = small()
    prompt = torch.randint(6, 30, (2, 4), generator=torch.Generator().manual_seed(2))
    a = model.generate(prompt, 8, temperature=0.9, top_k=10, top_p=0.9, generator=torch.Generator().manual_seed(0))
    b = model.generate(prompt, 8, temperature=0.9, top_k=10, top_p=0.9, use_cache=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_logits_at_t_ignore_later_tokens() -> None:
    model = small()
    x = torch.randint(6, 30, (1, 12), generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[0, 9:] = torch.randint(6, 30, (3,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :9], model(y)[:, :9])


def test_top_k_and_top_p_filters() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False]]
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits.expand(1000, 4), top_k=2, generator=gen)]).flatten()
    assert set(draws.tolist()) == {0, 1}
    share = (draws == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.05  # renormalised over the kept tokens
    assert sample_next(logits, temperature=0).item() == 0


def test_temperature_flattens_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(4000, 3)
    gen = torch.Generator().manual_seed(0)
    cold = (sample_next(logits, temperature=0.3, generator=gen) == 0).float().mean().item()
    hot = (sample_next(logits, temperature=3.0, generator=gen) == 0).float().mean().item()
    assert cold > 0.9 and hot < 0.5


def test_errors() -> None:
    model = small()
    with pytest.raises(ValueError, match=r"GPT expected \(N, T\) integer token ids"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="max_len=12"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(UserError, match="top_p"):
        filter_logits(torch.zeros(1, 3), top_p=0.0)
    with pytest.raises(UserError, match="temperature"):
        sample_next(torch.zeros(1, 3), temperature=-1)
