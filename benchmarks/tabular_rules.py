"""The rule layer on UCI Adult: how often two declared rules fire, and what they do to test accuracy.

Problem: a rule around a model ("never predict >50K for a minor") costs or gains accuracy and
fires on some share of rows; both are facts about one trained model, to be measured, not guessed.
Idea: train `recipes/adult_mlp.yaml` (seed 0) as a user would, then run `strata rules` with the
two rules below on its test split. The capital-gain threshold ($10,000) is a round figure
fixed beforehand as an illustration, not fitted on these data.

    .venv/bin/python benchmarks/run_all.py --only tabular_rules
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
RULES = """\
rules:
  - name: minors
    when: {column: age, below: 18}
    then: {action: veto, class: ">50K"}
  - name: large capital gain
    when: [{column: capital-gain, at_least: 10000}]
    then: {action: override, class: ">50K"}
"""


def main() -> None:
    from deepstrata.tools.base import apply_tool

    metrics, run_dir, wall, _, _ = run_recipe("recipes/adult_mlp.yaml", "seed=0", "trainer.num_threads=1")
    rules_file = Path(tempfile.mkdtemp(prefix="ds_rules_")) / "rules.yaml"
    rules_file.write_text(RULES)
    result = apply_tool("rules", run_dir, rules=str(rules_file))
    rows = ["| rule | action | test rows matched | fire rate | predictions changed |", "|---|---|---|---|---|"]
    rows += [f"| {r['rule']} | {r['action']} | {r['matched']} | {r['fire_rate']:.4f} | {r['changed']} |" for r in result.tables["rules"]]
    before, after = result.metrics["test/accuracy_before"], result.metrics["test/accuracy_after"]
    figures = [
        {"name": "test accuracy before the rules", "value": round(before, 4), "unit": "", "note": "tabular_mlp, seed 0"},
        {"name": "test accuracy after the rules", "value": round(after, 4), "unit": "", "note": f"{int(result.metrics['test/changed'])} of 16,281 predictions changed"},
    ]
    emit(
        "tabular_rules",
        ".venv/bin/python benchmarks/run_all.py --only tabular_rules",
        figures,
        table="```yaml\n" + RULES + "```\n\n" + "\n".join(rows),
        description="UCI Adult test: two declared rules (a veto and an override) on the predictions of recipes/adult_mlp.yaml (seed 0) through `strata rules`.",
        data={"rules": result.tables["rules"], "metrics": result.metrics, "train_wall_s": wall},
    )


if __name__ == "__main__":
    main()
