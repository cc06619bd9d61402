"""`strata explain RUN [INPUT ...] --method ...`: overlays per input x method, the grid, the report section, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepstrata import api
from deepstrata.cli.commands.tools import parse_options
from deepstrata.cli.main import main
from deepstrata.errors import ConfigError, UserError
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool

pytestmark = [pytest.mark.xdist_group("tools"), pytest.mark.e2e]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CNN = {
    "name": "explain_cnn",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32, "val_fraction": 0.1, "test_fraction": 0.2},
    "model": {"name": "small_cnn", "widths": [8, 16], "dropout": 0.0},
    "optimizer": {"name": "adam", "lr": 0.01},
    "trainer": {"max_epochs": 3, "progress": "off"},
    "metrics": ["accuracy"],
}
MLP = {**CNN, "name": "explain_mlp", "model": {"name": "mlp", "in_features": 64, "hidden": [32]}, "trainer": {"max_epochs": 1, "progress": "off"}}


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train({**CNN, "output_dir": str(tmp_path_factory.mktemp("explain") / "runs")}).run_dir


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return api.train({**MLP, "output_dir": str(tmp_path_factory.mktemp("explain_mlp") / "runs")}).run_dir


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two of scikit-learn's digits as 8-bit PNG files, dark ink on white paper, 4x enlarged."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("pngs")
    digits = load_digits()
    paths = []
    for i in (0, 5):
        grey = (255 - digits.images[i] / 16 * 255).astype(np.uint8)
        path = folder / f"digit {i}.png"
        Image.fromarray(grey).resize((32, 32), Image.NEAREST).save(path)
        paths.append(path)
    return paths


def test_test_examples_right_and_wrong_each_method_one_png_and_the_grid(cnn: Path) -> None:
    result = apply_tool("explain", cnn, examples=6)
    rows = {r["method"]: r for r in result.tables["methods"]}
    assert list(rows) == ["saliency", "integrated_gradients", "grad_cam"]
    assert all(r["applies"] == "yes" and r["seconds"] > 0 for r in rows.values())
    examples = result.tables["examples"]
    assert len(examples) == 6
    right = [e for e in examples if e["correct"]]
    wrong = [e for e in examples if not e["correct"]]
    # a 3-epoch tiny CNN gets some of 360 test digits wrong: 3 of each, right ones first, each group in split order
    assert len(right) == 3 and len(wrong) == 3 and examples[:3] == right
    assert [e["index"] for e in right] == sorted(e["index"] for e in right)
    assert all(e["label"] != e["predicted"] for e in wrong) and all(e["label"] == e["predicted"] for e in right)
    folder = result.result_dir
    overlays = sorted(p.name for p in (folder / "overlays").iterdir())
    assert len(overlays) == 6 * 3
    assert all((folder / "overlays" / name).read_bytes().startswith(PNG_MAGIC) for name in overlays)
    assert (folder / "grid.png").read_bytes().startswith(PNG_MAGIC)
    saved = json.loads((folder / "result.json").read_text())
    assert saved["figures"] == ["grid.png"] and len(saved["files"]) == 18
    # the report's explain section shows the grid and the table; the generic section does not repeat it
    from deepstrata.report.sections.explain import explain_section
    from deepstrata.report.sections.tools import tool_results

    section = explain_section(Run.open(cnn))
    assert section is not None and 'alt="grid.png"' in section.html and "integrated_gradients" in section.html
    generic = tool_results(Run.open(cnn))
    assert generic is None or "grid.png" not in generic.html


def test_cli_takes_input_files_as_words_after_the_run(cnn: Path, digit_pngs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    # the issue's short names, through the explainers' registered aliases
    argv = ["explain", str(cnn), str(digit_pngs[0]), str(digit_pngs[1]), "--method", "ig,gradcam", "--examples", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = Run.open(cnn).latest_tool_result("explain")
    assert result["args"]["inputs"] == [str(p) for p in digit_pngs] and result["args"]["examples"] == 0
    names = sorted(Path(f).name for f in result["files"])
    assert names == ["00-digit_0-grad_cam.png", "00-digit_0-integrated_gradients.png", "01-digit_5-grad_cam.png", "01-digit_5-integrated_gradients.png"]
    assert all((Path(result["dir"]) / f).read_bytes().startswith(PNG_MAGIC) for f in result["files"])
    assert "integrated_gradients" in out and "result:" in out


def test_inputs_are_made_as_the_predictor_makes_them(cnn: Path, digit_pngs: list[Path]) -> None:
    from deepstrata.tools.explain import _file_inputs

    run = Run.open(cnn)
    x = _file_inputs(run, [str(p) for p in digit_pngs])["x"]
    with torch.no_grad():
        probabilities = run.model()(x).softmax(1).max(1).values
    predicted = api.load(cnn).predict_files(digit_pngs)
    assert probabilities.tolist() == pytest.approx([row["probability"] for row in predicted], abs=1e-6)


def test_positional_words_go_to_the_named_list_verbatim_and_other_tools_still_refuse_them() -> None:
    assert parse_options("explain", ["a,b.png", "--examples", "2", "c.png"]) == {"examples": "2", "inputs": ["a,b.png", "c.png"]}
    assert parse_options("explain", ["--", "--odd.png"]) == {"inputs": ["--odd.png"]}
    with pytest.raises(ConfigError, match="given twice"):
        parse_options("explain", ["a.png", "--inputs", "b.png"])
    with pytest.raises(ConfigError, match="unexpected argument 'stray'"):
        parse_options("calibration", ["stray"])


def test_help_names_the_positional_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--help"]) == 0
    out = capsys.readouterr().out
    assert "INPUTS..." in out and "--method" in out and "--inputs VALUE" not in out


def test_unknown_method_says_did_you_mean(cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match="did you mean integrated_gradients"):
        apply_tool("explain", cnn, method=["integrated_gradient"])
    assert main(["explain", str(cnn), "--method", "grad-cam"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines: the one-line error
    assert last.startswith("error: explain: unknown method 'grad-cam'; did you mean gradcam?")  # the nearest name or alias


def test_missing_input_file_is_named(cnn: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nowhere.png' does not exist"):
        apply_tool("explain", cnn, inputs=[str(tmp_path / "nowhere.png")])


def test_a_method_that_does_not_apply_is_listed_with_its_reason_or_refused_alone(mlp: Path) -> None:
    result = apply_tool("explain", mlp, method=["saliency", "grad_cam"], examples=2)
    rows = {r["method"]: r for r in result.tables["methods"]}
    assert rows["saliency"]["applies"] == "yes"
    assert rows["grad_cam"]["applies"] == "no" and rows["grad_cam"]["note"] and rows["grad_cam"]["seconds"] is None
    assert "grad_cam" in result.summary and "explain/grad_cam/seconds_per_input" not in result.metrics
    with pytest.raises(UserError, match="no method asked for applies to this model: grad_cam: "):
        apply_tool("explain", mlp, method=["grad_cam"])


TEXT = {
    "name": "explain_text",
    "seed": 0,
    "data": {"name": "python_functions", "tokenizer": "char", "max_len": 48, "max_train_chars": 150_000, "max_test_chars": 30_000, "batch_size": 32, "val_fraction": 0.1},
    "model": {"name": "bert_classifier", "dim": 32, "depth": 1, "num_heads": 2, "max_len": 48, "dropout": 0.0},
    "optimizer": {"name": "adam", "lr": 0.003},
    "trainer": {"max_epochs": 1, "progress": "off"},
    "metrics": ["accuracy"],
}


def test_text_run_writes_escaped_highlighted_html_per_input_and_a_grid(tmp_path: Path) -> None:
    run_dir = api.train({**TEXT, "output_dir": str(tmp_path / "runs")}).run_dir
    hostile = "def f(x): return '<script>' + x"
    source = tmp_path / "snippet.py"
    source.write_text("class A:\n    pass\n", encoding="utf-8")
    result = apply_tool("explain", run_dir, inputs=[hostile, str(source)], method=["layer_integrated_gradients", "saliency"], examples=2)
    rows = {r["method"]: r for r in result.tables["methods"]}
    assert rows["layer_integrated_gradients"]["applies"] == "yes" and rows["saliency"]["applies"] == "no"
    folder = result.result_dir
    pages = sorted((folder / "text").iterdir())
    assert [p.name for p in pages] == ["00-def_f_x_return_scrip.html", "01-snippet.html"]
    first = pages[0].read_text(encoding="utf-8")
    assert "<script>" not in first and "&lt;" in first and first.count("<span") >= len(hostile) - 1  # one span per character token
    assert "pass" not in first and "p</span>" in pages[1].read_text(encoding="utf-8")  # the file's content, not its name
    assert "</span><span" in first and "</span> <span" not in first  # character tokens side by side, as the text reads
    assert (folder / "grid.html").is_file() and not (folder / "grid.png").exists()
    from deepstrata.report.sections.explain import explain_section

    section = explain_section(Run.open(run_dir))
    assert section is not None and "<span" in section.html and "<script>" not in section.html


def test_short_names_resolve_through_registered_aliases_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepstrata.explain.base import EXPLAINERS, Explainer
    from deepstrata.tools.explain import resolve_method

    class Throwaway(Explainer):
        def attribute(self, model, x, target):  # pragma: no cover - never called
            return x

    monkeypatch.setitem(EXPLAINERS._items, "zz_throwaway", Throwaway)
    monkeypatch.setitem(EXPLAINERS._meta, "zz_throwaway", {"aliases": ("zz",)})
    assert resolve_method("zz") == "zz_throwaway" and resolve_method("zz_throwaway") == "zz_throwaway"
    assert resolve_method("saliency") == "saliency"
    with pytest.raises(UserError, match="unknown method 'zzz'; did you mean zz"):
        resolve_method("zzz")
