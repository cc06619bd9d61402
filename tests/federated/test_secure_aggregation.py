"""Secure aggregation: the server's sum of masked updates equals the plain sum; one masked update shows nothing."""

from __future__ import annotations

import numpy as np
import torch

from deepstrata.federated import secure_aggregation as secure


def _clients_and_updates(n: int = 5, size: int = 4000):
    g = torch.Generator().manual_seed(0)
    updates = [torch.randn(size, generator=g, dtype=torch.float64) * 0.01 for _ in range(n)]
    clients = [secure.MaskingClient(i) for i in range(n)]
    peers = {c.client_id: c.public_key() for c in clients}
    masked = [c.mask(secure.encode(u), peers, context=b"round 0") for c, u in zip(clients, updates)]
    return updates, masked


def test_the_sum_of_masked_updates_is_the_plain_sum() -> None:
    updates, masked = _clients_and_updates()
    plain = sum(updates)
    total = secure.unmask_sum(masked)
    # Exact in the fixed-point encoding: the masks cancel bit for bit...
    exact = secure.decode(np.sum([secure.encode(u) for u in updates], axis=0).astype(np.uint64) & np.uint64(secure.MODULUS - 1))
    assert torch.equal(total, exact)
    # ...which is the float sum up to half an encoding step per client.
    assert float((total - plain).abs().max()) <= len(updates) * 2 ** -(secure.FRACTION_BITS + 1)


def test_one_masked_update_shows_nothing_of_the_update() -> None:
    updates, masked = _clients_and_updates()
    seen = masked[0].astype(np.float64)
    # The server's view of client 0 is spread uniformly over [0, 2^48), whatever the update was...
    assert abs(seen.mean() / secure.MODULUS - 0.5) < 0.02
    assert abs(seen.std() / secure.MODULUS - (1 / 12) ** 0.5) < 0.02
    # ...and unrelated to it: no correlation with the true values, none of them in the clear.
    assert abs(np.corrcoef(seen, updates[0].numpy())[0, 1]) < 0.06
    assert np.mean(masked[0] == secure.encode(updates[0])) < 1e-3
    # A subset of the masked updates does not unmask: only the whole round's sum does.
    partial = secure.unmask_sum(masked[:-1])
    assert float((partial - sum(updates[:-1])).abs().max()) > 1.0


def test_masks_agree_pairwise_and_differ_by_round() -> None:
    a, b = secure.MaskingClient(0), secure.MaskingClient(1)
    peers = {0: a.public_key(), 1: b.public_key()}
    zero = np.zeros(16, dtype=np.uint64)
    ma, mb = a.mask(zero, peers, b"r0"), b.mask(zero, peers, b"r0")
    assert np.array_equal(secure.add(ma, mb), zero)  # +m and -m
    assert not np.array_equal(a.mask(zero, peers, b"r1"), ma)


def test_seeded_keys_repeat_and_random_keys_do_not() -> None:
    assert secure.MaskingClient(3, seed=(0, 3)).public_key() == secure.MaskingClient(3, seed=(0, 3)).public_key()
    assert secure.MaskingClient(3).public_key() != secure.MaskingClient(3).public_key()


def test_values_outside_the_encoding_range_are_refused() -> None:
    import pytest

    from deepstrata.errors import UserError

    with pytest.raises(UserError, match="clip the updates"):
        secure.encode(torch.tensor([secure.LIMIT * 2]))
