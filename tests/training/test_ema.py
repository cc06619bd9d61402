"""The moving-average target network: closed form, no gradient."""

from __future__ import annotations

import torch
from torch import nn

from deepstrata.training.ema import TargetNetwork


def test_target_equals_the_closed_form_ema_of_the_online_trajectory() -> None:
    torch.manual_seed(0)
    online = nn.Linear(4, 3)
    m = 0.9
    target = TargetNetwork(online, momentum=m)
    opt = torch.optim.SGD(online.parameters(), lr=0.1)
    trajectory = [online.weight.detach().clone()]  # theta_0
    for _ in range(20):
        x = torch.randn(8, 4)
        # A BYOL-style loss: online predicts the target's output; the target must get no gradient.
        loss = (online(x) - target(x)).pow(2).mean() + online(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in target.parameters())
        opt.step()
        target.update(online)
        trajectory.append(online.weight.detach().clone())
    steps = len(trajectory) - 1
    # target_T = m^T theta_0 + (1 - m) * sum_{t=1..T} m^(T-t) theta_t
    closed = m**steps * trajectory[0] + sum((1 - m) * m ** (steps - t) * trajectory[t] for t in range(1, steps + 1))
    torch.testing.assert_close(target.target.weight, closed, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(target.target.weight, online.weight, atol=1e-3)  # it really lags behind
