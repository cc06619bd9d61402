"""run.json `timing`: seconds from the process's start, and from the `train` call, to the fit and the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import deepstrata.api as api


def test_the_process_clock_counts_what_ran_before_the_marks() -> None:
    code = (
        "import time; time.sleep(0.4)\n"
        "from deepstrata.training.startup import Marks\n"
        "import json; m = Marks(); time.sleep(0.2); m.mark('fit'); print(json.dumps(m.as_dict()))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["since"] == "process start"
    assert 0.2 <= out["call_to_fit_s"] < 1.0
    assert out["process_to_fit_s"] >= out["call_to_fit_s"] + 0.4, "the sleep before the import is counted"
    assert out["process_to_fit_s"] < 30


def test_train_records_when_the_fit_and_the_test_began(tiny_recipe: dict) -> None:
    tiny_recipe["trainer"]["max_epochs"] = 1
    info = json.loads((Path(api.train(tiny_recipe).run_dir) / "run.json").read_text())
    timing = info["timing"]
    assert 0 < timing["call_to_fit_s"] < timing["call_to_test_s"] <= timing["process_to_test_s"]
    assert timing["call_to_test_s"] - timing["call_to_fit_s"] >= info["fit_time_s"] * 0.9
