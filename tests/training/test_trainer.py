"""The loop: gradient accumulation equals a big batch; the same seed gives bit-identical runs; bf16 autocast runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.training.engine_helpers import make_data, make_loader, make_task, tiny

from deepstrata.errors import UserError
from deepstrata.training.callbacks.base import Callback
from deepstrata.training.precision import BF16, build_precision
from deepstrata.training.trainer import Trainer


def _fit(task, loader, *, steps: int, accumulate: int = 1, precision=None, val=None) -> dict[str, torch.Tensor]:
    opt = torch.optim.SGD(task.parameters(), lr=0.5)
    trainer = Trainer(max_epochs=100, max_steps=steps, accumulate_grad_batches=accumulate, precision=precision)
    trainer.fit(task, loader, val, optimizer=opt)
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_k_micro_batches_of_b_give_the_update_of_one_batch_of_k_times_b() -> None:
    data = make_data(96)
    big = _fit(make_task(0), make_loader(data, 32), steps=6)  # 2 epochs of 3 steps
    small = _fit(make_task(0), make_loader(data, 8), steps=6, accumulate=4)  # the same 32-sample batches, in 4 pieces
    moved = sum(float((big[k] - make_task(0).model.state_dict()[k]).abs().sum()) for k in big)
    assert moved > 0.1
    for key in big:
        torch.testing.assert_close(small[key], big[key], rtol=1e-5, atol=1e-6)


def test_without_accumulation_small_batches_take_a_different_path() -> None:
    # The control for the test above: 4x more steps on 4x smaller batches is not the same update.
    data = make_data(96)
    big = _fit(make_task(0), make_loader(data, 32), steps=3)
    small = _fit(make_task(0), make_loader(data, 8), steps=12)
    assert max(float((big[k] - small[k]).abs().max()) for k in big) > 1e-3


def test_same_seed_gives_bit_identical_runs(tmp_path: Path) -> None:
    from deepstrata import api
    from deepstrata.run.artifact import load_model

    # Dropout, EMA, clipping and a warm-up schedule: randomness and state inside every step.
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "engine_mlp_digits.yaml"
    runs = [api.train(recipe, [f"output_dir={tmp_path}", "trainer.max_epochs=1"]).run_dir for _ in range(2)]
    (a, _), (b, _) = load_model(runs[0]), load_model(runs[1])
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


class LogitDtype(Callback):
    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_before_backward(self, trainer, output) -> None:
        self.dtypes.add(output.preds.dtype)


def test_bf16_autocast_computes_in_bf16_and_keeps_fp32_master_weights() -> None:
    task, loader, val = tiny(0)
    seen = LogitDtype()
    opt = torch.optim.SGD(task.parameters(), lr=0.5)
    Trainer(max_epochs=1, precision=BF16(torch.device("cpu")), callbacks=[seen]).fit(task, loader, val, optimizer=opt)
    assert seen.dtypes == {torch.bfloat16}  # the matmuls ran in bf16
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in task.parameters())


def test_fp16_on_cpu_is_refused_with_the_alternative() -> None:
    with pytest.raises(UserError, match="precision=bf16 on CPU"):
        build_precision("fp16", torch.device("cpu"))
