"""A multi-armed bandit solved by policy gradient: REINFORCE's smallest real use.

Problem: an agent chooses among K arms with unknown Bernoulli payout rates and must learn to pull
the best one from its own rewards, with no gradient of the reward available. Idea: a softmax
policy over the arms, trained by REINFORCE on batches of pulls; a leave-one-out baseline centres
the reward so arms are judged relative to the batch's average (Williams 1992; Sutton & Barto
2018, ch. 2.8 "Gradient Bandit Algorithms").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepstrata.estimators.score_function import leave_one_out_baseline, reinforce_surrogate


@dataclass
class BanditResult:
    """Per-step probability of the best arm and mean reward of the batch."""

    best_arm_prob: list[float]
    mean_reward: list[float]


def train_bandit(
    rates: list[float], *, steps: int = 300, batch: int = 16, lr: float = 0.5, baseline: bool = True, seed: int = 0
) -> BanditResult:
    """Train a softmax policy on Bernoulli arms with payout `rates` by REINFORCE (Adam on the logits)."""
    if len(rates) < 2 or not all(0 <= r <= 1 for r in rates):
        raise ValueError(f"train_bandit: rates must be >= 2 probabilities in [0, 1], got {rates}")
    gen = torch.Generator().manual_seed(seed)
    p = torch.tensor(rates, dtype=torch.float64)
    best = int(p.argmax())
    logits = torch.zeros(len(rates), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    out = BanditResult([], [])
    for _ in range(steps):
        probs = torch.softmax(logits, 0)
        arms = torch.multinomial(probs.detach(), batch, replacement=True, generator=gen)  # (B,)
        rewards = torch.bernoulli(p[arms], generator=gen)  # (B,)
        log_prob = torch.log_softmax(logits, 0)[arms]
        b = leave_one_out_baseline(rewards) if baseline else None
        loss = -reinforce_surrogate(log_prob, rewards, baseline=b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.best_arm_prob.append(float(torch.softmax(logits.detach(), 0)[best]))
        out.mean_reward.append(float(rewards.mean()))
    return out
