"""Weights from local files: safetensors state dicts, renamed from other libraries' conventions.

Problem: pretrained weights arrive as files written by other code (timm, a past run), whose
tensor names differ from ours (`fc.weight` vs `head.weight`, one fused `attn.qkv` vs
separate q/k/v projections), and pickled checkpoints can execute code when loaded.
Idea: read only safetensors (tensors, no code), pass the state dict through a named
key-mapping hook that renames (and where needed splits) tensors into this library's names,
then copy it into the model with every missing, unexpected or mis-shaped tensor reported by
name instead of a silent partial load. Key maps register with `@register_key_map("name")`
(`strata list key_maps`) and take a state dict to a state dict.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.registry import register_key_map, registry

StateDict = dict[str, torch.Tensor]


@register_key_map("timm_resnet")
def timm_resnet(state: StateDict) -> StateDict:
    """timm/torchvision ResNet -> deepstrata ResNet: the classifier `fc` is our `head`; the rest matches."""
    return {re.sub(r"^fc\.", "head.", k): v for k, v in state.items()}


@register_key_map("timm_vit")
def timm_vit(state: StateDict) -> StateDict:
    """timm VisionTransformer -> deepstrata ViT: split the fused qkv projection, rename attention and MLP."""
    out: StateDict = {}
    for k, v in state.items():
        m = re.match(r"^(blocks\.\d+)\.attn\.qkv\.(weight|bias)$", k)
        if m:
            q, kk, vv = v.chunk(3, dim=0)  # timm stacks [q; k; v] along the output dimension
            for part, t in (("q_proj", q), ("k_proj", kk), ("v_proj", vv)):
                out[f"{m[1]}.self_attn.{part}.{m[2]}"] = t.contiguous()
            continue
        k = re.sub(r"\.attn\.proj\.", ".self_attn.out_proj.", k)
        k = re.sub(r"\.mlp\.fc1\.", ".mlp.linear1.", k)
        k = re.sub(r"\.mlp\.fc2\.", ".mlp.linear2.", k)
        out[k] = v
    return out


def read_state_dict(path: str | Path, *, key_map: str | None = None) -> StateDict:
    """Tensors from a .safetensors file, renamed by the registered key map `key_map` when given."""
    from safetensors import SafetensorError

    rename = registry("key_map").get(key_map) if key_map else None  # a misspelt name fails before any reading
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise UserError(
            f"'{path}': only .safetensors weights are read (pickled .pt/.bin/.pth files can run code when loaded); "
            "convert it once with safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')"
        )
    from deepstrata.transfer.sparse_weights import load_dense  # a pruned run's weights: bitmask + values

    try:
        state = load_dense(path)
    except (SafetensorError, OSError) as err:
        raise UserError(f"'{path}' is not a readable safetensors file: {err}") from None
    return rename(state) if rename else state


def copy_weights(model: nn.Module, state: StateDict, *, skip: set[str] = frozenset(), source: str = "the weights") -> list[str]:
    """Copy `state` into `model` in place, every tensor except the names in `skip`.

    Raises UserError naming missing tensors, shape mismatches and unexpected names (beyond
    `skip`); returns the names copied. Parameters keep their identity, so an optimizer that
    already holds them is unaffected.
    """
    target = model.state_dict()
    wanted = [k for k in target if k not in skip]
    missing = [k for k in wanted if k not in state]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in wanted if k in state and state[k].shape != target[k].shape]
    unexpected = [k for k in state if k not in target and k not in skip]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} of a different shape (e.g. {'; '.join(mismatched[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if problems:
        raise UserError(
            f"{source} do not fit the model {type(model).__name__}: " + "; ".join(problems)
            + "; check the architecture arguments, or pass key_map for weights saved by another library"
        )
    with torch.no_grad():
        for k in wanted:
            target[k].copy_(state[k])
    return wanted
