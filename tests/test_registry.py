"""The registry: found by source scan, equal to what registers at import, strict on names."""

from __future__ import annotations

import pytest

from deepstrata.errors import UserError
from deepstrata.registry import KINDS, PACKAGE_ROOT, Registry, catalog, registry


@pytest.mark.parametrize("kind", KINDS)
def test_source_scan_matches_runtime_registrations(kind: str) -> None:
    """`strata list` reads the source; what it lists must be exactly what registers at import."""
    live = registry(kind).load_all()
    scanned = catalog()[kind]
    assert set(scanned) == set(live)
    for name, factory in live.items():
        assert scanned[name].module == factory.__module__
        assert scanned[name].summary, f"{kind} '{name}' has no docstring summary"


def test_duplicate_name_is_an_error() -> None:
    reg = Registry("model")

    @reg.register("same")
    def first() -> None:
        """First."""

    def second() -> None:
        """Second."""

    with pytest.raises(ValueError, match="registered twice"):
        reg.register("same")(second)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"unknown optimizer 'adamww'; did you mean adamw\?"):
        registry("optimizers").get("adamww")


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(UserError, match="did you mean models"):
        registry("modles")


def test_get_imports_only_the_defining_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from deepstrata.registry import MODELS; MODELS.get('mlp'); "
        "print('deepstrata.models.cnn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("plural", "names"),
    [
        ("strategies", {"single", "ddp", "fsdp", "dp_sgd", "fedavg"}),
        ("client_splits", {"iid", "shards", "dirichlet"}),
        ("serving_backends", {"torch", "onnxruntime"}),
        ("explainers", {"saliency", "integrated_gradients", "grad_cam", "guided_backprop", "kernel_shap", "lime", "attention_rollout", "tcav"}),
        ("rule_actions", {"veto", "override"}),
        ("precisions", {"fp32", "bf16", "fp16"}),
        ("finetune_strategies", {"feature_extraction", "fine_tuning", "gradual_unfreezing"}),
        ("key_maps", {"timm_resnet", "timm_vit"}),
    ],
)
def test_engine_and_transfer_kinds_are_listed(plural: str, names: set[str]) -> None:
    """`strata list strategies` (and precisions, finetune_strategies, key_maps) show what recipes may name."""
    from deepstrata.catalog import list_components

    assert names <= set(list_components(plural))


@pytest.mark.parametrize(
    ("kind", "typo", "closest"),
    [("strategy", "dpp", "ddp"), ("precision", "bf61", "bf16"), ("finetune_strategy", "fine_tunning", "fine_tuning"), ("key_map", "timm_vti", "timm_vit")],
)
def test_misspelled_names_of_the_new_kinds_suggest_the_closest(kind: str, typo: str, closest: str) -> None:
    with pytest.raises(UserError, match=rf"unknown {kind} '{typo}'; did you mean {closest}\?"):
        registry(kind).get(typo)


def test_the_registry_is_below_the_recipe_layer() -> None:
    """registry.py imports nothing of config.py (config uses the registry, never the reverse)."""
    import ast
    from pathlib import Path

    import deepstrata.registry as reg

    tree = ast.parse(Path(reg.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "deepstrata.config" not in imported and "deepstrata" not in imported


def test_the_source_catalogue_refuses_a_name_registered_in_two_files(tmp_path) -> None:
    from deepstrata.registry import _scan_sources

    code = b'@register_model("twin")\ndef a():\n    """A."""\n'
    sources = [(PACKAGE_ROOT / "models" / "one.py", code), (PACKAGE_ROOT / "models" / "two.py", code)]
    with pytest.raises(ValueError, match="model 'twin' is registered twice"):
        _scan_sources(sources)


def test_the_catalogue_is_read_back_from_the_cache_until_a_source_changes(monkeypatch, tmp_path) -> None:
    import deepstrata.registry as reg

    root = tmp_path / "deepstrata"
    (root / "models").mkdir(parents=True)
    source = root / "models" / "toy.py"
    source.write_text('@register_model("toy_a")\ndef a():\n    """Toy A."""\n')
    monkeypatch.setenv("DEEPSTRATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(reg, "PACKAGE_ROOT", root)
    reg.catalog.cache_clear()
    try:
        assert set(reg.catalog()["model"]) == {"toy_a"}
        parse = reg._scan_sources
        monkeypatch.setattr(reg, "_scan_sources", lambda sources: pytest.fail("an unchanged tree was parsed again"))
        reg.catalog.cache_clear()
        assert reg.catalog()["model"]["toy_a"].summary == "Toy A."
        monkeypatch.setattr(reg, "_scan_sources", parse)
        source.write_text('@register_model("toy_b")\ndef b():\n    """Toy B."""\n')
        reg.catalog.cache_clear()
        assert set(reg.catalog()["model"]) == {"toy_b"}, "an edited file makes a new entry"
    finally:
        reg.catalog.cache_clear()
