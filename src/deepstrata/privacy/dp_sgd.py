"""DP-SGD: training with a differential-privacy guarantee, on Opacus.

Problem: a model can memorise its training examples, and anyone holding it can then learn
whether a given record was among them (membership inference) or even reconstruct it. A
guarantee against that must bound how much any single example can change what training
produces.
Idea (Abadi et al. 2016, "Deep Learning with Differential Privacy"): at each step take every
example's own gradient, clip it to norm C, sum, add Gaussian noise of standard deviation
sigma * C, and divide by the expected batch size. One example then moves a step by a bounded
amount hidden in noise, and an accountant adds up the privacy loss of all steps into
(epsilon, delta): an outside observer's odds of telling whether an example was used change by
at most e^epsilon, except with probability delta. The accounting assumes Poisson sampling
(privacy/poisson.py). Opacus does the per-sample gradients (`GradSampleModule`, hooks on the
model's layers), the clipping and noise (`DPOptimizer`) and the accounting (RDP of Mironov
2017, or PRV of Gopi et al. 2021); this strategy puts them into deepstrata's ordinary loop:

- `prepare_model`: layers that mix examples (BatchNorm) are replaced by Opacus' fixers, in
  place, and the log says which (privacy/compat.py);
- `prepare_training`: the optimizer becomes a `DPOptimizer`, the training batches Poisson
  draws; a `target_epsilon` is turned into the noise multiplier that spends exactly it over
  the run's steps (Opacus' `get_noise_multiplier`);
- every epoch logs `train/epsilon`; run.json keeps epsilon, delta, sigma, C, q and the steps;
  a checkpoint holds the accountant's history, so a resumed run ends with the same weights
  and the same epsilon as one never stopped;
- `augmult: K` (augmentation multiplicity, De et al. 2022; privacy/augmult.py): every drawn
  example enters the step as K copies under the recipe's augmentation, whose per-sample
  gradients are averaged before clipping, so epsilon is that of K = 1.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

import torch
from torch import nn

from deepstrata.errors import UserError
from deepstrata.privacy.compat import OPACUS_FIXERS, check_compatible, fix_in_place
from deepstrata.registry import register_strategy
from deepstrata.training.strategy import SingleProcess, launched_by_torchrun


class DPSGDStrategy(SingleProcess):
    """One process; per-sample clipping and Gaussian noise on every step; an accountant of epsilon."""

    name = "dp_sgd"

    def __init__(
        self,
        *,
        device: torch.device,
        max_grad_norm: float,
        noise_multiplier: float | None,
        target_epsilon: float | None,
        delta: float,
        accountant: str,
        augmult: int = 1,
    ):
        if launched_by_torchrun():
            raise UserError("trainer.strategy=dp_sgd runs in one process; launch it without torchrun")
        if (noise_multiplier is None) == (target_epsilon is None):
            raise UserError("trainer.strategy=dp_sgd needs exactly one of noise_multiplier or target_epsilon")
        self.max_grad_norm, self.noise_multiplier, self.target_epsilon = max_grad_norm, noise_multiplier, target_epsilon
        self.delta, self.accountant_name, self.augmult = delta, accountant, augmult
        self.replaced: list[str] = []
        self.accountant: Any = None
        self.sample_rate: float | None = None
        self.grad_sample_module: Any = None

    # ------------------------------------------------------------------ before the optimizer exists
    def prepare_model(self, model: nn.Module) -> None:
        self.replaced = fix_in_place(model)
        if self.replaced:
            print(f"dp_sgd: replaced {len(self.replaced)} layers that mix examples (Opacus ModuleValidator fixers): "
                  + ", ".join(self.replaced), file=sys.stderr, flush=True)
        check_compatible(model)

    # ------------------------------------------------------------------ inside Trainer.fit
    def setup(self, task: nn.Module) -> None:
        from opacus import GradSampleModule

        model = task.model
        if self.grad_sample_module is None or self.grad_sample_module._module is not model:
            # The hooks sit on the model's own layers: the task keeps calling its model as before.
            self.grad_sample_module = GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=False)

    def prepare_training(self, trainer: Any, optimizer: Any, train_loader: Any) -> tuple[Any, Any]:
        from opacus.accountants import create_accountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer

        from deepstrata.privacy.poisson import PoissonLoader
        from deepstrata.training.callbacks.grad_clip import GradientClipping

        if trainer.accumulate_grad_batches != 1:
            raise UserError("trainer.strategy=dp_sgd draws each batch by Poisson sampling; set trainer.accumulate_grad_batches=1 and make data.batch_size the expected batch")
        if any(isinstance(cb, GradientClipping) for cb in trainer.callbacks):
            raise UserError("trainer.strategy=dp_sgd clips every example's gradient itself; drop trainer.gradient_clip_norm/value and set trainer.strategy.max_grad_norm")
        if trainer.precision.name != "fp32":
            raise UserError(f"trainer.strategy=dp_sgd runs in fp32; set trainer.precision=fp32 (got {trainer.precision.name})")
        if isinstance(optimizer, DPOptimizer):  # fit called again on a prepared trainer
            return optimizer, train_loader
        if self.augmult > 1:
            _check_augmented(train_loader, self.augmult)
        seed = _loader_seed(train_loader)
        steps_per_epoch = max(1, len(train_loader.dataset) // int(train_loader.batch_size))
        total = trainer.max_steps or trainer.max_epochs * steps_per_epoch
        loader = PoissonLoader(train_loader, seed=seed, total_steps=total, multiplicity=self.augmult)
        self.sample_rate = loader.sample_rate
        if self.target_epsilon is not None:
            self.noise_multiplier = get_noise_multiplier(
                target_epsilon=self.target_epsilon, target_delta=self.delta, sample_rate=self.sample_rate,
                steps=total, accountant=self.accountant_name,
            )
        if self.augmult > 1:
            from deepstrata.privacy.augmult import AugmultDPOptimizer

            dp_optimizer: DPOptimizer = AugmultDPOptimizer(
                optimizer, multiplicity=self.augmult, noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.max_grad_norm, expected_batch_size=loader.batch_size, loss_reduction="mean",
            )
        else:
            dp_optimizer = DPOptimizer(
                optimizer, noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                expected_batch_size=loader.batch_size, loss_reduction="mean",
            )
        if self.accountant is None:
            self.accountant = create_accountant(self.accountant_name)
        dp_optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate))
        print(self.describe(total), file=sys.stderr, flush=True)
        return dp_optimizer, loader

    def epoch_metrics(self) -> dict[str, float]:
        epsilon = self.epsilon()
        return {"train/epsilon": epsilon} if math.isfinite(epsilon) else {}

    def epsilon(self) -> float:
        """The epsilon spent so far at `delta`: 0 before the first step, infinite without noise."""
        if self.accountant is None or not self.accountant.history:
            return 0.0
        if not self.noise_multiplier:
            return math.inf
        return float(self.accountant.get_epsilon(delta=self.delta))

    def steps(self) -> int:
        return sum(int(n) for _, _, n in self.accountant.history) if self.accountant is not None else 0

    def describe(self, total_steps: int) -> str:
        planned = _epsilon_after(self.accountant_name, self.noise_multiplier, self.sample_rate, total_steps, self.delta) if self.noise_multiplier else math.inf
        copies = f"; augmult {self.augmult}: each example's copies' gradients averaged before clipping" if self.augmult > 1 else ""
        return (
            f"dp_sgd: noise multiplier {self.noise_multiplier:.4g}, clip norm {self.max_grad_norm:g}, "
            f"sample rate {self.sample_rate:.4g}, {total_steps} steps -> epsilon {planned:.3g} at delta {self.delta:g} "
            f"({self.accountant_name.upper()} accountant){copies}"
        )

    # ------------------------------------------------------------------ what the run keeps
    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epsilon": self.epsilon() if math.isfinite(self.epsilon()) else None,  # None: no noise, no guarantee
            "delta": self.delta,
            "accountant": self.accountant_name,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps(),
            "target_epsilon": self.target_epsilon,
            "replaced_modules": self.replaced,
            "augmult": self.augmult,
        }

    def saved_model_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {**spec, "replaced_modules": OPACUS_FIXERS} if self.replaced else spec

    def state_dict(self) -> dict[str, Any]:
        history = [[float(s), float(q), int(n)] for s, q, n in self.accountant.history] if self.accountant is not None else []
        return {"history": history, "noise_multiplier": self.noise_multiplier}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            raise UserError("this checkpoint was written without trainer.strategy=dp_sgd; resume it with the strategy it was trained with")
        from opacus.accountants import create_accountant

        if self.accountant is None:
            self.accountant = create_accountant(self.accountant_name)
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
        if self.noise_multiplier is not None and abs(float(state["noise_multiplier"]) - self.noise_multiplier) > 1e-12:
            raise UserError(
                f"the checkpoint trained with noise multiplier {state['noise_multiplier']:.6g}, this launch computes "
                f"{self.noise_multiplier:.6g}; resume with the same trainer.strategy, data.batch_size and trainer.max_epochs"
            )


def _epsilon_after(accountant: str, sigma: float, q: float, steps: int, delta: float) -> float:
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [(sigma, q, steps)]
    return float(acc.get_epsilon(delta=delta))


def _check_augmented(loader: Any, augmult: int) -> None:
    """A UserError unless the training batches pass through a random augmentation (else K copies are K equal rows)."""
    transforms = getattr(getattr(loader, "collate_fn", None), "transforms", None) or []
    if not any(not getattr(t, "every_split", False) for t in transforms):
        raise UserError(
            f"trainer.strategy.augmult={augmult} draws the recipe's data.augment {augmult} times per example, but the "
            "training split has no random augmentation; add one (for digits: data.augment=[{name: random_crop, padding: 2}]) "
            "or set augmult=1"
        )


def _loader_seed(loader: Any) -> int:
    """The recipe's seed, as the shuffling sampler holds it (training/sampler.py)."""
    seed = getattr(getattr(loader, "sampler", None), "seed", None)
    if seed is None:
        raise UserError("trainer.strategy=dp_sgd needs a training loader with a seeded sampler; build it with Experiment.loader('train')")
    return int(seed)


@register_strategy("dp_sgd")
def dp_sgd(
    *,
    device: torch.device,
    max_grad_norm: float = 1.0,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    delta: float = 1e-5,
    accountant: Literal["rdp", "prv"] = "rdp",
    augmult: int = 1,
) -> DPSGDStrategy:
    """Differentially private SGD on Opacus: per-sample clipping, Gaussian noise, Poisson batches, an epsilon accountant.

    `augmult` K > 1 averages each example's gradient over K augmented copies before clipping (De et al. 2022).
    """
    if max_grad_norm <= 0:
        raise UserError(f"trainer.strategy.max_grad_norm must be > 0, got {max_grad_norm}")
    if noise_multiplier is not None and noise_multiplier < 0:
        raise UserError(f"trainer.strategy.noise_multiplier must be >= 0, got {noise_multiplier}")
    if target_epsilon is not None and target_epsilon <= 0:
        raise UserError(f"trainer.strategy.target_epsilon must be > 0, got {target_epsilon}")
    if augmult < 1:
        raise UserError(f"trainer.strategy.augmult must be >= 1 (augmented copies per example; 1 is plain DP-SGD), got {augmult}")
    if not 0 < delta < 1:
        raise UserError(f"trainer.strategy.delta must be in (0, 1), got {delta}; use less than 1/n for n training examples")
    return DPSGDStrategy(
        device=device, max_grad_norm=max_grad_norm, noise_multiplier=noise_multiplier,
        target_epsilon=target_epsilon, delta=delta, accountant=accountant, augmult=augmult,
    )
