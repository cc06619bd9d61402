"""The server's limits, and the checks that answer at once when a request breaks one.

Problem: a server that reads any body, queues any number of requests, waits forever and lets
anyone in can be knocked over or misused by one client.
Idea: `Limits` holds every bound with a sane default; `read_body` refuses a body over
`max_body_bytes` from its Content-Length before reading a byte (413), and a body without one
as soon as it grows past the bound; `authorized` compares a bearer token in constant time.
The queue bound and the request timeout are applied by the app around the batcher (503, 504).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from deepstrata.serving.protocol import ProtocolError

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 32 * MIB
    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    max_queue: int = 256  # requests waiting per model; more are answered 503 at once
    timeout_s: float = 10.0  # a request not answered by then gets 504
    max_rows: int = 1024  # rows in one request
    drain_timeout_s: float = 30.0  # after SIGTERM: time to answer what is in flight and queued

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch_size", "max_queue", "max_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue_delay_ms < 0 or self.timeout_s <= 0 or self.drain_timeout_s < 0:
            raise ValueError("max_queue_delay_ms and drain_timeout_s must be >= 0 and timeout_s > 0")


async def read_body(content_length: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or ProtocolError(413) as soon as it is known to exceed `limit` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ProtocolError(f"Content-Length must be an integer, got {content_length[:40]!r}") from None
        if declared > limit:
            raise ProtocolError(f"the body is {declared} bytes; this server takes at most {limit} (--max-body-mb)", status=413)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"the body exceeds {limit} bytes; this server takes at most {limit} (--max-body-mb)", status=413)
        parts.append(chunk)
    return b"".join(parts)


def authorized(header: str | None, token: str | None) -> bool:
    """True without a token; with one, only for `Authorization: Bearer <token>` (constant-time compare)."""
    if not token:
        return True
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())
