"""How the server and client ranks of a torchrun launch exchange models: torch.distributed's key-value store.

Problem: a collective (all_reduce, broadcast) completes only when every member of the process
group takes part. One federated client that dies or hangs would stall the round for everyone,
and gloo ends a group whose peer vanished; yet dropping slow or dead clients is everyday
federated learning.
Idea: keep torchrun's ranks and rendezvous, but exchange through the c10d `TCPStore` that the
torchrun agent already hosts at MASTER_ADDR:MASTER_PORT. The server publishes each round's
global model under a key and waits for each client's key with a deadline; a client that does
not answer in time is simply absent from the sum. Values are bytes made by safetensors
(tensors) or JSON (small records): nothing is unpickled.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from deepstrata.errors import UserError

POLL_S = 0.05


class StoreChannel:
    """Named byte values on the launch's TCPStore, under a prefix, with deadlines."""

    def __init__(self, prefix: str = "deepstrata/fedavg/"):
        import torch.distributed as dist

        try:
            host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        except KeyError:
            raise UserError("federated ranks talk through torchrun's store: launch with torchrun (MASTER_ADDR/MASTER_PORT unset)") from None
        store = dist.TCPStore(host, port, is_master=False, timeout=datetime.timedelta(seconds=600))
        self.store = dist.PrefixStore(prefix, store)

    def put(self, key: str, value: bytes) -> None:
        self.store.set(key, value)

    def put_tensors(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        self.put(key, save_tensors({k: v.contiguous() for k, v in tensors.items()}))

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value).encode())

    def ready(self, key: str) -> bool:
        return bool(self.store.check([key]))

    def get(self, key: str, timeout_s: float) -> bytes | None:
        """The key's value once it is set, or None after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while not self.ready(key):
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
        return bytes(self.store.get(key))

    def get_tensors(self, key: str, timeout_s: float) -> dict[str, torch.Tensor] | None:
        raw = self.get(key, timeout_s)
        return None if raw is None else load_tensors(raw)

    def get_json(self, key: str, timeout_s: float) -> Any:
        raw = self.get(key, timeout_s)
        return None if raw is None else json.loads(raw.decode())

    def delete(self, key: str) -> None:
        self.store.delete_key(key)
