"""`keep_sparsity`: weights that are zero when training starts stay exactly zero under Adam with weight decay."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from deepstrata import api
from deepstrata.registry import MODELS
from deepstrata.run.run import Run
from deepstrata.training.callbacks.keep_sparsity import KeepSparsity

RECIPE = {
    "name": "sparse_mlp",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32},
    "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [32]},
    "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    "trainer": {"max_epochs": 1, "max_steps": 15, "progress": "off", "num_threads": 1},
}


def test_zeros_stay_zero_and_the_rest_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MODELS.get("mlp")(in_features=64, num_classes=10, hidden=[32])
    with torch.no_grad():
        model.body[0].weight[:, ::2] = 0.0  # half the first layer's inputs cut
    start = {k: v.clone() for k, v in model.state_dict().items()}
    save_file({k: v.contiguous() for k, v in start.items()}, str(tmp_path / "w.safetensors"))
    callbacks = [{"name": "pretrained", "source": str(tmp_path / "w.safetensors"), "keep_head": True}, {"name": "keep_sparsity"}]
    run_dir = api.train({**RECIPE, "callbacks": callbacks, "output_dir": str(tmp_path / "runs")}).run_dir
    trained = Run.open(run_dir).model().state_dict()
    w = trained["body.0.weight"]
    assert torch.count_nonzero(w[:, ::2]) == 0  # held
    assert not torch.equal(w[:, 1::2], start["body.0.weight"][:, 1::2])  # the rest moved
    plain = api.train({**RECIPE, "callbacks": callbacks[:1], "output_dir": str(tmp_path / "plain")}).run_dir
    assert torch.count_nonzero(Run.open(plain).model().state_dict()["body.0.weight"][:, ::2]) > 0  # without it they regrow


def test_the_mask_survives_a_checkpoint() -> None:
    cb = KeepSparsity()
    cb.masks = {"w": torch.tensor([[True, False]])}
    again = KeepSparsity()
    again.load_state_dict(cb.state_dict())
    assert torch.equal(again.masks["w"], cb.masks["w"])
