"""Transfer provenance: a fine-tuned run's report says where its weights came from and what learnt.

Problem: a fine-tuned run's accuracy means little without the source network, how well that
network did on its own task, and which parameters were frozen or slowed down; all of it sits
scattered through config.yaml. Idea: when the `pretrained` callback initialised the run (what
`strata finetune` writes), show the source and its own test metrics, each parameter-group rule
(learning rate or frozen) and the strategy's callbacks, beside this run's test metrics.
(Yosinski et al. 2014, "How transferable are features in deep neural networks?")
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.run.run import Run

# finetune_recipe appends this to the description; the strategy's name is not stored elsewhere.
STRATEGY = re.compile(r"\[fine-tuned from .+ with (\w+)\]\s*$")


def source_summary(source: str) -> tuple[str, dict[str, float]]:
    """(what the source is, its test metrics) for a run directory; a weights file has no metrics."""
    path = Path(source)
    if not path.exists():
        return f"{source} (no longer on disk)", {}
    if not path.is_dir():
        return f"weights file {source}", {}
    record = Run.open(path)
    model = record.config.get("model", {})
    data = record.config.get("data", {})
    what = f"run {source}: {model.get('name', '?')} trained on {data.get('name', '?')}"
    if "classes" in data:
        what += f" (classes {data['classes']})"
    return what, record.test_metrics


def learning_rules(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(parameter pattern, what it does) for each optimizer.param_groups rule, first match wins."""
    optimizer = config.get("optimizer") or {}
    recipe_lr = f"LR {optimizer['lr']:g} (the recipe's)" if optimizer.get("lr") is not None else "the recipe's LR"

    def training(rule: dict[str, Any]) -> str:
        if rule.get("frozen"):
            return "frozen"
        if rule.get("lr") is not None:
            return f"LR {rule['lr']:g}"
        return recipe_lr + (f" x {rule['lr_scale']:g}" if rule.get("lr_scale") is not None else "")

    rows = [(rule["match"], training(rule)) for rule in optimizer.get("param_groups") or []]
    return rows or [("*", recipe_lr)]


@register_report_section("transfer")
def transfer(run: Run) -> Section | None:
    """Source of the pretrained weights, what learns at which rate, and source vs this run's test metrics."""
    callbacks = run.config.get("callbacks") or []
    pretrained = next((c for c in callbacks if c.get("name") == "pretrained"), None)
    if pretrained is None:
        return None
    what, source_metrics = source_summary(str(pretrained["source"]))
    match = STRATEGY.search(run.config.get("description") or "")
    parts = [f"<p>Initialised from {html.escape(what)}; the head is new" + (" (kept from the source)" if pretrained.get("keep_head") else "") + ".</p>"]
    if match:
        parts.append(f"<p>Strategy: <code>{html.escape(match.group(1))}</code>.</p>")
    parts.append(table_html(learning_rules(run.config), ("parameters", "training")))
    others = [c for c in callbacks if c.get("name") in ("gradual_unfreezing", "frozen_norm_eval")]
    if others:
        described = ", ".join(c["name"] + "".join(f" {k}={v}" for k, v in c.items() if k != "name") for c in others)
        parts.append(f"<p>Callbacks: {html.escape(described)}.</p>")
    names = sorted({*source_metrics, *run.test_metrics})
    if names:
        rows = [(n, source_metrics.get(n, "-"), run.test_metrics.get(n, "-")) for n in names]
        parts.append(table_html(rows, ("test metric", "source run (its own task)", "this run (new task)")))
    return Section("Transfer: pretrained weights and what learnt", "".join(parts), order=12)
