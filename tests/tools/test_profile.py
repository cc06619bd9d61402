"""`strata profile`: FLOPs against hand counts, the measurements, the task hooks, every task kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.registry import MODELS
from deepstrata.run.run import Run
from deepstrata.tools.profile import count_flops, layer_latency, operator_times, peak_memory, recurrent_flops

pytestmark = pytest.mark.xdist_group("tools")

SECTION = "Profile: size, FLOPs, latency, memory"
FAST = ["--batch-sizes", "1,4", "--repeats", "1", "--warmup", "0"]


def _conv(c_in: int, c_out: int, k: int, out_side: int) -> int:
    return 2 * c_out * out_side * out_side * c_in * k * k  # 2 x multiply-adds


def _linear(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


def test_lenet5_flops_equal_the_hand_count() -> None:
    """The paper's sizes on 28x28: conv 1->6 (5x5, pad 2: 28x28 out), pool, conv 6->16 (10x10 out), pool, 400-120-84-10."""
    model = MODELS.get("lenet5")().eval()
    hand = _conv(1, 6, 5, 28) + _conv(6, 16, 5, 10) + _linear(16 * 5 * 5, 120) + _linear(120, 84) + _linear(84, 10)
    assert hand == 833_040
    assert count_flops(model, (torch.rand(3, 1, 28, 28),)) == 3 * hand


def test_recurrent_layers_are_counted_even_when_fused() -> None:
    """torch's counter sees a CPU GRU's matmuls but not the fused LSTM kernel; the formula fills the gap consistently."""
    x = torch.randn(3, 10, 4)
    gru = nn.GRU(4, 8, num_layers=2, batch_first=True, bidirectional=True).eval()
    lstm = nn.LSTM(4, 8, num_layers=2, batch_first=True, bidirectional=True).eval()
    assert count_flops(gru, (x,)) == recurrent_flops(gru, x)  # the counter's own count equals the formula
    assert count_flops(lstm, (x,)) == recurrent_flops(lstm, x) == recurrent_flops(gru, x) * 4 // 3  # 4 gates against 3


def test_peak_memory_counts_what_the_forward_allocates() -> None:
    """Linear(100 -> 1000) then ReLU on 32 rows: two (32, 1000) float tensors live at once, weights and input excluded."""
    model = nn.Sequential(nn.Linear(100, 1000), nn.ReLU()).eval()
    peak = peak_memory(model, (torch.randn(32, 100),), device=torch.device("cpu"))
    if peak is None:
        pytest.skip("this torch build records no CPU memory events")
    assert 2 * 32 * 1000 * 4 <= peak < 2 * 32 * 1000 * 4 + 4096


# ---------------------------------------------------------------- the task hooks


def _task(task_cls: type, model: nn.Module) -> Any:
    return task_cls(model, nn.Identity(), {})


def test_node_classification_repeats_the_graph_as_disjoint_copies() -> None:
    from deepstrata.tasks.node_classification import NodeClassificationTask

    model = MODELS.get("gcn")(in_features=3, num_classes=2, hidden=[4]).eval()
    task = _task(NodeClassificationTask, model)
    x = torch.randn(5, 3)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    batch = {"x": x[None], "edge_index": edge_index[None], "y": torch.zeros(1, 5, dtype=torch.long), "mask": torch.ones(1, 5, dtype=torch.bool)}
    inputs = task.model_inputs(batch)
    assert inputs[0].shape == (5, 3) and inputs[1].shape == (2, 4)
    xs, edges = task.repeat_inputs(inputs, 3)
    assert xs.shape == (15, 3) and edges.shape == (2, 12) and int(edges.max()) == 14
    with torch.no_grad():
        assert torch.allclose(model(xs, edges), model(*inputs).repeat(3, 1), atol=1e-6)  # three independent graphs


def test_default_inputs_tile_rows_and_keep_pairs_paired() -> None:
    from deepstrata.tasks.seq2seq import Seq2SeqTask

    task = _task(Seq2SeqTask, nn.Identity())
    src, tgt = torch.arange(6).view(3, 2), torch.arange(12).view(3, 4)
    inputs = task.model_inputs((src, tgt))
    assert torch.equal(inputs[1], tgt[:, :-1])  # teacher forcing: the target without its last token
    tiled = task.repeat_inputs(inputs, 5)
    assert [tuple(t.shape) for t in tiled] == [(5, 2), (5, 3)]
    assert torch.equal(tiled[0][3], src[0]) and torch.equal(tiled[1][3], tgt[0, :-1])


@pytest.mark.parametrize(("name", "expected"), [("vae", 1), ("cvae", 2), ("conditional_ddpm", 3)])
def test_generative_inputs_follow_the_forward(name: str, expected: int) -> None:
    """Labels go to `forward`'s `y`: VAE (x,), CVAE (x, y), conditional DDPM (x, t=None, y)."""
    from deepstrata.tasks.generative import GenerativeTask

    kwargs = MODELS.meta(name)["example"]["kwargs"]
    model = MODELS.get(name)(**kwargs).eval()
    x, y = torch.rand(2, *kwargs["input_shape"]), torch.tensor([0, 1])
    inputs = GenerativeTask(model, nn.Identity(), {}).model_inputs((x, y))
    assert len(inputs) == expected and inputs[0] is x and (expected == 1 or inputs[-1] is y)
    with torch.no_grad():
        model(*inputs)  # the model takes them


# ---------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = {
        "name": "profile_mlp",
        "seed": 0,
        "data": {"name": "digits", "batch_size": 32},
        "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [16]},
        "trainer": {"max_epochs": 1, "max_steps": 2, "progress": "off", "num_threads": 1},
        "output_dir": str(tmp_path_factory.mktemp("profile") / "runs"),
    }
    return api.train(recipe).run_dir


def test_layer_latency_times_every_leaf_once_per_forward_and_operators_name_the_kernels() -> None:
    model = MODELS.get("lenet5")().eval()
    x = (torch.rand(4, 1, 28, 28),)
    per_layer = layer_latency(model, model, x, repeats=3, device=torch.device("cpu"))
    leaves = {n for n, m in model.named_modules() if n and not any(True for _ in m.children())}
    assert set(per_layer) == leaves and all(t > 0 for t in per_layer.values())
    assert not any(h for m in model.modules() for h in (m._forward_hooks, m._forward_pre_hooks))  # the hooks are removed
    ops = operator_times(model, x, repeats=3)
    assert any("conv" in r["operator"] for r in ops)
    assert all(r["self_cpu_ms_per_forward"] > 0 for r in ops) and ops == sorted(ops, key=lambda r: -r["self_cpu_ms_per_forward"])


def test_mlp_profile_equals_the_hand_count_and_reaches_the_report(mlp_run: Path) -> None:
    result = api.apply("profile", mlp_run, batch_sizes=[1, 8], repeats=2, warmup=1)
    m = result.metrics
    assert m["flops_per_sample"] == _linear(64, 16) + _linear(16, 10) == 2368
    assert m["params"] == m["trainable_params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert m["size_bytes"] == (mlp_run / "model.safetensors").stat().st_size
    assert m["threads"] == 1 and m["latency_ms_bs1"] > 0 and m["samples_per_s_bs8"] > 0
    assert m["peak_memory_bytes_bs8"] >= 8 * 16 * 4  # at least the hidden activations
    saved = json.loads((result.result_dir / "result.json").read_text())
    layers = saved["tables"]["layers"]
    assert sum(r["params"] for r in layers) == m["params"]
    assert [r["layer"] for r in layers if r["params"]] == ["body.0", "head"]
    assert layers[0]["weights"] == "weight 16x64, bias 16" and layers[0]["output"] == "1x16"
    assert [r["batch_size"] for r in saved["tables"]["batch_sizes"]] == [1, 8]
    timed = {r["layer"]: r["latency_ms"] for r in layers}
    assert timed["body.0"] > 0 and timed["head"] > 0  # leaf modules carry their own time
    ops = saved["tables"]["operators"]
    assert any(r["operator"] in ("aten::addmm", "aten::linear") for r in ops) and 0 < sum(r["share"] for r in ops) <= 1.0 + 1e-3  # shares are rounded to 4 decimals
    assert saved["figures"] == ["throughput.png"] and (result.result_dir / "throughput.png").is_file()

    from deepstrata.report import build_report

    page = build_report(Run.open(mlp_run)).read_text()
    assert SECTION in page and "body.0" in page


def test_profile_refuses_bad_settings(mlp_run: Path) -> None:
    from deepstrata.errors import UserError

    with pytest.raises(UserError, match="batch_sizes must be positive"):
        api.apply("profile", mlp_run, batch_sizes=[0])
    with pytest.raises(UserError, match="max_input_mb"):
        api.apply("profile", mlp_run, batch_sizes=[4], max_input_mb=1e-6)


# ---------------------------------------------------------------- every kind of task

TRAINER = {"max_epochs": 1, "max_steps": 2, "progress": "off", "num_threads": 1}
TEXT = {"name": "python_text", "tokenizer": "char", "block_size": 16, "max_train_chars": 20000, "max_test_chars": 4000, "batch_size": 16, "eval_batch_size": 64}
TASK_RECIPES: dict[str, dict[str, Any]] = {
    "regression": {"data": {"name": "diabetes", "batch_size": 32}, "model": {"name": "mlp", "in_features": 10, "num_classes": 1, "hidden": [8]}},
    "generative": {
        "task": "generative",
        "data": {"name": "digits", "batch_size": 32},
        "model": {"name": "cvae", "input_shape": [1, 8, 8], "num_classes": 10, "latent_dim": 2, "hidden": [16]},
    },
    "language_modeling": {"task": "language_modeling", "data": TEXT, "model": {"name": "gpt", "dim": 16, "depth": 1, "num_heads": 2, "max_len": 16}},
    "masked_lm": {"task": "masked_lm", "data": TEXT, "model": {"name": "bert_mlm", "dim": 16, "depth": 1, "num_heads": 2, "max_len": 16}},
    "seq2seq": {"task": "seq2seq", "data": {"name": "dates", "num_train": 200, "num_test": 40, "batch_size": 32}, "model": {"name": "gru_attention_seq2seq", "embed_dim": 8, "hidden_size": 16}},
    "forecasting": {"task": "forecasting", "data": {"name": "co2", "input_len": 24, "horizon": 4, "batch_size": 32}, "model": {"name": "rnn_forecaster", "cell": "lstm", "hidden_size": 8}},
    "node_classification": {
        "data": {"name": "karate", "val_fraction": 0.0},
        "model": {"name": "gcn", "hidden": [8]},
        "trainer": {**TRAINER, "monitor": "train/loss"},
    },
    "capsule": {
        "task": "capsule_classification",
        "data": {"name": "digits", "batch_size": 32},
        "model": {"name": "capsnet", "num_classes": 10, "image_size": 8, "conv_channels": 8, "conv_kernel": 3, "primary_maps": 2, "primary_kernel": 3, "primary_stride": 1, "decoder_hidden": [16]},
        "loss": {"name": "margin"},
    },
}


@pytest.fixture(scope="module", params=sorted(TASK_RECIPES))
def task_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = {"name": f"profile_{request.param}", "seed": 0, "trainer": dict(TRAINER), **TASK_RECIPES[request.param]}
    return api.train({**recipe, "output_dir": str(tmp_path_factory.mktemp("profile_tasks") / "runs")}).run_dir


@pytest.mark.e2e
def test_profile_runs_on_every_kind_of_task(task_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two training steps of a tiny model per task, then `strata profile --json` and `strata report`."""
    assert main(["profile", str(task_run), *FAST, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["run_dir"] == str(task_run)
    assert result["metrics"]["params"] > 0 and result["metrics"]["flops_per_sample"] > 0
    assert result["metrics"]["latency_ms_bs4"] > 0
    assert any(line.startswith("result: ") for line in out)
    assert Run.open(task_run).latest_tool_result("profile") is not None
    assert main(["report", str(task_run)]) == 0
    assert SECTION in (task_run / "report.html").read_text()
