"""Which parameters are not pulled towards zero: biases, normalisation weights, other 1-D tensors.

Problem: weight decay and weight penalties shrink tensors towards zero, but shrinking a bias or
a normalisation gain only fights the normalisation and hurts accuracy.
Idea: one rule, shared by the optimizer's parameter groups (optim/param_groups.py) and the
weight-penalty callback: parameters of normalisation layers, biases and tensors of one dimension
or less are exempt (timm's `param_groups_weight_decay`; Loshchilov & Hutter 2019).
"""

from __future__ import annotations

from torch import nn

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of biases, normalisation-layer parameters and other 1-D tensors (gains, scales)."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, NORM_TYPES) or param_name.endswith("bias") or param.ndim <= 1:
                names.add(full)
    return names
