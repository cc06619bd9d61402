"""`strata rules RUN --rules FILE.yaml`: business rules that veto or override a model's predictions.

Problem: a deployed tabular model sits inside policies it cannot learn from data ("never offer
this product to a minor", "accounts flagged by compliance are always declined"); written as
ad-hoc `if`s around the model, nobody knows how often they fire or what they cost in accuracy.
Idea: rules are declared in YAML, each a condition on the RAW feature values and an action:

    rules:
      - name: minors                     # optional; default rule_1, rule_2, ...; metrics are named by it
        when: {column: age, below: 18}   # or a list of conditions, all of which must hold
        then: {action: veto, class: ">50K"}
      - when: [{column: occupation, in: [Armed-Forces]}, {column: hours-per-week, at_least: 60}]
        then: {action: override, class: "<=50K"}

Conditions read the values a person would write, not the standardised inputs: numeric columns
are mapped back with the run's `input_spec` mean/std (raw = (x * std + mean) / scale, rounded
to the precision float32 inputs carry, so age 17 reads 17, not 16.9999998) and
categorical codes back to their level strings (`input_spec["categories"]`). Operators:
below (<), at_most (<=), above (>), at_least (>=), equals (==; a level string for a
categorical column), in / not_in (a list). Actions are registered (`register_rule_action`):
`veto` forbids a class for the matching rows (the prediction becomes the most probable class
not vetoed), `override` sets the class. Rules apply in file order, each to the predictions the
previous ones left.

Why an analysis and not a transformation writing a derived run: a rule changes DECISIONS,
not the model's probabilities; a derived model would have to fake logits (a veto as -inf), and
every probability-based tool (calibration, AUROC, the fairness audit's ECE) would then measure
the fake. So the tool leaves the model alone and reports, on the test split (or --split), how
often each rule matched and changed a prediction, accuracy before and after, and writes the
ruled predictions (`predictions.csv`); `RuleSet` applies the same rules in code beside the model.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepstrata.errors import ConfigError, UserError, did_you_mean
from deepstrata.registry import REGISTRIES, register_rule_action, register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase, scratch_dir
from deepstrata.tools.predictions import input_tensor, require_classifier

RULE_ACTIONS = REGISTRIES["rule_action"]
NUMERIC_OPS = {"below": np.less, "at_most": np.less_equal, "above": np.greater, "at_least": np.greater_equal}
OPERATORS = [*NUMERIC_OPS, "equals", "in", "not_in"]


def metric_key(rule_name: str) -> str:
    """A rule's name as a metric name part: runs of anything but letters, digits, '.', '-' and '_' become '_' ("large capital gain" -> "large_capital_gain")."""
    return re.sub(r"[^\w.-]+", "_", rule_name).strip("_") or "rule"


@dataclass
class Decisions:
    """What the actions change: the predicted class per row, and which classes each row may still take.

    predictions: (N,) int class indices; probabilities: (N, K) the model's; allowed: (N, K) bool.
    """

    predictions: np.ndarray
    probabilities: np.ndarray
    allowed: np.ndarray


@register_rule_action("veto")
def veto(decisions: Decisions, rows: np.ndarray, target: int) -> None:
    """Forbid class `target` on `rows`: those predicting it take their most probable allowed class instead."""
    decisions.allowed[rows, target] = False
    hit = rows & (decisions.predictions == target)
    if hit.any():
        masked = np.where(decisions.allowed[hit], decisions.probabilities[hit], -np.inf)
        decisions.predictions[hit] = masked.argmax(1)


@register_rule_action("override")
def override(decisions: Decisions, rows: np.ndarray, target: int) -> None:
    """Set the prediction of `rows` to class `target`, whatever the model said."""
    decisions.predictions[rows] = target


@dataclass
class Condition:
    column: str
    op: str
    value: Any

    def holds(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        values = table[self.column]
        if self.op in NUMERIC_OPS:
            return NUMERIC_OPS[self.op](values, float(self.value))
        if self.op == "equals":
            return values == (self.value if values.dtype.kind in "UO" else float(self.value))
        inside = np.isin(values, list(self.value))
        return inside if self.op == "in" else ~inside


@dataclass
class Rule:
    name: str
    conditions: list[Condition]
    action: str
    target: int

    def matches(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        rows = np.ones(len(next(iter(table.values()))), dtype=bool)
        for condition in self.conditions:
            rows &= condition.holds(table)
        return rows


class RuleSet:
    """Rules parsed and checked against a table's columns, levels and class names; `apply` runs them in order."""

    def __init__(self, rules: list[Rule]):
        self.rules = rules

    @classmethod
    def parse(cls, declared: Any, *, columns: Sequence[str], categories: Mapping[str, Sequence[str]], class_names: Sequence[str], source: str = "rules") -> RuleSet:
        """Rules from YAML data (a list, or {rules: [...]}); a ConfigError naming the rule and the key for each mistake."""
        if isinstance(declared, Mapping) and "rules" in declared:
            declared = declared["rules"]
        if not isinstance(declared, list) or not declared:
            raise ConfigError(f"{source}: expected a non-empty list of rules (`rules: [{{when: ..., then: ...}}]`)")
        rules = []
        for i, item in enumerate(declared, 1):
            where = f"{source}: rule {i}"
            if not isinstance(item, Mapping) or set(item) - {"name", "when", "then"} or not {"when", "then"} <= set(item):
                raise ConfigError(f"{where}: a rule is a mapping with keys when, then (and optionally name), got {item!r}")
            when = item["when"] if isinstance(item["when"], list) else [item["when"]]
            conditions = [_condition(where, c, columns, categories) for c in when]
            then = item["then"]
            if not isinstance(then, Mapping) or set(then) != {"action", "class"}:
                raise ConfigError(f"{where}: `then` needs exactly action and class, e.g. {{action: veto, class: {class_names[-1]!r}}}, got {then!r}")
            action = str(then["action"])
            if action not in RULE_ACTIONS.names():
                raise ConfigError(f"{where}: unknown action '{action}'{did_you_mean(action, RULE_ACTIONS.names())} (choices: {', '.join(RULE_ACTIONS.names())})")
            target = str(then["class"])
            if target not in class_names:
                raise ConfigError(f"{where}: class '{target}' is not one of the run's classes{did_you_mean(target, list(class_names))} ({', '.join(class_names)})")
            name = str(item.get("name", f"rule_{i}"))
            if any(metric_key(r.name) == metric_key(name) for r in rules):
                raise ConfigError(f"{where}: the name '{name}' is taken by an earlier rule (metrics are named by rule); give each rule its own name")
            rules.append(Rule(name, conditions, action, list(class_names).index(target)))
        return cls(rules)

    def apply(self, table: Mapping[str, np.ndarray], probabilities: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(ruled predictions (N,), per rule {rule, matched, changed}); `table` holds raw values by column."""
        decisions = Decisions(probabilities.argmax(1), probabilities, np.ones_like(probabilities, dtype=bool))
        fired = []
        for rule in self.rules:
            rows = rule.matches(table)
            before = decisions.predictions.copy()
            action: Callable[..., None] = RULE_ACTIONS.get(rule.action)
            action(decisions, rows, rule.target)
            fired.append({"rule": rule.name, "action": rule.action, "matched": int(rows.sum()), "changed": int((decisions.predictions != before).sum())})
        return decisions.predictions, fired


def _condition(where: str, raw: Any, columns: Sequence[str], categories: Mapping[str, Sequence[str]]) -> Condition:
    if not isinstance(raw, Mapping) or "column" not in raw or len(raw) != 2:
        raise ConfigError(f"{where}: a condition is {{column: NAME, <operator>: VALUE}} with one operator of {', '.join(OPERATORS)}, got {raw!r}")
    column = str(raw["column"])
    if column not in columns:
        raise ConfigError(f"{where}: unknown column '{column}'{did_you_mean(column, list(columns))} (columns: {', '.join(columns)})")
    op = next(k for k in raw if k != "column")
    if op not in OPERATORS:
        raise ConfigError(f"{where}: unknown operator '{op}'{did_you_mean(op, OPERATORS)} (choices: {', '.join(OPERATORS)})")
    value = raw[op]
    levels = categories.get(column)
    if op in ("in", "not_in") and not isinstance(value, list):
        raise ConfigError(f"{where}: `{op}` takes a list, e.g. {{column: {column}, {op}: [a, b]}}")
    if levels is not None:
        if op in NUMERIC_OPS:
            raise ConfigError(f"{where}: column '{column}' is categorical; compare it with equals, in or not_in (levels: {', '.join(levels)})")
        for level in value if isinstance(value, list) else [value]:
            if str(level) not in levels:
                raise ConfigError(f"{where}: '{level}' is not a level of '{column}'{did_you_mean(str(level), list(levels))} (levels: {', '.join(levels)})")
        value = [str(v) for v in value] if isinstance(value, list) else str(value)
    else:
        try:
            value = [float(v) for v in value] if isinstance(value, list) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: column '{column}' is numeric; {op} needs a number, got {value!r}") from None
    return Condition(column, op, value)


def float32_round(raw: np.ndarray, z: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Round decoded numbers to the precision their float32 inputs carry.

    A model input z holds ~2^-23 relative error, so raw = z * step + offset is known to about
    err = |step| * max(|z|, 1) * 2^-23; rounding to the decimal just above 2 * err gives age 17
    back as 17 (not 16.9999998) and fnlwgt 70935 as 70935.0 (not 70935.006).
    """
    err = np.abs(step) * np.maximum(np.abs(z), 1.0) * 2.0**-23
    decimals = np.clip(-np.ceil(np.log10(2 * np.maximum(err, 1e-300))), -300, 15)
    factor = 10.0**decimals
    return np.round(raw * factor) / factor


def raw_table(x: np.ndarray, spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Model inputs (N, F) -> {column: raw values}: numbers un-standardised, category codes as level strings."""
    columns = list(spec.get("columns") or spec.get("features") or [])
    if len(columns) != x.shape[1]:
        raise UserError(f"rules: the run's input_spec names {len(columns)} columns for inputs of {x.shape[1]} features; rules need a table dataset that names its columns (adult, german_credit, csv)")
    width = x.shape[1]
    mean = np.broadcast_to(np.asarray(spec.get("mean", 0.0), dtype=np.float64), (width,))
    std = np.broadcast_to(np.asarray(spec.get("std", 1.0), dtype=np.float64), (width,))
    scale = float(spec.get("scale", 1.0))
    z = x.astype(np.float64)
    raw = float32_round((z * std + mean) / scale, z, std / scale)
    categories = spec.get("categories") or {}
    table = {}
    for j, column in enumerate(columns):
        if column in categories:
            levels = np.asarray(categories[column])
            table[column] = levels[np.clip(np.rint(raw[:, j]).astype(int), 0, len(levels) - 1)]
        else:
            table[column] = raw[:, j]
    return table


@register_tool("rules", kind="analysis")
def rules(run: Run, *, rules: str = "", split: str = "test") -> Analysis:
    """Apply YAML business rules (veto/override) to a classifier's predictions; how often each fired, accuracy before/after.

    rules: the YAML file of rules (see `strata rules --help` and tools/rules.py).
    split: the split to apply them to (train, val or test).
    """
    import torch
    import yaml

    require_classifier(run, "rules")
    if not rules:
        raise UserError("rules: give the rule file, e.g. `strata rules RUN --rules rules.yaml` (format: tools/rules.py)")
    path = Path(rules)
    if not path.is_file():
        raise UserError(f"rules: '{path}' is not a file; give the YAML file of rules with --rules")
    try:
        declared = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})".replace("\n", " ")) from None
    spec = run.experiment().data.input_spec
    columns = list(spec.get("columns") or spec.get("features") or [])
    class_names = run.class_names or [str(i) for i in range(len(run.experiment().data.class_names or []))]
    ruleset = RuleSet.parse(declared, columns=columns, categories=spec.get("categories") or {}, class_names=class_names, source=str(path))
    phase(f"rules: predictions on the {split} split")
    model = run.model().eval()
    x, y = input_tensor(run, split, tool="rules")
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=1).numpy()
    table = raw_table(x.numpy(), spec)
    ruled, fired = ruleset.apply(table, probs)
    labels = y.numpy()
    before, after = probs.argmax(1), ruled
    acc_before, acc_after = float((before == labels).mean()), float((after == labels).mean())
    metrics: dict[str, float] = {f"{split}/accuracy_before": acc_before, f"{split}/accuracy_after": acc_after, f"{split}/changed": float((before != after).sum())}
    for row in fired:
        row["fire_rate"] = round(row["matched"] / len(labels), 5)
        metrics[f"{split}/matched/{metric_key(row['rule'])}"] = float(row["matched"])
        metrics[f"{split}/changed/{metric_key(row['rule'])}"] = float(row["changed"])
    folder = scratch_dir(run, "rules")
    with (folder / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "label", "model", "ruled"])
        writer.writerows([i, class_names[t], class_names[b], class_names[a]] for i, (t, b, a) in enumerate(zip(labels, before, after)))
    summary = (
        f"{len(ruleset.rules)} rule(s) on {len(labels)} {split} rows changed {int((before != after).sum())} prediction(s): "
        f"accuracy {acc_before:.4f} before, {acc_after:.4f} after. "
        + "; ".join(f"{r['rule']} ({r['action']}) matched {r['matched']}, changed {r['changed']}" for r in fired)
        + "."
    )
    return Analysis(metrics=metrics, tables={"rules": fired}, summary=summary, files={"predictions.csv": folder / "predictions.csv"})
