"""Every registered tool is a `strata <tool>` command: lazy help, typed options, one-line errors, the JSON last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepstrata.cli.main import build_app, main

pytestmark = pytest.mark.xdist_group("tools_cli")


def test_help_and_list_tools_import_neither_torch_nor_the_tools() -> None:
    code = (
        "import sys\n"
        "from deepstrata.cli.main import main\n"
        "for argv in (['--help'], ['list', 'tools']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'TOOL' if 'deepstrata.tools.profile' in sys.modules else 'NO-TOOL')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH NO-TOOL"
    assert "profile" in out and "FLOPs per sample" in out  # in the help's tools panel and in `list tools`


def test_every_tool_is_a_command_and_its_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    from deepstrata.registry import catalog

    commands = {c.name for c in build_app().registered_commands}
    assert {name.replace("_", "-") for name in catalog()["tool"]} <= commands
    assert main(["profile", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--batch-sizes" in out and "list[int]" in out and "--repeats" in out
    assert main(["attack", "--help"]) == 0
    assert "--best-iterate / --no-best-iterate" in capsys.readouterr().out  # a bool: the two forms it reads


def test_not_a_run_directory_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a run directory" in err


def test_misspelt_option_is_one_line_exit_2_with_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(tmp_path), "--batch-size", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown option '--batch-size'; did you mean --batch-sizes?" in err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepstrata import api

    recipe = {
        "name": "cli_tools",
        "seed": 0,
        "data": {"name": "digits", "batch_size": 32},
        "model": {"name": "small_cnn", "widths": [4, 8], "dropout": 0.0},
        "trainer": {"max_epochs": 1, "max_steps": 2, "progress": "off", "num_threads": 1},
        "output_dir": str(tmp_path_factory.mktemp("cli_tools") / "runs"),
    }
    return api.train(recipe).run_dir


def test_profile_prints_a_table_its_result_and_the_json_last_line(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(run_dir), "--batch-sizes", "1,2", "--set", "repeats=1", "--warmup=0", "--json"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"run_dir", "metrics"} and result["run_dir"] == str(run_dir)
    assert {"params", "trainable_params", "size_bytes", "flops_per_sample", "latency_ms_bs1", "threads"} <= set(result["metrics"])
    assert "latency_ms_bs2" in result["metrics"] and "latency_ms_bs32" not in result["metrics"]
    assert any("batch sizes" in line for line in lines)  # the main table's title
    folder = Path(next(line for line in lines if line.startswith("result: ")).removeprefix("result: "))
    assert json.loads((folder / "result.json").read_text())["args"]["batch_sizes"] == [1, 2]
    assert "profile: batch size 2" in captured.err  # one line per phase, on stderr


def test_misspelt_set_key_and_options_before_the_run(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(run_dir), "--set", "batch_size=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "profile.batch_size: unknown key; did you mean batch_sizes?" in err
    assert main(["profile", "--repeats", "1", str(run_dir)]) == 2  # options go after RUN_DIR
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "strata profile RUN_DIR --option value" in err
