"""FitNets hints: the loss is its formula, the regressor trains with the student but is never saved,
layers that cannot be matched are refused before step 1, and weight 0 is plain training exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.compression.distillation import DistillationTask
from deepstrata.compression.fitnets import Regressor, hint_loss
from deepstrata.config import load_recipe
from deepstrata.errors import UserError
from deepstrata.experiment import build_experiment
from deepstrata.models.cnn import SmallCNN
from deepstrata.run.run import Run
from deepstrata.tasks.classification import ClassificationTask

RECIPE = {
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "adam", "lr": 0.005},
    "trainer": {"max_epochs": 1, "progress": "off", "num_threads": 1, "test_weights": "last"},
}
# Digits are 8x8: the teacher's stages give maps of 8x8 (8 channels) and 4x4 (16); the student's
# 8x8 (4) and 4x4 (6). Dropout stays on in the student, so "bit for bit" covers its random stream.
STUDENT = {**RECIPE, "name": "student", "model": {"name": "small_cnn", "widths": [4, 6], "dropout": 0.25}}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fitnets")
    recipe = {**RECIPE, "name": "teacher", "model": {"name": "small_cnn", "widths": [8, 16]}, "trainer": {**RECIPE["trainer"], "max_epochs": 2}}
    return api.train({**recipe, "output_dir": str(out / "runs")}).run_dir


def fitnets(teacher: Path, **settings: object) -> dict:
    return {"name": "distillation", "teacher": str(teacher), "temperature": 4.0, "alpha": 0.5, "hint_weight": 0.5, **settings}


def test_the_hint_loss_is_the_mean_squared_distance_after_the_regressor() -> None:
    rng = np.random.default_rng(0)
    v, u = rng.normal(size=(3, 4, 5, 5)), rng.normal(size=(3, 6, 5, 5))  # guided (N, C_s, H, W), hint (N, C_t, H, W)
    conv = Regressor(4, 6, maps=True).double()
    w, b = conv.proj.weight.detach().numpy()[:, :, 0, 0], conv.proj.bias.detach().numpy()  # (6, 4), (6,)
    r = np.einsum("oc,nchw->nohw", w, v) + b[None, :, None, None]
    by_hand = np.sum((u - r) ** 2) / u.size
    assert float(hint_loss(torch.tensor(v), torch.tensor(u), conv).detach()) == pytest.approx(by_hand, rel=1e-12)
    v2, u2 = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))  # vectors: a linear regressor
    lin = Regressor(3, 2, maps=False).double()
    r2 = v2 @ lin.proj.weight.detach().numpy().T + lin.proj.bias.detach().numpy()
    assert float(hint_loss(torch.tensor(v2), torch.tensor(u2), lin).detach()) == pytest.approx(np.mean((u2 - r2) ** 2), rel=1e-12)


@pytest.mark.e2e
def test_a_training_step_is_kd_plus_the_weighted_hint_on_the_chosen_stages(teacher: Path) -> None:
    """The step's loss is alpha T^2 KL + (1 - alpha) CE + w * mean((u_h - r(v_g))^2), with u_h and v_g
    taken from forward_intermediates: the defaults pick the teacher's middle stage (1, 4x4) and the
    student's stage of that size (1)."""
    torch.manual_seed(0)
    student = SmallCNN(widths=(4, 6), dropout=0.0)
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    task = DistillationTask(student, nn.CrossEntropyLoss(), {}, teacher=str(teacher), temperature=3.0, alpha=0.3, hint_weight=2.0, example=x[:1])
    assert (task.hint_layer, task.guided_layer) == (1, 1)
    loss = task.training_step((x, y)).loss
    t_model = task.teacher(x.device)
    with torch.no_grad():
        z_s, z_t = student(x).double(), t_model(x).double()
        u = t_model.forward_intermediates(x, [1])[0].double()
        v = student.forward_intermediates(x, [1])[0]
        r = task.regressor(v).double()
        p_t, log_p_s = F.softmax(z_t / 3.0, dim=1), F.log_softmax(z_s / 3.0, dim=1)
        kl = (p_t * (p_t.log() - log_p_s)).sum(1).mean()
        ce = -F.log_softmax(z_s, dim=1)[torch.arange(5), y].mean()
        by_hand = 0.3 * 9.0 * kl + 0.7 * ce + 2.0 * ((u - r) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(by_hand), rel=1e-5)
    loss.backward()  # the hint term reaches the regressor and the student's stages up to the guided layer
    assert task.regressor.proj.weight.grad.abs().sum() > 0 and student.features[0].weight.grad is not None


@pytest.mark.e2e
def test_the_regressor_trains_with_the_student_and_is_absent_from_the_saved_run(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {**STUDENT, "task": fitnets(teacher), "output_dir": str(tmp_path / "runs")}
    exp = build_experiment(load_recipe(recipe))
    optimized = {id(p) for group in exp.build_optimizer().param_groups for p in group["params"]}
    assert all(id(p) in optimized for p in exp.task.regressor.parameters())
    assert all(id(p) in optimized for p in exp.model.parameters())

    student = tmp_path / "student.yaml"
    student.write_text(yaml.safe_dump(STUDENT))
    args = ["distill", str(teacher), str(student), "-T", "4", "--alpha", "0.5", "--hint-weight", "0.5", "--hint-layer", "1", "--guided-layer", "-1"]
    assert main([*args, "--json", "--set", f"output_dir={tmp_path / 'cli'}"]) == 0
    run = Run.open(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"])
    assert run.config["task"] == {**fitnets(teacher), "temperature": 4.0, "hint_layer": 1, "guided_layer": -1}
    saved = run.model().state_dict()
    plain = SmallCNN(widths=(4, 6), dropout=0.25, image_size=8, num_classes=10).state_dict()
    assert sorted(saved) == sorted(plain) and all(saved[k].shape == plain[k].shape for k in plain)
    assert not any("regressor" in k or "proj" in k for k in saved)
    assert isinstance(run.task_class.for_inference(run.model(), run.spec), ClassificationTask)
    assert run.predictor().predict(np.zeros((1, 8, 8)))[0]["class_name"] in run.class_names
    from deepstrata.serving.backends import open_backend

    logits = open_backend("torch", run).infer([np.zeros((2, 1, 8, 8), dtype=np.float32)])[0]  # what `strata serve` runs
    assert logits.shape == (2, 10)


@pytest.mark.e2e
def test_layers_that_cannot_be_matched_are_refused_before_training(teacher: Path, tmp_path: Path) -> None:
    def train(task: dict, model: dict | None = None) -> None:
        api.train({**STUDENT, **({"model": model} if model else {}), "task": task, "output_dir": str(tmp_path / "runs")})

    # student stage 0 is 8x8, the teacher's default hint (stage 1) is 4x4: a 1x1 regressor cannot map one to the other
    with pytest.raises(UserError, match=r"guided layer \(student stage 0, shape \(4, 8, 8\)\) and the hint \(teacher stage 1, shape \(16, 4, 4\)\).*Student stages of that size: \[1\]"):
        train(fitnets(teacher, guided_layer=0))
    with pytest.raises(UserError, match=r"hint_layer=5 is out of range: the teacher has 2 feature stages"):
        train(fitnets(teacher, hint_layer=5))
    # an MLP's stages are vectors: no stage of the map's size
    with pytest.raises(UserError, match=r"no student stage matches the hint"):
        train(fitnets(teacher), {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [16]})
    with pytest.raises(UserError, match=r"also give hint_weight"):
        train({"name": "distillation", "teacher": str(teacher), "guided_layer": 1})
    with pytest.raises(UserError, match=r"hint_weight .* must be >= 0"):
        train(fitnets(teacher, hint_weight=-1.0))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("model.json"))


@pytest.mark.e2e
def test_alpha_zero_and_hint_weight_zero_are_plain_training_exactly(teacher: Path, tmp_path: Path) -> None:
    """The regressor, the hooks and the teacher draw no randomness and add exactly zero: the
    student's weights equal a plain run's bit for bit, dropout and batch norm included."""
    plain = api.train({**STUDENT, "output_dir": str(tmp_path / "a")}).run_dir
    distilled = api.train({**STUDENT, "task": fitnets(teacher, alpha=0.0, hint_weight=0.0), "output_dir": str(tmp_path / "b")}).run_dir
    a, b = Run.open(plain).model().state_dict(), Run.open(distilled).model().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    moved = api.train({**STUDENT, "task": fitnets(teacher, alpha=0.0, hint_weight=1.0), "output_dir": str(tmp_path / "c")}).run_dir
    c = Run.open(moved).model().state_dict()
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])  # with weight on the hint, the student changes


def test_the_mnist_recipes_pair_the_resnet_middle_stage_with_the_small_cnn_last_stage_by_default() -> None:
    """What the FitNets benchmark relies on: recipes/mnist_resnet.yaml's layer2 (32x7x7) guides
    recipes/mnist_student_cnn.yaml's last stage (32x7x7), with no layer named."""
    from deepstrata.compression.fitnets import build_regressor, choose_stages, stage_shapes
    from deepstrata.registry import create

    repo = Path(__file__).resolve().parents[2]

    def model(name: str) -> nn.Module:
        spec = load_recipe(repo / "recipes" / name).model
        return create("model", spec.name, **{"num_classes": 10, "in_channels": 1, **spec.kwargs})

    x = torch.zeros(1, 1, 28, 28)
    teacher, student = stage_shapes(model("mnist_resnet.yaml"), x, "teacher"), stage_shapes(model("mnist_student_cnn.yaml"), x, "student")
    assert choose_stages(teacher, student, None, None) == (1, 2)
    assert teacher[1] == student[2] == (1, 32, 7, 7)
    assert isinstance(build_regressor(student[2], teacher[1], seed=0).proj, nn.Conv2d)
