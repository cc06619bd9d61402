"""Mixed precision: the forward pass in 16-bit floats where it is safe, the weights in 32.

Problem: 32-bit floats double the memory traffic of 16-bit ones and leave tensor cores idle,
but naive 16-bit training loses small gradients to underflow (fp16) or to rounding.
Idea: autocast runs matmuls and convolutions in bf16/fp16 and keeps reductions and the master
weights in fp32; fp16 additionally scales the loss up before backward and the gradients down
before the step, skipping steps whose gradients overflowed (Micikevicius et al. 2018,
arXiv:1710.03740). On CPU only bf16 exists, and it is slow without AVX-512/AMX.
Each format registers with `@register_precision("name")` (`strata list precisions`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from deepstrata.errors import UserError
from deepstrata.registry import register_precision, registry


class Precision:
    """Full fp32: every method is the plain operation. Subclasses change the number format."""

    name = "fp32"
    handles_overflow = False  # True when the precision itself skips steps with inf/NaN gradients

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients to their true scale before anything reads them (clipping, norms)."""

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class BF16(Precision):
    """bf16 autocast: fp32's exponent range, so no loss scaling is needed."""

    name = "bf16"

    def __init__(self, device: torch.device):
        self.device_type = device.type

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            yield


class FP16(Precision):
    """fp16 autocast with a dynamic GradScaler (CUDA only)."""

    name = "fp16"
    handles_overflow = True

    def __init__(self, device: torch.device):
        if device.type != "cuda":
            raise UserError(f"trainer.precision=fp16 needs a CUDA device, got {device}; use precision=bf16 on CPU (or fp32)")
        self.scaler = torch.amp.GradScaler("cuda")
        self._unscaled = False

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast("cuda", dtype=torch.float16):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)  # skipped inside when the unscaled gradients hold inf/NaN
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)


@register_precision("fp32")
def fp32(*, device: torch.device) -> Precision:
    """Full 32-bit floats everywhere: the reference, no autocast, no loss scaling."""
    return Precision()


@register_precision("bf16")
def bf16(*, device: torch.device) -> BF16:
    """bf16 autocast (CPU or GPU): fp32's exponent range, so no loss scaling."""
    return BF16(device)


@register_precision("fp16")
def fp16(*, device: torch.device) -> FP16:
    """fp16 autocast with dynamic loss scaling; steps with overflowing gradients are skipped (CUDA only)."""
    return FP16(device)


def build_precision(name: str, device: torch.device) -> Precision:
    """The precision registered as `name` on `device`."""
    return registry("precision").get(name)(device=device)
