"""MLflow tracking: parameters and metrics of every run in one queryable store.

Problem: run directories on one disk cannot be searched or compared across machines and
teams, and a remote tracking server needs the same data pushed as the run goes.
Idea: log the resolved recipe as parameters and each metric record (x = optimizer step) through
`MlflowClient` to a tracking URI: by default a local SQLite file `<output_dir>/mlflow.db`
(`mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`), or any URI a recipe names.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepstrata.registry import register_callback
from deepstrata.training.callbacks.base import Callback
from deepstrata.training.callbacks.tensorboard import scalar_items


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: str(tree)[:500]}


class MLflowLogger(Callback):
    rank_zero_only = True

    def __init__(self, *, run_dir: Path, tracking_uri: str, experiment: str | None):
        self.run_dir, self.tracking_uri, self.experiment = run_dir, tracking_uri, experiment
        self.client: Any = None
        self.run_id: str | None = None

    def _start(self) -> None:
        if self.client is not None:
            return
        import yaml
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        config_path = self.run_dir / "config.yaml"
        recipe = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        name = self.experiment or str(recipe.get("name", "deepstrata"))
        found = self.client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found is not None else self.client.create_experiment(name)
        run = self.client.create_run(exp_id, run_name=self.run_dir.name, tags={"run_dir": str(self.run_dir)})
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in _flatten(recipe).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def on_fit_start(self, trainer: Any) -> None:
        self._start()

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        self._start()
        step, now = int(record.get("step", 0)), int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in scalar_items(record)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def on_test_end(self, trainer: Any) -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id, status="FINISHED")

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id, status="FAILED")


@register_callback("mlflow")
def mlflow(*, run_dir: str, tracking_uri: str | None = None, experiment: str | None = None) -> MLflowLogger:
    """Log the recipe and every metric to MLflow (default: sqlite file <output_dir>/mlflow.db)."""
    run = Path(run_dir)
    uri = tracking_uri or f"sqlite:///{(run.parent.parent / 'mlflow.db').resolve()}"
    return MLflowLogger(run_dir=run, tracking_uri=uri, experiment=experiment)
