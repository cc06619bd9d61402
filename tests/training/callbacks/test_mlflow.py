"""TensorBoard and MLflow callbacks: the logged values read back with each tool's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepstrata import api
from deepstrata.training.callbacks.metrics_logger import read_metrics


@pytest.mark.e2e
def test_tensorboard_and_mlflow_hold_the_metrics_of_metrics_jsonl(tiny_recipe: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_recipe["trainer"]["max_epochs"] = 1
    tiny_recipe["callbacks"] = ["tensorboard", "mlflow"]
    run_dir = api.train(tiny_recipe).run_dir
    records = read_metrics(run_dir / "metrics.jsonl")
    losses = {r["step"]: r["train/loss"] for r in records if r["scope"] == "step"}
    val_acc = next(r["val/accuracy"] for r in records if r["scope"] == "epoch")
    test_acc = next(r["test/accuracy"] for r in records if r["scope"] == "test")

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tb_losses = {e.step: e.value for e in events.Scalars("train/loss")}
    assert tb_losses.keys() == losses.keys()
    assert all(tb_losses[s] == pytest.approx(losses[s], rel=1e-6) for s in losses)
    assert events.Scalars("val/accuracy")[0].value == pytest.approx(val_acc, rel=1e-6)
    assert len(events.Scalars("train/loss_epoch")) == 1  # the epoch mean has its own tag
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(test_acc, rel=1e-6)

    db = Path(tiny_recipe["output_dir"]) / "mlflow.db"
    assert db.is_file()  # the default store: a local SQLite file next to the runs
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["optimizer.lr"] == "0.01"
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == pytest.approx(losses)
    assert run.data.metrics["test/accuracy"] == pytest.approx(test_acc)
