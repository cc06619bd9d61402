"""Platt scaling: a logistic regression on a binary classifier's score.

Problem: a binary classifier's score (an SVM margin, a network's logit difference) is not a
probability, or is an overconfident one. Idea: fit P(y = 1 | s) = sigmoid(a s + b) on held-out
data by maximum likelihood (Platt 1999), where s = z_1 - z_0 is the logit difference of a
two-class network; a > 0 keeps the ranking and, with b, may move the decision threshold.
"""

from __future__ import annotations

import dataclasses

import torch

from deepstrata.errors import UserError
from deepstrata.learned.base import Example
from deepstrata.learned.calibrator import Calibrator, affine_map, minimise_nll, overconfident_example
from deepstrata.registry import register_learned


@register_learned("platt_scaling", calibrator="platt")
class PlattScaler(Calibrator):
    """sigmoid(a (z_1 - z_0) + b), fitted by L-BFGS on the validation NLL; for two classes only.

    As logits: z' = (0, a (z_1 - z_0) + b), an affine map, so softmax(z')_1 is the Platt probability.

    Fitted attributes:
        slope_: a (float). intercept_: b (float). nll_: validation NLL. num_classes_: 2.
    """

    def __init__(self, *, max_iter: int = 200) -> None:
        self.max_iter = max_iter

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        if logits.shape[1] != 2:
            raise UserError(
                f"PlattScaler.fit: Platt scaling is for binary classifiers (2 logits), got {logits.shape[1]} classes; "
                "use temperature or vector scaling for more classes"
            )
        s = logits[:, 1] - logits[:, 0]
        a = torch.ones((), dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        self.nll_ = minimise_nll([a, b], lambda: torch.stack([torch.zeros_like(s), a * s + b], dim=1), labels, max_iter=self.max_iter)
        self.slope_, self.intercept_ = float(a.detach()), float(b.detach())

    def calibration_map(self):  # noqa: ANN201 - CalibrationMap
        self.check_is_fitted()
        weight = torch.tensor([[0.0, 0.0], [-self.slope_, self.slope_]], dtype=torch.float64)
        return affine_map(weight, torch.tensor([0.0, self.intercept_], dtype=torch.float64))

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        example = overconfident_example(generator, k=2, scale=5.0)
        _, labels = example.fit_args
        three_classes = (torch.randn(len(labels), 3, generator=generator), labels)
        return dataclasses.replace(example, invalid_fit_args=(*example.invalid_fit_args, three_classes))
