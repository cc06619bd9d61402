"""L1 drives the weights of irrelevant features to (near) exact zero; L2 only shrinks them."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepstrata.losses.regression import mse
from deepstrata.tasks.regression import RegressionTask
from deepstrata.training.callbacks.weight_penalty import WeightPenalty
from deepstrata.training.trainer import Trainer


def _fit_linear(penalty: WeightPenalty | None) -> torch.Tensor:
    # 3 relevant features, 17 irrelevant ones, only 100 noisy samples: plain least squares fits the noise.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 20, generator=g)
    y = x[:, :3] @ torch.tensor([[2.0], [-3.0], [1.5]]) + 0.5 * torch.randn(100, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Linear(20, 1)
    task = RegressionTask(model, mse(), {})
    loader = DataLoader(TensorDataset(x, y), batch_size=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s / 20))  # decaying steps let L1 settle
    Trainer(max_epochs=1500, callbacks=[penalty] if penalty else []).fit(task, loader, optimizer=opt, scheduler=sched)
    return model.weight.detach().flatten()


def test_l1_zeroes_irrelevant_weights_while_l2_only_shrinks_them() -> None:
    plain, l1, l2 = _fit_linear(None), _fit_linear(WeightPenalty(l1=0.5)), _fit_linear(WeightPenalty(l2=0.5))
    irrelevant = slice(3, None)
    assert plain[irrelevant].abs().mean() > 0.02  # noise is fitted without a penalty
    assert l1[irrelevant].abs().max() < 1e-3  # L1: (near) exact zeros
    assert l2[irrelevant].abs().max() > 20 * l1[irrelevant].abs().max()  # L2: small but clearly non-zero
    assert l2.norm() < 0.8 * plain.norm()  # ... while the weight vector as a whole shrinks
    assert (l1[:3].abs() > 0.5).all() and (l2[:3].abs() > 0.5).all()  # both keep the real signal


def test_penalty_and_weight_decay_exempt_the_same_parameters() -> None:
    """One rule (nn/no_decay.py) for both: the callback needs nothing from optim/."""
    import ast
    import inspect

    import deepstrata.training.callbacks.weight_penalty as module
    from deepstrata.nn.no_decay import no_decay_names
    from deepstrata.optim.param_groups import parameter_groups

    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    exempt = {n for g in parameter_groups(model, base_lr=0.1) if g.get("weight_decay") == 0.0 for n in g["names"]}
    assert exempt == no_decay_names(model) == {"0.bias", "1.weight", "1.bias", "2.bias"}
    imports = {n.module for n in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("deepstrata.optim") for m in imports)
