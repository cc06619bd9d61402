"""The privacy guarantee of a run trained with DP-SGD, and what a membership-inference audit found.

Problem: a DP-trained model is only as private as its (epsilon, delta), and that pair is easy
to lose between a training log and the model someone later deploys.
Idea: the report states it next to the metrics, from run.json's `strategy` entry, with the
settings that produced it and one sentence on what it means, followed by the latest
`strata privacy-audit` result (of any run); the learning curves already plot each epoch's
`train/epsilon`.
"""

from __future__ import annotations

import math

from deepstrata.registry import register_report_section
from deepstrata.report.html import Section, table_html
from deepstrata.report.sections.tools import result_html
from deepstrata.run.run import Run


@register_report_section("privacy")
def privacy(run: Run) -> Section | None:
    """Epsilon and delta of a DP-SGD run, with the noise, clipping and sampling that produced them, and the latest membership-inference audit."""
    record = (run.info or {}).get("strategy") or {}
    audits = [r for r in run.tool_results() if r.get("tool") == "privacy_audit"]
    audit = f"<h3>membership-inference audit</h3>{result_html(audits[-1])}" if audits else ""  # the latest
    if record.get("name") != "dp_sgd":
        return Section("Privacy", "<p>Trained without differential privacy.</p>" + audit, order=12) if audit else None
    epsilon, delta = record.get("epsilon"), record.get("delta")
    if epsilon is None:
        meaning = "No noise was added, so this run has <b>no privacy guarantee</b>; clipping alone bounds nothing."
    else:
        meaning = (f"(&epsilon; = {epsilon:.3f}, &delta; = {delta:g})-differential privacy: adding or removing any one "
                   f"training example makes no outcome of training more likely by more than a factor "
                   f"e<sup>&epsilon;</sup> = {math.exp(epsilon):.3g}, except with probability &delta;. "
                   "The guarantee covers the training split only, not the validation split used to choose settings.")
    rows = [
        ("epsilon spent", "none" if epsilon is None else f"{epsilon:.4f}"),
        ("delta", f"{delta:g}"),
        ("accountant", str(record.get("accountant", "")).upper()),
        ("noise multiplier (sigma)", record.get("noise_multiplier")),
        ("clip norm (C)", record.get("max_grad_norm")),
        ("sample rate (q)", f"{record.get('sample_rate') or 0:.5g}"),
        ("steps", record.get("steps")),
        ("target epsilon", record.get("target_epsilon")),
    ]
    replaced = record.get("replaced_modules") or []
    if replaced:
        rows.append(("layers replaced for per-sample gradients", "; ".join(replaced)))
    if (record.get("augmult") or 1) > 1:  # privacy/augmult.py; older runs have no key
        rows.append(("augmentation multiplicity (K)", f"{record['augmult']} augmented copies per example, gradients averaged before clipping"))
    body = f"<p>{meaning}</p>" + table_html(rows, ("item", "value"))
    if any("train/epsilon" in r for r in run.scope("epoch")):
        body += "<p>The learning curves plot the epsilon spent by the end of each epoch.</p>"
    return Section("Privacy (DP-SGD)", body + audit, order=12)
