"""Local weights: safetensors only, timm-style names mapped onto ours, every mismatch reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.errors import UserError
from deepstrata.registry import MODELS, registry
from deepstrata.transfer.pretrained import head_keys
from deepstrata.transfer.weights import copy_weights, read_state_dict


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_timm_style_resnet_state_dict_loads_through_the_key_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = MODELS.get("resnet")(num_classes=10, layers=[1, 1], widths=[4, 8]).eval()
    timm_named = {k.replace("head.", "fc.", 1) if k.startswith("head.") else k: v for k, v in source.state_dict().items()}
    assert "fc.weight" in timm_named and "head.weight" not in timm_named
    path = save(timm_named, tmp_path / "resnet_timm.safetensors")
    torch.manual_seed(1)
    target = MODELS.get("resnet")(num_classes=10, layers=[1, 1], widths=[4, 8]).eval()
    with pytest.raises(UserError, match="2 tensors missing.*head.weight.*unexpected.*fc.weight"):
        copy_weights(target, read_state_dict(path))  # without the map the names do not fit
    copy_weights(target, read_state_dict(path, key_map="timm_resnet"))
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def to_timm_vit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ViT names -> timm's (fused qkv, attn.proj, mlp.fc1/fc2), as timm would save them."""
    out = {}
    for k, v in state.items():
        if ".self_attn.q_proj." in k:
            kind = k.rsplit(".", 1)[1]
            stem = k.split(".self_attn.")[0]
            parts = [state[f"{stem}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{stem}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
        elif ".self_attn.k_proj." in k or ".self_attn.v_proj." in k:
            continue
        else:
            out[k.replace(".self_attn.out_proj.", ".attn.proj.").replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")] = v
    return out


def test_timm_style_vit_state_dict_loads_through_the_key_map(tmp_path: Path) -> None:
    kwargs = MODELS.meta("vit")["example"]["kwargs"]
    torch.manual_seed(0)
    source = MODELS.get("vit")(**kwargs).eval()
    timm_named = to_timm_vit(source.state_dict())
    assert "blocks.0.attn.qkv.weight" in timm_named and timm_named["blocks.0.attn.qkv.weight"].shape[0] == 3 * kwargs["dim"]
    path = save(timm_named, tmp_path / "vit_timm.safetensors")
    torch.manual_seed(1)
    target = MODELS.get("vit")(**kwargs).eval()
    copy_weights(target, read_state_dict(path, key_map="timm_vit"))
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_pickled_checkpoints_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="only .safetensors weights are read"):
        read_state_dict(path)


def test_unknown_key_map_suggests_the_closest(tmp_path: Path) -> None:
    path = save({"w": torch.zeros(1)}, tmp_path / "w.safetensors")
    with pytest.raises(UserError, match=r"unknown key_map 'timm_resnt'; did you mean timm_resnet\?"):
        read_state_dict(path, key_map="timm_resnt")
    with pytest.raises(UserError, match="did you mean timm_vit"):  # the recipe's callback fails when built, before setup
        registry("callback").get("pretrained")(source=str(path), key_map="timm_vti")


def test_key_maps_are_registered_and_listed() -> None:
    from deepstrata.catalog import list_components

    assert {"timm_resnet", "timm_vit"} <= set(list_components("key_maps"))


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    model = MODELS.get("small_cnn")(widths=[4, 8])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["features.0.weight"] = torch.zeros(5, 1, 3, 3)
    with pytest.raises(UserError, match=r"features.0.weight: \(5, 1, 3, 3\) vs \(4, 1, 3, 3\)"):
        copy_weights(model, state)


def test_head_keys_are_what_reset_head_replaces() -> None:
    assert head_keys(MODELS.get("small_cnn")(widths=[4, 8])) == {"head.weight", "head.bias"}
    caps = MODELS.get("capsnet")(**MODELS.meta("capsnet")["example"]["kwargs"])
    keys = head_keys(caps)
    assert "head.weight" in keys and any(k.startswith("decoder.") for k in keys)
    assert not any(k.startswith(("conv.", "primary.")) for k in keys)
