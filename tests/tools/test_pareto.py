"""`strata pareto`: the Pareto front is the non-dominated set; the family is the lineage; every variant is measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepstrata import api
from deepstrata.errors import UserError
from deepstrata.report.sections.compression import compression
from deepstrata.run.run import Run
from deepstrata.tools.pareto import family, pareto_front, root_of, weights_bytes


def test_front_keeps_exactly_the_non_dominated_points() -> None:
    points = [
        (0.99, 100.0, 10.0),  # the baseline
        (0.98, 30.0, 10.0),  # smaller, a little worse: on the front
        (0.97, 30.0, 12.0),  # dominated by the one above
        (0.99, 100.0, 10.0),  # a tie with the baseline: neither dominates the other
        (0.90, 10.0, 2.0),  # smallest and fastest: on the front
    ]
    assert pareto_front(points, higher_is_better=True) == [True, True, False, True, True]
    # for a lower-is-better metric (bits/char) the first axis flips
    assert pareto_front([(1.5, 10.0, 1.0), (1.4, 10.0, 1.0)], higher_is_better=False) == [False, True]


@pytest.mark.e2e
def test_pareto_measures_the_trained_run_and_its_derived_variants(tiny_recipe: dict) -> None:
    parent = Run.open(api.train(tiny_recipe).run_dir)
    pruned = Run.open(api.apply("prune", parent.path, sparsity=0.5, finetune_epochs=0).run_dir)
    twice = Run.open(api.apply("prune", pruned.path, sparsity=0.8, finetune_epochs=0).run_dir)
    other = Run.open(api.train({**tiny_recipe, "seed": 1}).run_dir)  # same recipe, not in the lineage

    assert root_of(twice).path.resolve() == parent.path.resolve()
    assert [r.path.resolve() for r in family(parent)] == [parent.path.resolve(), pruned.path.resolve(), twice.path.resolve()]

    result = api.apply("pareto", twice.path, also=[str(other.path)], batch_size=8, rounds=3, warmup=1)
    rows = json.loads((Path(result.result_dir) / "result.json").read_text())["tables"]["variants"]
    assert [r["variant"] for r in rows] == ["trained", "prune(sparsity=0.5, finetune_epochs=0)",
                                            rows[2]["variant"], f"also: {other.name}"]
    assert rows[2]["variant"] == "prune(sparsity=0.5, finetune_epochs=0) > prune(sparsity=0.8, finetune_epochs=0)"
    assert rows[0]["test/accuracy"] == pytest.approx(parent.test_metrics["test/accuracy"])
    assert rows[1]["test/accuracy"] == pytest.approx(pruned.derived_from["metrics"]["test/accuracy"])
    assert rows[0]["size_bytes"] == weights_bytes(parent) == (parent.path / "model.safetensors").stat().st_size
    assert all(r["latency_ms"] > 0 for r in rows) and rows[0]["size_ratio"] == 1.0
    front = pareto_front([(r["test/accuracy"], r["size_bytes"], r["latency_ms"]) for r in rows], higher_is_better=True)
    assert [r["pareto"] for r in rows] == front
    assert (Path(result.result_dir) / "pareto.png").stat().st_size > 0
    section = compression(twice)
    assert section is not None and "pareto" in section.html and "size_bytes" in section.html and "data:image/png" in section.html

    with pytest.raises(UserError, match="metric must be a test metric"):
        api.apply("pareto", parent.path, metric="val/accuracy")
