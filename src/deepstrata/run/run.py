"""A finished run as one object: `Run.open(path)`.

Problem: every command that acts on a trained model (evaluate, predict, report, sample, the
post-training tools) needs the same pieces of a run directory: the resolved recipe, the model,
the data split it was tested on, its metrics history. Rebuilt by hand in each place, those
copies drift (one checks the split hashes, another forgets) and the next tool adds a fourth.
Idea: one class opens a run directory once and hands out each piece on demand, validated:
`run.recipe`, `run.model()`, `run.predictor()`, `run.split("test")` (rebuilt from the seed and
checked against the hashes in run.json), `run.loader(...)`, `run.records`, `run.tool_results()`,
and lineage (`run.parent`, `run.lineage`) for runs that a tool derived from another one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepstrata.errors import UserError
from deepstrata.run.run_dir import CONFIG, METRICS, PREDICTIONS, RUN_INFO

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from deepstrata.config import Recipe
    from deepstrata.experiment import Experiment
    from deepstrata.predictor import Predictor
    from deepstrata.tasks.base import Task

SPLIT_NAMES = ("train", "val", "test")
TOOLS_DIR = "tools"
RESULT = "result.json"


class Run:
    """A run directory, opened: its recipe, model, data split, history, tool results and lineage.

    Pieces are read lazily and cached, so opening a run is cheap and `strata report` never
    rebuilds data it does not draw. `model()` returns a fresh copy each call (a tool may change
    it); `experiment()` builds data, model and task once and checks the split against run.json.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        config: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
        records: list[dict[str, Any]] | None = None,
    ):
        self.path = Path(path)
        # Pre-set pieces (tests, or a run still being written) take the place of the files.
        if config is not None:
            self.__dict__["config"] = dict(config)
        if info is not None:
            self.__dict__["info"] = dict(info)
        if records is not None:
            self.__dict__["records"] = list(records)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open the run directory at `path`; a clear error when it is not one."""
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"'{path}' is not a run directory (it does not exist); runs live under runs/<recipe>/<timestamp>/ (`strata runs` lists them)")
        if not (path / CONFIG).is_file():
            raise UserError(f"'{path}' is not a run directory (no {CONFIG}); runs live under runs/<recipe>/<timestamp>/")
        return cls(path)

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    @property
    def run_dir(self) -> Path:
        """The directory (the name report sections and older code use)."""
        return self.path

    # ------------------------------------------------------------------ what was run
    @cached_property
    def config(self) -> dict[str, Any]:
        """config.yaml as plain data (the resolved recipe as written)."""
        import yaml

        path = self.path / CONFIG
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise UserError(f"{path}: not UTF-8 text (byte {err.start}); restore it from the recipe or train again") from None
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); restore it from the recipe or train again") from None
        if data is not None and not isinstance(data, dict):
            raise UserError(f"{path}: expected a recipe mapping, got {type(data).__name__}; restore it from the recipe or train again")
        return data or {}

    @cached_property
    def recipe(self) -> Recipe:
        """The resolved recipe, validated (inferred model arguments filled in)."""
        from deepstrata.config import load_recipe

        try:
            return load_recipe(self.path / CONFIG)
        except UnicodeDecodeError as err:  # a damaged byte: one line naming the file, like any bad recipe
            raise UserError(f"{self.path / CONFIG}: not UTF-8 text (byte {err.start}); restore it from the recipe or train again") from None

    @cached_property
    def info(self) -> dict[str, Any]:
        """run.json: split hashes, environment, wall time, status, lineage ({} when absent)."""
        return _read_json(self.path / RUN_INFO, missing={})

    @cached_property
    def spec(self) -> dict[str, Any]:
        """model.json: architecture, constructor arguments, task, input spec, class names."""
        from deepstrata.run import artifact

        return artifact.read_spec(self.path)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.info.get("recipe") or self.path.parent.name)

    @property
    def has_model(self) -> bool:
        """True once training wrote model.json and model.safetensors."""
        from deepstrata.run.artifact import SPEC, WEIGHTS

        return (self.path / SPEC).is_file() and (self.path / WEIGHTS).is_file()

    @property
    def architecture(self) -> str:
        """The registered model name (from model.json, else config.yaml)."""
        if self.has_model:
            return str(self.spec.get("architecture", ""))
        return str((self.config.get("model") or {}).get("name", ""))

    @property
    def task_name(self) -> str:
        """The registered task name; config.yaml writes `task:` as a name (older runs) or as {name, ...}."""
        from deepstrata.config import task_mapping

        task = task_mapping(self.config.get("task"))
        if not task and self.has_model:
            task = task_mapping(self.spec.get("task"))
        task = task.get("name") if isinstance(task, Mapping) else None
        if not task:
            raise UserError(f"'{self.path}' names no task in {CONFIG}; train it again with a current deepstrata")
        return str(task)

    @property
    def task_class(self) -> type[Task]:
        """The class of the run's task (what owns prediction, sampling and report hooks)."""
        from deepstrata.tasks.base import task_class

        return task_class(self.task_name)

    @property
    def tested_weights(self) -> dict[str, Any] | None:
        """Which weights the test metrics (and model.safetensors) come from: {"which", "epoch", ...}."""
        return self.info.get("tested_weights")

    @property
    def class_names(self) -> list[str] | None:
        names = self.spec.get("class_names") if self.has_model else None
        return names or self.info.get("class_names")

    # ------------------------------------------------------------------ the model
    def model(self, *, map_location: str | torch.device = "cpu") -> nn.Module:
        """A fresh copy of the trained model from model.json + model.safetensors, in eval mode."""
        from deepstrata.run import artifact

        self.require_model()
        model, _ = artifact.load_model(self.path, map_location=map_location)
        return model

    def predictor(self) -> Predictor:
        """The model with the preprocessing it was trained with, ready for raw inputs."""
        from deepstrata.predictor import Predictor

        self.require_model()
        return Predictor(self.model(), self.spec)

    def require_model(self) -> None:
        """Raise a one-line error saying how to finish the run when it holds no trained model."""
        from deepstrata.run.artifact import SPEC, WEIGHTS

        if self.has_model:
            return
        status = self.info.get("status")
        if status == "interrupted":
            raise UserError(f"run '{self.path}' was interrupted before it wrote its model; continue it with: strata train --resume {self.path}")
        missing = SPEC if not (self.path / SPEC).is_file() else WEIGHTS
        raise UserError(f"run '{self.path}' holds no {missing}: training did not finish; continue it with: strata train --resume {self.path}")

    # ------------------------------------------------------------------ the data
    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """The thread count and determinism the recipe asked for, restored afterwards."""
        from deepstrata.training.environment import deterministic, torch_threads

        t = self.recipe.trainer
        with torch_threads(t.num_threads), deterministic(t.deterministic):
            yield

    def experiment(self) -> Experiment:
        """Data, task and a freshly built model, from the recipe; the split is checked once.

        The task holds the *trained* weights (loaded from model.safetensors) when the run has
        them, so `run.experiment().task` evaluates exactly what was tested.
        """
        if "_experiment" not in self.__dict__:
            from deepstrata.experiment import build_experiment

            with self.environment():
                exp = build_experiment(self.recipe)
            check_same_split(self.path, self.info.get("split", {}), exp.data.split)
            if self.has_model:
                trained = self.model()
                exp.model = trained
                exp.task.model = trained
            self.__dict__["_experiment"] = exp
        return self.__dict__["_experiment"]

    def split(self, name: str) -> Any:
        """The run's `train`, `val` or `test` dataset, exactly as in training."""
        _check_split_name(name)
        dataset = getattr(self.experiment().data, name)
        if dataset is None:
            raise UserError(f"run '{self.path}' has no {name} split (data.{name}_fraction is 0 in its recipe)")
        return dataset

    def loader(self, name: str) -> DataLoader:
        """A loader over `split(name)` with the run's batch size and evaluation transforms."""
        self.split(name)
        return self.experiment().loader(name)

    def task(self) -> Task:
        """The run's task around its trained model (metrics reset), for evaluation."""
        self.require_model()
        return self.experiment().task

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Recompute one split's metrics with the trained weights: `{"<split>/<name>": value}`."""
        from deepstrata.training.trainer import Trainer

        self.require_model()
        loader = self.loader(split)
        with self.environment():
            trainer = Trainer(device="cpu")
            task = self.task()
            return trainer.test(task, loader) if split == "test" else trainer.evaluate(task, loader, split)

    # ------------------------------------------------------------------ what happened
    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every line of metrics.jsonl: step, epoch and test records, in order."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        out = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines):
                    break  # a last line cut off by a killed process: the records before it stand
                raise UserError(f"{path}: line {i} is not JSON; the metrics file is damaged") from None
        return out

    def scope(self, scope: str) -> list[dict[str, Any]]:
        """The records of one scope: "step", "epoch" or "test"."""
        return [r for r in self.records if r.get("scope") == scope]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch records (the curves)."""
        return self.scope("epoch")

    @property
    def test_metrics(self) -> dict[str, float]:
        """The metrics of the last test record, `{"test/<name>": value}`."""
        tests = self.scope("test")
        return {k: v for k, v in tests[-1].items() if "/" in k} if tests else {}

    @cached_property
    def predictions(self) -> dict[str, Any] | None:
        """test_predictions.npz (classification runs) as arrays, or None."""
        path = self.path / PREDICTIONS
        if not path.exists():
            return None
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as err:
            raise UserError(f"{path}: cannot be read ({err}); evaluate the run again to recreate it") from None

    def tool_results(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Results of analyses run on this run (`tools/<tool>/<time>/result.json`), oldest first.

        Each item is the result.json content plus `"dir"`, the folder holding its figures.
        """
        root = self.path / TOOLS_DIR
        if not root.is_dir():
            return []
        folders = [root / tool] if tool is not None else sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))  # .<tool>-* : scratch
        out = []
        for folder in folders:
            for result in sorted(folder.glob(f"*/{RESULT}"), key=lambda p: _stamp_order(p.parent.name)):
                item = _read_json(result, missing=None)
                if isinstance(item, dict):
                    out.append({**item, "dir": str(result.parent)})
        return out

    def latest_tool_result(self, tool: str) -> dict[str, Any] | None:
        results = self.tool_results(tool)
        return results[-1] if results else None

    # ------------------------------------------------------------------ lineage
    @property
    def derived_from(self) -> dict[str, Any] | None:
        """How a tool made this run: {"parent", "tool", "args"}; None for a trained run."""
        return self.info.get("derived_from")

    @property
    def parent(self) -> Run | None:
        """The run this one was derived from by a tool, or None."""
        made = self.derived_from
        if not made:
            return None
        parent = Path(made["parent"])
        if not parent.is_absolute():
            parent = (self.path / parent).resolve()
        return Run.open(parent)

    @property
    def lineage(self) -> list[dict[str, Any]]:
        """From the trained ancestor to this run: [{"run_dir", "tool", "args"}, ...]; tool None for the root."""
        chain: list[dict[str, Any]] = []
        run: Run | None = self
        seen: set[Path] = set()
        while run is not None and run.path.resolve() not in seen:
            seen.add(run.path.resolve())
            made = run.derived_from or {}
            chain.append({"run_dir": str(run.path), "tool": made.get("tool"), "args": made.get("args", {})})
            run = run.parent
        return chain[::-1]

    # ------------------------------------------------------------------ tools
    def apply(self, tool: str, /, **kwargs: Any) -> Any:
        """Run the registered tool `tool` on this run: `run.apply("profile", batch_sizes=[1, 32])`."""
        from deepstrata.tools.base import apply_tool

        return apply_tool(tool, self, **kwargs)


def check_same_split(run_dir: Path, recorded: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> None:
    """Refuse to use a split that is not the one the run was tested on.

    The split is rebuilt from the seed; if the data files changed since training (a different
    MNIST folder, an edited CSV), the same seed gives other rows and the metrics would silently
    describe other data. run.json records hashes of the split's indices and labels.
    """
    for key in ("test_indices_sha256", "test_labels_sha256", "val_indices_sha256"):
        if key in recorded and key in rebuilt and recorded[key] != rebuilt[key]:
            raise UserError(
                f"the {key.split('_')[0]} split rebuilt for '{run_dir}' differs from the one the run used "
                f"({key}: {rebuilt[key]} != {recorded[key]}); the data changed since training. "
                "Point data.root/data.path at the original files, or train again"
            )


def _stamp_order(stamp: str) -> tuple[str, int]:
    """`20261202-101500-10` after `...-2`: the time, then the same-second counter as a number."""
    parts = stamp.split("-")
    if len(parts) == 3 and parts[2].isdigit():
        return "-".join(parts[:2]), int(parts[2])
    return stamp, 0


def _check_split_name(name: str) -> None:
    if name not in SPLIT_NAMES:
        from deepstrata.errors import did_you_mean

        raise UserError(f"unknown split '{name}'{did_you_mean(name, SPLIT_NAMES)} (choose train, val or test)")


def _read_json(path: Path, *, missing: Any) -> Any:
    if not path.is_file():
        return missing
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); the run directory is damaged: restore the file or train again") from None
