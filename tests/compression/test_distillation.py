"""Knowledge distillation: the loss is Hinton et al.'s formula, its T^2 keeps gradients the same size,
alpha = 0 is plain training exactly, and a distilled run is an ordinary classifier afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.cli.main import main
from deepstrata.compression.distillation import soft_target_loss
from deepstrata.errors import UserError
from deepstrata.run.run import Run
from deepstrata.tasks.classification import ClassificationTask


def test_the_soft_target_loss_is_t_squared_times_the_kl_divergence() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3
    for temperature in (1.0, 2.0, 4.0, 10.0):

        def softmax(z: np.ndarray) -> np.ndarray:
            e = np.exp(z / temperature - (z / temperature).max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        p_t, p_s = softmax(t), softmax(s)
        by_hand = temperature**2 * np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1))
        got = soft_target_loss(torch.tensor(s), torch.tensor(t), temperature)
        assert float(got) == pytest.approx(by_hand, rel=1e-10)
    assert float(soft_target_loss(torch.tensor(s), torch.tensor(s), 3.0)) == pytest.approx(0.0, abs=1e-12)


def test_t_squared_keeps_the_gradient_the_same_size_at_high_temperature() -> None:
    """Hinton et al.: for zero-mean logits and large T the gradient tends to (z_s - z_t) / (K N), whatever T."""
    torch.manual_seed(0)
    s, t = torch.randn(8, 10, dtype=torch.float64), torch.randn(8, 10, dtype=torch.float64)
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    limit = (s - t) / (s.shape[1] * s.shape[0])
    grads = {}
    for temperature, tolerance in ((50.0, 0.05), (200.0, 0.01)):
        z = s.clone().requires_grad_(True)
        soft_target_loss(z, t, temperature).backward()
        grads[temperature] = z.grad
        assert float((z.grad - limit).norm() / limit.norm()) < tolerance
    # Without the T^2 the KL's gradient would be 16x smaller at T=200 than at T=50.
    assert float(grads[200.0].norm() / grads[50.0].norm()) == pytest.approx(1.0, abs=0.05)


RECIPE = {
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.2},
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "adam", "lr": 0.005},
    "trainer": {"max_epochs": 2, "progress": "off", "num_threads": 1, "test_weights": "last"},
}
STUDENT = {**RECIPE, "name": "student", "model": {"name": "mlp", "in_features": 64, "num_classes": 10, "hidden": [16]}}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distill")
    recipe = {**RECIPE, "name": "teacher", "model": {"name": "small_cnn", "widths": [8, 16]}, "trainer": {**RECIPE["trainer"], "max_epochs": 4}}
    return api.train({**recipe, "output_dir": str(out / "runs")}).run_dir


@pytest.mark.e2e
def test_alpha_zero_is_plain_training_exactly(teacher: Path, tmp_path: Path) -> None:
    """With no weight on the teacher, the student's weights equal a plain run's bit for bit (the teacher draws no randomness)."""
    plain = api.train({**STUDENT, "output_dir": str(tmp_path / "a")}).run_dir
    task = {"name": "distillation", "teacher": str(teacher), "temperature": 4.0, "alpha": 0.0}
    distilled = api.train({**STUDENT, "task": task, "output_dir": str(tmp_path / "b")}).run_dir
    a, b = Run.open(plain).model().state_dict(), Run.open(distilled).model().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.e2e
def test_a_distilled_run_is_an_ordinary_classifier_without_its_teacher(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["distill", str(teacher), _recipe_file(tmp_path), "-T", "3", "--alpha", "0.8", "--json", "--set", f"output_dir={tmp_path / 'runs'}"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Run.open(result["run_dir"])
    assert run.config["task"] == {"name": "distillation", "teacher": str(teacher), "temperature": 3.0, "alpha": 0.8}
    # It learns (chance is 0.1): 0.43 after 2 epochs here. Soft targets at T=3 are slower to teach the
    # argmax than labels on 1,078 images (plain: 0.81; T=1, alpha=1: 0.88 after 4 epochs, as the teacher's
    # 0.93 allows); whether distillation helps is the benchmark's question, not this test's.
    assert result["metrics"]["test/accuracy"] > 0.3
    # The saved model holds the student only, and predicts as a classifier.
    assert sorted(run.model().state_dict()) == ["body.0.weight", "body.0.bias", "head.weight", "head.bias"] or all("teacher" not in k for k in run.model().state_dict())
    assert isinstance(run.task_class.for_inference(run.model(), run.spec), ClassificationTask)
    assert run.predictor().predict(np.zeros((1, 8, 8)))[0]["class_name"] in run.class_names
    assert api.apply("calibration", run.path).metrics  # tools treat it as any classifier


def _recipe_file(tmp_path: Path) -> str:
    import yaml

    path = tmp_path / "student.yaml"
    path.write_text(yaml.safe_dump(STUDENT))
    return str(path)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a finished run directory"):
        api.train({**STUDENT, "task": {"name": "distillation", "teacher": str(tmp_path)}, "output_dir": str(tmp_path / "runs")})


@pytest.mark.e2e
def test_a_teacher_of_other_classes_is_refused_on_the_first_batch(teacher: Path, tmp_path: Path) -> None:
    from torch import nn

    from deepstrata.compression.distillation import DistillationTask

    task = DistillationTask(nn.Linear(4, 10), nn.CrossEntropyLoss(), {}, teacher=str(teacher))
    task.teacher = lambda device: nn.Linear(4, 7)  # a teacher of 7 classes for a student of 10
    with pytest.raises(UserError, match="must predict the same classes"):
        task.training_step((torch.randn(3, 4), torch.tensor([0, 1, 2])))
    with pytest.raises(UserError, match="temperature must be positive"):
        api.train({**STUDENT, "task": {"name": "distillation", "teacher": str(teacher), "temperature": 0}, "output_dir": str(tmp_path / "r2")})
    with pytest.raises(UserError, match=r"alpha .* must be in \[0, 1\]"):
        api.train({**STUDENT, "task": {"name": "distillation", "teacher": str(teacher), "alpha": 1.5}, "output_dir": str(tmp_path / "r3")})
