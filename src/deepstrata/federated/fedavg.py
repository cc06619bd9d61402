"""Federated averaging: many clients train one model without their data leaving them.

Problem: the data that would make a model good is spread over phones, hospitals and banks that
may not pool it. Plain distributed SGD would need a round trip per step, which such clients
cannot afford, and their data are far from identically distributed.
Idea (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
Decentralized Data"): in each round the server sends the global model to a fraction C of the K
clients; each runs E epochs of minibatch SGD (batch B) on its own data and sends back only its
update; the server replaces the model by the examples-weighted mean of the clients' models.
Options from the literature, each a setting of this strategy:

- FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): each client
  minimises its loss plus (mu/2)||w - w_global||^2, which keeps clients with skewed data from
  drifting apart; `proximal_mu`.
- Secure aggregation (Bonawitz et al. 2017): clients mask their updates with pairwise masks that
  cancel in the sum (`secure_aggregation.py`); `secure_aggregation: true`.
- DP-FedAvg (McMahan et al. 2018): updates clipped to `client_clip_norm`, Gaussian noise of
  `noise_multiplier` times that norm on the sum, clients sampled independently with probability
  `fraction`, and epsilon at `delta` from Opacus' RDP accountant (`aggregation.py`).

It is a strategy (`trainer.strategy: {name: fedavg, ...}`) so the toolkit's own loop does the
clients' local SGD: one trainer epoch is one round, whose batches are the chosen clients'
batches one client after another. Between two clients the strategy puts the global weights back
and clears the optimizer's state; after the last one it aggregates, and the loop then validates
the new global model and checkpoints it like any epoch. Two ways to run the same rounds:

- simulation (one process): every client lives in this process; 100 clients with 10 sampled
  per round are routine;
- ranks (torchrun, gloo or anything): rank 0 is the server, ranks 1..K the clients, one client
  each. They exchange through torchrun's key-value store with a deadline per client
  (`transport.py`): a client that dies or hangs is dropped after `client_timeout_s`, and the
  round goes on with the others.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from deepstrata.errors import UserError
from deepstrata.federated import secure_aggregation as secure
from deepstrata.federated.aggregation import Contribution, assign, client_contribution, flatten, float_keys, new_global
from deepstrata.federated.splits import describe
from deepstrata.registry import register_strategy, registry
from deepstrata.training.strategy import SingleProcess, launched_by_torchrun

# How long a client rank waits for the server's next message (the server validates and writes
# checkpoints between rounds) before it concludes the server is gone.
SERVER_TIMEOUT_S = 3600.0
# Values after the update in each client's packed vector: weight, loss x examples, examples, drift, 1.
PACKED_TAIL = 5


class RoundLoader:
    """The trainer's "training loader" under fedavg: iterating it runs one round.

    The trainer resumes an epoch at `sampler.set_position(epoch, batch_idx * batch_size)`;
    with batch_size 1 that is the number of the round's batches already trained, which is all
    the strategy needs to continue a round mid-way.
    """

    batch_size = 1
    generator = None
    collate_fn = None

    def __init__(self, strategy: FederatedAveraging, dataset: Any):
        self.strategy = strategy
        self.dataset = dataset
        self.sampler = self

    def set_position(self, epoch: int, start: int) -> None:
        self.strategy.resume_skip = start

    def __len__(self) -> int:
        return self.strategy.round_batches(self.strategy.round)

    def __iter__(self) -> Iterator[Any]:
        return self.strategy.run_round(self.strategy.round)


class FederatedAveraging(SingleProcess):
    """FedAvg rounds over simulated clients (one process) or client ranks (torchrun)."""

    name = "fedavg"

    def __init__(
        self,
        *,
        clients: int,
        fraction: float,
        local_epochs: int,
        split: dict[str, Any],
        proximal_mu: float,
        secure_aggregation: bool,
        client_clip_norm: float | None,
        noise_multiplier: float,
        delta: float,
        client_timeout_s: float,
    ):
        if not 0 < fraction <= 1:
            raise UserError(f"trainer.strategy.fraction is the share of clients per round, in (0, 1]; got {fraction}")
        if noise_multiplier and client_clip_norm is None:
            raise UserError("DP-FedAvg bounds each client's update before adding noise: set trainer.strategy.client_clip_norm with noise_multiplier")
        self.clients, self.fraction, self.local_epochs = clients, fraction, local_epochs
        self.split = split
        self.proximal_mu, self.secure = proximal_mu, secure_aggregation
        self.client_clip_norm, self.noise_multiplier, self.delta = client_clip_norm, noise_multiplier, delta
        self.client_timeout_s = client_timeout_s
        self.ranked = launched_by_torchrun()
        self.channel: Any = None
        if self.ranked:
            self.world_size, self.rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
            self.is_rank_zero = self.rank == 0
            if clients != self.world_size - 1:
                raise UserError(
                    f"under torchrun rank 0 is the server and every other rank one client: "
                    f"set trainer.strategy.clients={self.world_size - 1} for {self.world_size} ranks (got {clients})"
                )
            from deepstrata.federated.transport import StoreChannel

            self.channel = StoreChannel()
        self.trainer: Any = None
        self.optimizer: Any = None
        self.model: Any = None
        self.keys: list[str] = []
        self.seed = 0
        self.client_data: dict[int, Any] = {}
        self.sizes: list[int] = []
        self.split_stats: dict[str, float] = {}
        self.pending: dict[str, Any] | None = None  # the round in progress (simulation), for exact resume
        self.resume_skip = 0
        self.rounds_done = 0
        self.dropped: list[dict[str, int]] = []
        self.discarded: list[int] = []
        self.last: dict[str, float] = {}
        self.history: list[tuple[float, float, int]] = []  # DP-FedAvg: (sigma, q, rounds) for the accountant
        self.anchor: list[torch.Tensor] = []
        self.loss_sum, self.loss_count = 0.0, 0
        self.maskers: dict[int, secure.MaskingClient] = {}
        self._broadcasts = 0

    # ------------------------------------------------------------------ set-up
    @property
    def round(self) -> int:
        return int(self.trainer.state.epoch)

    @property
    def private(self) -> bool:
        return self.client_clip_norm is not None

    def setup(self, task: Any) -> None:
        self.model = task.model
        self.keys = float_keys(self.model)

    def prepare_training(self, trainer: Any, optimizer: Any, train_loader: Any) -> tuple[Any, Any]:
        if trainer.accumulate_grad_batches != 1:
            raise UserError("trainer.strategy=fedavg trains each client on whole batches; set trainer.accumulate_grad_batches=1")
        self.trainer, self.optimizer = trainer, optimizer
        self.seed = int(getattr(train_loader.sampler, "seed", 0))
        dataset = train_loader.dataset
        labels = _labels(dataset)
        factory = registry("client_split").get(self.split["name"])
        parts = factory(labels, self.clients, self.seed, **{k: v for k, v in self.split.items() if k != "name"})
        self.sizes = [len(p) for p in parts]
        self.split_stats = describe(parts, labels)
        mine = range(self.clients) if not self.ranked else ([] if self.is_rank_zero else [self.rank - 1])
        self.client_data = {k: _client_loader(train_loader, parts[k], self.seed + 7919 * (k + 1)) for k in mine}
        if self.secure:
            if self.ranked:
                if not self.is_rank_zero:
                    self.maskers = {self.rank - 1: secure.MaskingClient(self.rank - 1)}
                    self.channel.put(f"key/{self.rank - 1}", self.maskers[self.rank - 1].public_key())
            else:  # simulated clients: keys derived from the seed, so a resumed round masks as before
                self.maskers = {k: secure.MaskingClient(k, seed=(self.seed, k)) for k in range(self.clients)}
        if self.is_rank_zero:
            print(self.describe(), file=sys.stderr, flush=True)
        return optimizer, RoundLoader(self, dataset)

    def describe(self) -> str:
        s = self.split_stats
        mode = f"{self.world_size} torchrun ranks (server + {self.clients} clients)" if self.ranked else f"{self.clients} simulated clients"
        extra = [f"FedProx mu={self.proximal_mu:g}"] if self.proximal_mu else []
        extra += ["secure aggregation"] if self.secure else []
        extra += [f"DP-FedAvg clip {self.client_clip_norm:g} noise {self.noise_multiplier:g}"] if self.private else []
        return (
            f"fedavg: {mode}, {self.split['name']} split ({s['size_min']}-{s['size_max']} examples, "
            f"{s['classes_per_client_mean']:.2f} classes per client on average), fraction {self.fraction:g} per round, "
            f"{self.local_epochs} local epochs" + "".join(f", {e}" for e in extra)
        )

    # ------------------------------------------------------------------ which clients, how many batches
    def choose(self, r: int) -> list[int]:
        """The clients of round r: a fixed-size sample, or under DP-FedAvg each with probability `fraction`."""
        rng = np.random.default_rng([self.seed, r, 20170217])
        if self.private:
            return [int(k) for k in np.flatnonzero(rng.random(self.clients) < self.fraction)]
        m = max(1, round(self.fraction * self.clients))
        return sorted(int(k) for k in rng.choice(self.clients, size=m, replace=False))

    def round_batches(self, r: int) -> int:
        return sum(self.local_epochs * len(self.client_data[k]) for k in self.choose(r) if k in self.client_data)

    # ------------------------------------------------------------------ one round
    def run_round(self, r: int) -> Iterator[Any]:
        if not self.ranked:
            return self._simulated_round(r)
        return self._server_round(r) if self.is_rank_zero else self._client_round(r)

    def _start_client(self, global_vector: torch.Tensor) -> None:
        """A client's local training begins at the global model, with a fresh optimizer state."""
        assign(self.model, self.keys, global_vector)
        self.optimizer.state.clear()
        self.loss_sum, self.loss_count = 0.0, 0
        self._set_anchor(global_vector)

    def _set_anchor(self, global_vector: torch.Tensor) -> None:
        if not self.proximal_mu:
            return
        offsets, offset = {}, 0
        state = self.model.state_dict()
        for k in self.keys:
            offsets[k] = (offset, state[k])
            offset += state[k].numel()
        self.anchor = []
        for name, p in self.model.named_parameters():
            start, like = offsets[name]
            self.anchor.append(global_vector[start:start + p.numel()].view_as(p).to(p.device, p.dtype))

    def _local_batches(self, k: int, r: int, skip: int) -> Iterator[Any]:
        """Client k's E local epochs of round r, from batch `skip` on (a resumed round)."""
        loader = self.client_data[k]
        per_epoch = len(loader)
        for e in range(skip // per_epoch, self.local_epochs):
            first = skip - e * per_epoch if e == skip // per_epoch else 0
            loader.sampler.set_position(r * self.local_epochs + e, first * loader.batch_size)
            yield from loader

    def _contribution(self, k: int, global_vector: torch.Tensor) -> Contribution:
        update = flatten(self.model, self.keys) - global_vector
        loss = self.loss_sum / max(1, self.loss_count)
        return client_contribution(update, self.sizes[k], loss, self.client_clip_norm)

    @staticmethod
    def _packed(c: Contribution) -> torch.Tensor:
        """One vector per client, whose sum over clients is all the server needs (and, with secure
        aggregation, all it learns): the weighted update, its weight, and for the log the summed
        loss, examples, drift (update norm) and client count."""
        tail = [c.weight, c.loss * c.examples, float(c.examples), c.update_norm, 1.0]
        return torch.cat([c.weighted_update, torch.tensor(tail, dtype=torch.float64)])

    def _simulated_round(self, r: int) -> Iterator[Any]:
        skip, self.resume_skip = self.resume_skip, 0
        p = self.pending
        if p is None or p["round"] != r:
            skip = 0
            g = flatten(self.model, self.keys)
            p = self.pending = {"round": r, "global": g, "sum": torch.zeros(g.numel() + PACKED_TAIL, dtype=torch.float64),
                                "masked": torch.zeros(g.numel() + PACKED_TAIL, dtype=torch.int64), "done": []}
        chosen = self.choose(r)
        position = 0
        for k in chosen:
            batches = self.local_epochs * len(self.client_data[k])
            if k in p["done"]:
                position += batches
                continue
            start = max(0, skip - position)
            if start == 0:
                self._start_client(p["global"])
            else:
                self._set_anchor(p["global"])
            yield from self._local_batches(k, r, start)
            c = self._contribution(k, p["global"])
            packed = self._packed(c)
            if self.secure:  # the server only ever adds masked vectors
                peers = {j: self.maskers[j].public_key() for j in chosen}
                masked = self.maskers[k].mask(secure.encode(packed), peers, context=f"round {r}".encode())
                p["masked"] = torch.from_numpy(secure.add(p["masked"].numpy().astype(np.uint64), masked).astype(np.int64))
            else:
                p["sum"] += packed
            p["done"].append(k)
            position += batches
        if self.secure and chosen:
            total = secure.decode(p["masked"].numpy().astype(np.uint64))
        else:
            total = p["sum"]
        self._finish(r, p["global"], total, chosen, chosen)
        self.pending = None

    def _finish(self, r: int, global_vector: torch.Tensor, total: torch.Tensor, chosen: list[int], received: list[int]) -> None:
        """Aggregate the round's sums (of `_packed` vectors) into the new global model and note what happened."""
        update_sum = total[:-PACKED_TAIL]
        weight, loss_sum, examples, drift_sum, count = (float(v) for v in total[-PACKED_TAIL:])
        if self.private:
            expected = self.fraction * self.clients
            generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, r, 2018]).integers(2**62)))
            new = new_global(global_vector, update_sum, weight, noise_std=self.noise_multiplier * self.client_clip_norm,
                             expected_clients=expected, generator=generator)
            self.history.append((float(self.noise_multiplier), float(self.fraction), 1))
        elif weight > 0:
            new = new_global(global_vector, update_sum, weight)
        else:
            new = global_vector  # nobody answered: the model stays
        assign(self.model, self.keys, new)
        self.last = {"federated/clients": float(len(received)), "federated/dropped": float(len(chosen) - len(received))}
        if examples > 0.5:
            self.last["federated/client_loss"] = loss_sum / examples
            self.last["federated/client_drift"] = drift_sum / round(count)  # mean ||w_k - w_global||
        self.rounds_done = r + 1

    # ------------------------------------------------------------------ ranks
    def _server_round(self, r: int) -> Iterator[Any]:
        """Rank 0: publish the global model, collect updates until the deadline, aggregate, publish the result."""
        ch = self.channel
        g = flatten(self.model, self.keys)
        chosen = self.choose(r)
        ch.put_tensors(f"{r}/global", {"w": g})
        ch.put_json(f"{r}/chosen", chosen)
        deadline = time.monotonic() + self.client_timeout_s
        received, parts = [], []
        for k in chosen:
            got = ch.get_tensors(f"{r}/update/{k}", max(0.0, deadline - time.monotonic()))
            if got is None:
                self.dropped.append({"round": r, "client": k})
                print(f"fedavg: round {r}: client {k} (rank {k + 1}) sent no update within {self.client_timeout_s:g} s; "
                      "dropped from this round", file=sys.stderr, flush=True)
                continue
            received.append(k)
            parts.append(got["u"])
        if self.secure:
            if received and len(received) == len(chosen):
                total = secure.unmask_sum([t.numpy().astype(np.uint64) for t in parts])
            else:
                if received:
                    print(f"fedavg: round {r}: secure aggregation without dropout recovery cannot remove the masks of the "
                          f"{len(chosen) - len(received)} missing clients; the round is discarded", file=sys.stderr, flush=True)
                    self.discarded.append(r)
                total = torch.zeros(g.numel() + PACKED_TAIL, dtype=torch.float64)
                received = []
        else:
            total = sum(parts, torch.zeros(g.numel() + PACKED_TAIL, dtype=torch.float64))
        self._finish(r, g, total, chosen, received)
        ch.put_tensors(f"{r}/result", {"w": flatten(self.model, self.keys)})
        if r > 0:  # the previous round's values are no longer needed by anyone
            for key in [f"{r - 1}/global", f"{r - 1}/chosen", f"{r - 1}/result", *(f"{r - 1}/update/{k}" for k in self.choose(r - 1))]:
                try:
                    ch.delete(key)
                except RuntimeError:
                    pass
        return iter(())

    def _client_round(self, r: int) -> Iterator[Any]:
        """Rank k+1: wait for the round, train on client k's data if chosen, send the update, take the result."""
        ch, k = self.channel, self.rank - 1
        chosen = ch.get_json(f"{r}/chosen", SERVER_TIMEOUT_S)
        if chosen is None:
            raise UserError(f"fedavg client {k}: the server (rank 0) published no round {r} within {SERVER_TIMEOUT_S:g} s")
        if k in chosen:
            g = ch.get_tensors(f"{r}/global", SERVER_TIMEOUT_S)["w"]
            self._start_client(g)
            print(f"fedavg: client {k} trains round {r}", file=sys.stderr, flush=True)
            yield from self._local_batches(k, r, 0)
            c = self._contribution(k, g)
            packed = self._packed(c)
            if self.secure:
                peers = {j: ch.get(f"key/{j}", self.client_timeout_s) for j in chosen}
                peers = {j: v for j, v in peers.items() if v is not None}
                masked = self.maskers[k].mask(secure.encode(packed), peers, context=f"round {r}".encode())
                packed = torch.from_numpy(masked.astype(np.int64))
            ch.put_tensors(f"{r}/update/{k}", {"u": packed})
        result = ch.get_tensors(f"{r}/result", SERVER_TIMEOUT_S)
        if result is None:
            raise UserError(f"fedavg client {k}: the server (rank 0) sent no result of round {r} within {SERVER_TIMEOUT_S:g} s")
        assign(self.model, self.keys, result["w"])
        self.rounds_done = r + 1

    # ------------------------------------------------------------------ inside the loop
    def training_step(self, task: Any, batch: Any) -> Any:
        out = task.training_step(batch)
        self.loss_sum += float(out.loss.detach()) * out.batch_size
        self.loss_count += out.batch_size
        if self.proximal_mu:  # FedProx: the client's objective keeps it near the global model
            proximal = sum(((p - a) ** 2).sum() for p, a in zip(self.model.parameters(), self.anchor))
            out.loss = out.loss + 0.5 * self.proximal_mu * proximal
        return out

    def epoch_metrics(self) -> dict[str, float]:
        metrics = dict(self.last)
        if self.ranked and "federated/client_loss" in metrics:
            metrics["train/loss"] = metrics["federated/client_loss"]  # the server trains nothing itself
        if self.private:
            epsilon = self.epsilon()
            if math.isfinite(epsilon):
                metrics["train/epsilon"] = epsilon
        return metrics

    def epsilon(self) -> float:
        """DP-FedAvg's client-level epsilon at `delta` after the rounds so far (Opacus' RDP accountant)."""
        if not self.history:
            return 0.0
        if not self.noise_multiplier:
            return math.inf
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = [(self.noise_multiplier, self.fraction, len(self.history))]
        return float(accountant.get_epsilon(delta=self.delta))

    # ------------------------------------------------------------------ what the run keeps
    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "mode": "ranks" if self.ranked else "simulation",
            "clients": self.clients,
            "fraction": self.fraction,
            "local_epochs": self.local_epochs,
            "split": self.split,
            "split_stats": self.split_stats,
            "proximal_mu": self.proximal_mu,
            "secure_aggregation": self.secure,
            "rounds": self.rounds_done,
            "dropped": self.dropped,
            "discarded_rounds": self.discarded,
            "client_timeout_s": self.client_timeout_s,
        }
        if self.private:
            epsilon = self.epsilon()
            out["dp"] = {"client_clip_norm": self.client_clip_norm, "noise_multiplier": self.noise_multiplier,
                         "delta": self.delta, "epsilon": epsilon if math.isfinite(epsilon) else None, "accountant": "rdp"}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "rounds_done": self.rounds_done, "dropped": self.dropped,
                "discarded": self.discarded, "history": [list(h) for h in self.history], "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rounds_done" not in state:
            raise UserError("this checkpoint was written without trainer.strategy=fedavg; resume it with the strategy it was trained with")
        self.pending, self.rounds_done = state["pending"], int(state["rounds_done"])
        self.dropped, self.discarded = list(state["dropped"]), list(state["discarded"])
        self.history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
        self.last = dict(state["last"])

    # ------------------------------------------------------------------ ranks share small values through the store
    def broadcast(self, obj: Any) -> Any:
        if not self.ranked:
            return obj
        key = f"broadcast/{self._broadcasts}"
        self._broadcasts += 1
        if self.is_rank_zero:
            self.channel.put_json(key, {"path": str(obj)} if isinstance(obj, Path) else {"value": obj})
            return obj
        box = self.channel.get_json(key, SERVER_TIMEOUT_S)
        if box is None:
            raise UserError(f"fedavg client: the server (rank 0) shared nothing within {SERVER_TIMEOUT_S:g} s")
        return Path(box["path"]) if "path" in box else box["value"]


def _labels(dataset: Any) -> np.ndarray:
    """The class label of every training example, for the label-skewed splits."""
    from deepstrata.data.tensor_loader import tensor_source

    source = tensor_source(dataset)
    if source is not None:
        tensors, rows = source
        labels = tensors[1] if rows is None else tensors[1][rows]
        return labels.cpu().numpy().astype(np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def _client_loader(train_loader: Any, part: np.ndarray, seed: int) -> Any:
    """A loader like the recipe's training loader (same batch size, augmentation, device) over one client's rows."""
    from deepstrata.data.tensor_loader import TensorLoader, tensor_source
    from deepstrata.training.sampler import ResumableSampler

    dataset = train_loader.dataset
    if isinstance(train_loader, TensorLoader):
        tensors, rows = tensor_source(dataset)  # type: ignore[misc]
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        subset = Subset(base, (rows[torch.as_tensor(part)] if rows is not None else torch.as_tensor(part)).tolist())
        placed = {(id(t), str(train_loader.device)): d for t, d in zip(tensors, train_loader.tensors)}
        return TensorLoader(subset, batch_size=train_loader.batch_size, sampler=ResumableSampler(subset, seed=seed, shuffle=True),
                            augment=train_loader.collate_fn, device=train_loader.device, placed=placed)
    subset = Subset(dataset, part.tolist())
    return DataLoader(subset, batch_size=train_loader.batch_size, sampler=ResumableSampler(subset, seed=seed, shuffle=True),
                      collate_fn=train_loader.collate_fn, num_workers=getattr(train_loader, "num_workers", 0))


@register_strategy("fedavg")
def fedavg(
    *,
    device: torch.device,
    clients: int = 100,
    fraction: float = 0.1,
    local_epochs: int = 1,
    split: str | dict[str, Any] = "iid",
    proximal_mu: float = 0.0,
    secure_aggregation: bool = False,
    client_clip_norm: float | None = None,
    noise_multiplier: float = 0.0,
    delta: float = 1e-5,
    client_timeout_s: float = 120.0,
) -> FederatedAveraging:
    """Federated averaging (McMahan et al. 2017): a trainer epoch is a round of E local epochs on C*K clients.

    split: a client split (`strata list client_splits`), by name or `{name: dirichlet, alpha: 0.1}`.
    proximal_mu > 0 is FedProx; secure_aggregation masks updates pairwise; client_clip_norm with
    noise_multiplier is DP-FedAvg. Under torchrun rank 0 serves and ranks 1..clients train.
    """
    from deepstrata.arguments import validate_component_kwargs

    spec = {"name": split} if isinstance(split, str) else dict(split)
    if "name" not in spec:
        raise UserError("trainer.strategy.split needs a name: iid, shards or dirichlet (`strata list client_splits`)")
    factory = registry("client_split").get(spec["name"])
    kwargs = validate_component_kwargs(factory, {k: v for k, v in spec.items() if k != "name"}, path="trainer.strategy.split",
                                       injected=frozenset({"labels", "clients", "seed"}))
    if clients < 1 or local_epochs < 1:
        raise UserError(f"trainer.strategy needs clients >= 1 and local_epochs >= 1 (got {clients} and {local_epochs})")
    if proximal_mu < 0 or noise_multiplier < 0 or client_timeout_s <= 0:
        raise UserError("trainer.strategy: proximal_mu and noise_multiplier are >= 0 and client_timeout_s > 0")
    return FederatedAveraging(
        clients=clients, fraction=fraction, local_epochs=local_epochs, split={"name": spec["name"], **kwargs},
        proximal_mu=proximal_mu, secure_aggregation=secure_aggregation, client_clip_norm=client_clip_norm,
        noise_multiplier=noise_multiplier, delta=delta, client_timeout_s=client_timeout_s,
    )
