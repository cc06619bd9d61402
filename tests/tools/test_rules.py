"""The rule layer: conditions on raw values, veto and override as defined, fire counts, accuracy before/after."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from deepstrata.errors import ConfigError
from deepstrata.tools.rules import RuleSet, raw_table

CLASSES = ["low", "mid", "high"]
COLUMNS = ["age", "job"]
CATEGORIES = {"job": ["clerk", "farmer", "?", "<unseen>"]}
TABLE = {"age": np.array([15.0, 17.0, 18.0, 40.0, 70.0]), "job": np.array(["clerk", "farmer", "?", "clerk", "farmer"])}
PROBS = np.array([[0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])


def parse(rules: list) -> RuleSet:
    return RuleSet.parse(rules, columns=COLUMNS, categories=CATEGORIES, class_names=CLASSES)


@pytest.mark.parametrize(("condition", "rows"), [
    ({"column": "age", "below": 18}, [0, 1]),
    ({"column": "age", "at_most": 18}, [0, 1, 2]),
    ({"column": "age", "above": 40}, [4]),
    ({"column": "age", "at_least": 40}, [3, 4]),
    ({"column": "age", "equals": 17}, [1]),
    ({"column": "age", "in": [15, 70]}, [0, 4]),
    ({"column": "job", "equals": "?"}, [2]),
    ({"column": "job", "in": ["farmer", "?"]}, [1, 2, 4]),
    ({"column": "job", "not_in": ["clerk"]}, [1, 2, 4]),
])
def test_each_operator_matches_its_definition(condition: dict, rows: list[int]) -> None:
    rule = parse([{"when": condition, "then": {"action": "override", "class": "low"}}]).rules[0]
    assert np.flatnonzero(rule.matches(TABLE)).tolist() == rows


def test_veto_takes_the_best_allowed_class_and_override_sets_it() -> None:
    rules = parse([
        {"name": "minors", "when": {"column": "age", "below": 18}, "then": {"action": "veto", "class": "high"}},
        {"name": "no mid for minors", "when": {"column": "age", "below": 18}, "then": {"action": "veto", "class": "mid"}},
        {"when": [{"column": "job", "equals": "farmer"}, {"column": "age", "above": 60}], "then": {"action": "override", "class": "mid"}},
    ])
    ruled, fired = rules.apply(TABLE, PROBS)
    # row 0: high (0.6) vetoed -> mid (0.3), then mid vetoed -> low. Row 1 predicts mid: the first veto leaves it,
    # the second forbids it, and high is forbidden already -> low. Row 4: farmer over 60 -> mid. Rows 2, 3 untouched.
    assert ruled.tolist() == [0, 0, 0, 2, 1]
    assert fired == [
        {"rule": "minors", "action": "veto", "matched": 2, "changed": 1},
        {"rule": "no mid for minors", "action": "veto", "matched": 2, "changed": 2},
        {"rule": "rule_3", "action": "override", "matched": 1, "changed": 1},
    ]


@pytest.mark.parametrize(("rule", "message"), [
    ({"when": {"column": "agee", "below": 1}, "then": {"action": "veto", "class": "low"}}, "rule 1: unknown column 'agee'; did you mean age"),
    ({"when": {"column": "age", "under": 1}, "then": {"action": "veto", "class": "low"}}, "unknown operator 'under'"),
    ({"when": {"column": "job", "below": 1}, "then": {"action": "veto", "class": "low"}}, "'job' is categorical; compare it with equals"),
    ({"when": {"column": "job", "equals": "clerc"}, "then": {"action": "veto", "class": "low"}}, "'clerc' is not a level of 'job'; did you mean clerk"),
    ({"when": {"column": "age", "below": "young"}, "then": {"action": "veto", "class": "low"}}, "'age' is numeric; below needs a number"),
    ({"when": {"column": "age", "below": 1}, "then": {"action": "vetoo", "class": "low"}}, "unknown action 'vetoo'; did you mean veto"),
    ({"when": {"column": "age", "below": 1}, "then": {"action": "veto", "class": "lo"}}, "class 'lo' is not one of the run's classes"),
    ({"when": {"column": "age", "below": 1}}, "a rule is a mapping with keys when, then"),
])
def test_mistakes_are_named(rule: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse([rule])
    with pytest.raises(ConfigError, match="non-empty list of rules"):
        parse([])


@pytest.mark.e2e
def test_the_tool_on_a_tiny_adult_run(tmp_path: Path) -> None:
    import yaml

    from deepstrata.data.adult import adult
    from deepstrata.run.run import Run
    from deepstrata.tools.base import apply_tool
    from deepstrata.tools.predictions import input_tensor, split_logits
    from tests.baselines.test_hybrid import tiny_adult_run

    run = Run.open(tiny_adult_run(tmp_path))
    raw = adult(root=str(tmp_path / "adult"))
    # Decoding the model's inputs gives back the file's raw values, numbers and categories alike.
    x, y = input_tensor(run, "test", tool="test")
    table = raw_table(x.numpy(), run.experiment().data.input_spec)
    np.testing.assert_array_equal(table["age"], raw.test_x[:, 0].numpy())
    np.testing.assert_array_equal(table["fnlwgt"], raw.test_x[:, 1].numpy())
    assert table["sex"].tolist() == raw.test_attributes["sex"].tolist()
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"rules": [
        {"name": "young", "when": {"column": "age", "below": 30}, "then": {"action": "veto", "class": ">50K"}},
        {"name": "masters", "when": {"column": "education", "equals": "Masters"}, "then": {"action": "override", "class": ">50K"}},
    ]}))
    result = apply_tool("rules", run, rules=str(rules_file))
    logits, labels = split_logits(run, "test")
    before = logits.argmax(1).numpy()
    ages, masters = table["age"], table["education"] == "Masters"
    expected = np.where(masters, 1, np.where(ages < 30, 0, before))  # binary: a veto of >50K means <=50K
    assert result.metrics["test/accuracy_before"] == pytest.approx(float((before == labels.numpy()).mean()))
    assert result.metrics["test/accuracy_after"] == pytest.approx(float((expected == labels.numpy()).mean()))
    assert result.metrics["test/matched/young"] == (ages < 30).sum() and result.metrics["test/matched/masters"] == masters.sum()
    assert result.metrics["test/changed/young"] == ((ages < 30) & (before == 1)).sum()
    with (result.result_dir / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["ruled"] for r in rows] == [run.class_names[i] for i in expected]


def test_rule_names_become_metric_names_and_may_not_collide() -> None:
    from deepstrata.errors import ConfigError
    from deepstrata.tools.rules import RuleSet, metric_key

    assert metric_key("large capital gain") == "large_capital_gain" and metric_key("a/b: c") == "a_b_c"
    twice = [{"name": n, "when": {"column": "age", "below": 18}, "then": {"action": "veto", "class": "high"}} for n in ("young people", "young-people", "young_people")]
    with pytest.raises(ConfigError, match="taken by an earlier rule"):
        RuleSet.parse(twice, columns=COLUMNS, categories=CATEGORIES, class_names=CLASSES, source="r.yaml")
