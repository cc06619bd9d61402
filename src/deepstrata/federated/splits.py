"""Client splits: how a federated run divides one training set among its clients.

Problem: federated learning is hard exactly because clients' data differ: one phone has photos
of cats, another of receipts. A simulation that hands every client a uniform random share
measures the easy case only, so the literature fixes a few standard ways to skew the shares.
Idea: a split is a function (labels, clients, seed) -> one index array per client, registered
by name (`strata list client_splits`):

- `iid`: a random permutation cut into equal parts (McMahan et al. 2017, "IID");
- `shards`: the paper's pathological non-IID split: sort by label, cut into
  `clients * shards_per_client` shards, give each client `shards_per_client` of them at random,
  so most clients see two digits (McMahan et al. 2017, section 3);
- `dirichlet`: per class, the class's examples are divided among clients in proportions drawn
  from Dirichlet(alpha): small alpha (0.1) gives each client a few dominant classes, large
  alpha tends to IID (Hsu et al. 2019, arXiv:1909.06335). Draws that leave a client with fewer
  than `min_size` examples are redrawn, as in Yurochkin et al. 2019.

Every split is a partition: each example belongs to exactly one client.
"""

from __future__ import annotations

import numpy as np

from deepstrata.errors import UserError
from deepstrata.registry import register_client_split

# How many Dirichlet draws may be redrawn before the split gives up and says what to change.
MAX_DRAWS = 1000


def _check(labels: np.ndarray, clients: int) -> None:
    if clients < 1:
        raise UserError(f"a client split needs at least one client, got clients={clients}")
    if len(labels) < clients:
        raise UserError(f"{len(labels)} training examples cannot be divided among {clients} clients; use fewer clients")


@register_client_split("iid")
def iid(labels: np.ndarray, clients: int, seed: int) -> list[np.ndarray]:
    """Uniform random shares of (nearly) equal size: the IID baseline."""
    _check(labels, clients)
    order = np.random.default_rng(seed).permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, clients)]


@register_client_split("shards")
def shards(labels: np.ndarray, clients: int, seed: int, shards_per_client: int = 2) -> list[np.ndarray]:
    """McMahan et al.'s pathological non-IID split: label-sorted shards, `shards_per_client` each."""
    _check(labels, clients)
    if shards_per_client < 1:
        raise UserError(f"shards_per_client must be >= 1, got {shards_per_client}")
    count = clients * shards_per_client
    if len(labels) < count:
        raise UserError(f"{len(labels)} examples cannot make {count} shards; use fewer clients or shards_per_client")
    rng = np.random.default_rng(seed)
    # Stable sort by label, ties in a random order, so a shard is a run of one (rarely two) labels.
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    pieces = np.array_split(order, count)
    dealt = rng.permutation(count)
    return [np.sort(np.concatenate([pieces[s] for s in dealt[c * shards_per_client:(c + 1) * shards_per_client]])) for c in range(clients)]


@register_client_split("dirichlet")
def dirichlet(labels: np.ndarray, clients: int, seed: int, alpha: float = 0.5, min_size: int = 10) -> list[np.ndarray]:
    """Label skew: each class divided among clients in Dirichlet(alpha) proportions (0.1 is severe)."""
    _check(labels, clients)
    if alpha <= 0:
        raise UserError(f"dirichlet alpha must be > 0, got {alpha}; 0.1 is a strong skew, 100 nearly IID")
    if min_size * clients > len(labels):
        raise UserError(f"min_size={min_size} for {clients} clients needs {min_size * clients} examples, there are {len(labels)}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    for _ in range(MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for members in by_class:
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, piece in enumerate(np.split(members, cuts)):
                parts[client].append(piece)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise UserError(
        f"no Dirichlet({alpha}) split of {len(labels)} examples gave all {clients} clients {min_size} examples in "
        f"{MAX_DRAWS} draws; raise alpha, lower min_size or use fewer clients"
    )


def describe(parts: list[np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """Sizes and label skew of a split, for the log and run.json: mean classes per client and so on."""
    sizes = np.array([len(p) for p in parts])
    classes = np.array([len(np.unique(labels[p])) for p in parts])
    return {
        "clients": len(parts),
        "size_min": int(sizes.min()),
        "size_mean": float(sizes.mean()),
        "size_max": int(sizes.max()),
        "classes_per_client_mean": float(classes.mean()),
        "classes_per_client_min": int(classes.min()),
    }
