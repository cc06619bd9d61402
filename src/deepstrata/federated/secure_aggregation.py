"""Secure aggregation by pairwise additive masks: the server learns the sum of the clients' updates, not one of them.

Problem: in federated averaging the server only needs the sum of the clients' updates, yet it
receives each one in the clear, and a single client's update can reveal that client's data
(gradient inversion, membership inference).
Idea (Bonawitz et al. 2017, "Practical Secure Aggregation for Privacy-Preserving Machine
Learning", the masking core without dropout recovery): every pair of clients (i, j) agrees on a
secret by Diffie-Hellman key exchange (X25519, from `cryptography`); both expand it into the same
pseudo-random mask m_ij (AES-128 in counter mode). Client i sends x_i + sum_{j>i} m_ij - sum_{j<i} m_ji.
Each mask appears once with + and once with -, so in the server's sum they cancel and the sum of
the x_i is left; a single masked vector is uniformly distributed, so it tells the server nothing.
The arithmetic is on integers modulo 2^48: updates are encoded in fixed point (24 fractional
bits), so the masks cancel exactly and the unmasked sum equals the plain sum of the encoded
updates bit for bit, up to the 2^-24 encoding step.

Without dropout recovery (the paper's Shamir secret shares of the mask seeds), a client that
drops after the masks were agreed leaves its masks in the sum: such a round cannot be unmasked
and is discarded (`federated/fedavg.py` says so in the log).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from deepstrata.errors import UserError

FRACTION_BITS = 24
MODULUS_BITS = 48
MODULUS = 1 << MODULUS_BITS
# |sum| must stay below half the modulus to be decoded with its sign.
LIMIT = float(1 << (MODULUS_BITS - 1 - FRACTION_BITS))


def encode(x: torch.Tensor) -> np.ndarray:
    """A float vector in fixed point modulo 2^48 (uint64 holding values below the modulus)."""
    scaled = np.rint(x.detach().to(torch.float64).cpu().numpy() * (1 << FRACTION_BITS))
    if scaled.size and np.abs(scaled).max() >= LIMIT * (1 << FRACTION_BITS):
        raise UserError(f"secure aggregation encodes values below {LIMIT:g} in magnitude; an update reached {float(x.abs().max()):g} (clip the updates)")
    return (scaled.astype(np.int64) % MODULUS).astype(np.uint64)


def decode(q: np.ndarray) -> torch.Tensor:
    """The signed float vector that `encode` (or a sum of encodings) stands for."""
    signed = q.astype(np.int64)
    signed = np.where(signed >= MODULUS // 2, signed - MODULUS, signed)
    return torch.from_numpy(signed.astype(np.float64) / (1 << FRACTION_BITS))


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) mod 2^48 for uint64 vectors below the modulus (no overflow: 2^49 < 2^64)."""
    return (a + b) & np.uint64(MODULUS - 1)


def subtract(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a + np.uint64(MODULUS) - b) & np.uint64(MODULUS - 1)


def mask_stream(secret: bytes, context: bytes, size: int) -> np.ndarray:
    """`size` pseudo-random values below 2^48 from a shared secret: AES-128-CTR keyed by SHA-256(secret, context)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    digest = hashlib.sha256(secret + b"|" + context).digest()
    encryptor = Cipher(algorithms.AES(digest[:16]), modes.CTR(digest[16:])).encryptor()
    raw = encryptor.update(bytes(8 * size)) + encryptor.finalize()
    return np.frombuffer(raw, dtype=np.uint64) & np.uint64(MODULUS - 1)


class MaskingClient:
    """One client's side: an X25519 key pair, and masking of its encoded update against its peers'."""

    def __init__(self, client_id: int, *, seed: tuple[int, ...] | None = None):
        """A fresh random key pair; `seed` derives it instead (simulation only: whoever knows the
        seed knows the key, but a resumed simulated round then masks exactly as before)."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self.client_id = client_id
        if seed is None:
            self._key = X25519PrivateKey.generate()  # the private half never leaves this object
        else:
            self._key = X25519PrivateKey.from_private_bytes(hashlib.sha256(repr(("deepstrata-secure-aggregation", *seed)).encode()).digest())

    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def mask(self, encoded: np.ndarray, peers: dict[int, bytes], context: bytes) -> np.ndarray:
        """`encoded` plus the masks shared with every peer (keyed by client id -> public key) in this round's `context`."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

        out = encoded.copy()
        for peer, public in sorted(peers.items()):
            if peer == self.client_id:
                continue
            secret = self._key.exchange(X25519PublicKey.from_public_bytes(public))
            low, high = sorted((self.client_id, peer))
            stream = mask_stream(secret, context + f"|{low}-{high}".encode(), encoded.size)
            out = add(out, stream) if self.client_id < peer else subtract(out, stream)
        return out


def unmask_sum(masked: list[np.ndarray]) -> torch.Tensor:
    """The server's side: the sum of every masked vector of a round (all of them: masks then cancel), decoded."""
    if not masked:
        raise ValueError("unmask_sum needs the masked vectors of at least one client")
    total = masked[0]
    for vector in masked[1:]:
        total = add(total, vector)
    return decode(total)
