"""`strata lab ...` writes its JSON and figures; bad names are one-line errors."""

from __future__ import annotations

import json

from deepstrata.cli.main import main


def test_lab_optimizers_writes_json_and_figure(tmp_path):
    assert main(["lab", "optimizers", "--optimizers", "sgd,adam", "--surfaces", "quadratic", "--steps", "40", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "optimizers.json").read_text())
    assert set(data["results"]["quadratic"]) == {"sgd", "adam"}
    assert (tmp_path / "landscape_quadratic.png").stat().st_size > 1000


def test_lab_trainability_and_normalization_small(tmp_path):
    args = ["lab", "trainability", "--depths", "3", "--activations", "relu", "--inits", "he", "--variants", "plain,residual", "--steps", "3", "--out", str(tmp_path / "t")]
    assert main(args) == 0
    cells = json.loads((tmp_path / "t" / "trainability.json").read_text())["cells"]
    assert len(cells) == 2 and len(cells[0]["grad_norms_init"]) == 4
    assert (tmp_path / "t" / "trainability_heatmap.png").exists() and (tmp_path / "t" / "trainability_grad_norms.png").exists()
    assert main(["lab", "normalization", "--norms", "layer", "--batch-sizes", "4", "--steps", "3", "--out", str(tmp_path / "n")]) == 0
    assert len(json.loads((tmp_path / "n" / "normalization.json").read_text())["cells"]) == 1


def test_lab_unknown_names_fail_with_a_hint(tmp_path, capsys):
    assert main(["lab", "trainability", "--activations", "relux", "--out", str(tmp_path)]) == 2
    assert "unknown activation 'relux'; did you mean relu" in capsys.readouterr().err


def test_lab_optimizers_says_when_the_target_was_not_reached(tmp_path, capsys):
    # 30 plain SGD steps cannot reach the ill-conditioned quadratic's target; Adam's line is shown too.
    assert main(["lab", "optimizers", "--optimizers", "sgd,adam", "--surfaces", "quadratic", "--steps", "30", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sgd did not reach the target in 30 steps" in out
    assert "None" not in out
