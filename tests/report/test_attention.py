"""The ViT attention section appears for ViT runs, draws the rollout, and stays away from other models."""

from __future__ import annotations
from deepstrata.report.sections.attention import vit_attention

from deepstrata.run.run import Run


def test_vit_run_report_shows_attention_rollout(tiny_recipe) -> None:
    from deepstrata.api import train

    tiny_recipe["model"] = {"name": "vit", "image_size": 8, "patch_size": 2, "dim": 16, "depth": 2, "heads": 2}
    tiny_recipe["trainer"].update(max_epochs=1, max_steps=3)
    result = train(tiny_recipe)
    section = vit_attention(Run.open(result.run_dir))
    assert section is not None and "4x4 patches through all 2 layers" in section.html and "<img" in section.html
    assert "ViT attention (rollout)" in (result.run_dir / "report.html").read_text()


def test_other_models_get_no_attention_section(tmp_path) -> None:
    run = Run(tmp_path, config={"model": {"name": "small_cnn"}})
    assert vit_attention(run) is None
