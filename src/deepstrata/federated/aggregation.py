"""The server's step of federated averaging: clients' updates in, one new global model out.

Problem: after a round each client holds a model that moved from the global one on its own
data; the server must combine them without seeing the data, and, for a privacy guarantee, so
that no single client can move the result much.
Idea: work on one flat vector of the model's floating-point state (parameters and float
buffers such as BatchNorm statistics), and on each client's *update* delta_k = w_k - w_global.
- FedAvg (McMahan et al. 2017): w <- w + sum_k n_k delta_k / sum_k n_k, clients weighted by
  their number of examples n_k. A client sends n_k delta_k and n_k, so the server needs only
  two sums (which is what secure aggregation can give it: `secure_aggregation.py`).
- DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language
  Models"): each update is clipped to L2 norm S and weighted 1; the server divides the sum by
  the expected number of clients per round and adds Gaussian noise of standard deviation
  z * S / expected. A client's influence on a round is then bounded by S, so the rounds are
  a sampled Gaussian mechanism at the client level, accounted by Opacus' RDP accountant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def float_keys(model: nn.Module) -> list[str]:
    """The state entries FedAvg averages: every floating-point tensor (integer counters are kept as they are)."""
    return [k for k, v in model.state_dict().items() if v.is_floating_point()]


def flatten(model: nn.Module, keys: list[str]) -> torch.Tensor:
    """The model's floating-point state as one float64 vector on the CPU (a copy)."""
    state = model.state_dict()
    return torch.cat([state[k].detach().reshape(-1).to("cpu", torch.float64) for k in keys])


def assign(model: nn.Module, keys: list[str], vector: torch.Tensor) -> None:
    """Write a vector from `flatten` back into the model, in place, in each entry's dtype and device."""
    state = model.state_dict()
    offset = 0
    with torch.no_grad():
        for k in keys:
            target = state[k]
            n = target.numel()
            target.copy_(vector[offset:offset + n].view_as(target).to(target.device, target.dtype))
            offset += n
    if offset != vector.numel():
        raise ValueError(f"a vector of {vector.numel()} values does not fit a model state of {offset}")


@dataclass
class Contribution:
    """What one client sends after a round: weight * update, the weight, and its mean training loss."""

    weighted_update: torch.Tensor
    weight: float
    loss: float
    examples: int
    update_norm: float  # before clipping: how far the client drifted from the global model


def client_contribution(update: torch.Tensor, examples: int, loss: float, clip_norm: float | None) -> Contribution:
    """FedAvg: weight n_k. DP-FedAvg (`clip_norm` S set): the update scaled to norm at most S, weight 1."""
    norm = float(update.norm())
    if clip_norm is None:
        return Contribution(update * examples, float(examples), loss, examples, norm)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return Contribution(update * scale, 1.0, loss, examples, norm)


def new_global(
    global_vector: torch.Tensor,
    update_sum: torch.Tensor,
    weight_sum: float,
    *,
    noise_std: float = 0.0,
    expected_clients: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next global model from the round's sums; DP-FedAvg divides by `expected_clients` and adds noise."""
    if expected_clients is None:
        return global_vector + update_sum / weight_sum
    noise = torch.randn(update_sum.shape, generator=generator, dtype=update_sum.dtype) * noise_std if noise_std else 0.0
    return global_vector + (update_sum + noise) / expected_clients
