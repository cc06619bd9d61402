"""Vector scaling: one scale and one offset per class, fitted on validation NLL.

Problem: one temperature (temperature scaling) cannot fix a model that is overconfident on some
classes and not on others. Idea: z'_k = w_k z_k + b_k, with w and b fitted by minimising the
validation negative log-likelihood (Guo et al. 2017, section 4.2); 2K numbers instead of one, so
it can fit per-class miscalibration but can also overfit a small validation set, and unlike a
temperature it may change the predicted class.
"""

from __future__ import annotations

import torch

from deepstrata.learned.base import Example
from deepstrata.learned.calibrator import Calibrator, affine_map, minimise_nll, overconfident_example
from deepstrata.registry import register_learned


@register_learned("vector_scaling", calibrator="vector")
class VectorScaler(Calibrator):
    """z' = w * z + b per class, fitted by L-BFGS on the validation NLL (float64, deterministic).

    Args:
        max_iter: L-BFGS iterations.

    Fitted attributes:
        scale_: w, (K,) float64. offset_: b, (K,) float64. nll_: validation NLL after fitting.
        num_classes_: K.
    """

    def __init__(self, *, max_iter: int = 500) -> None:
        self.max_iter = max_iter

    def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = logits.shape[1]
        w = torch.ones(k, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        self.nll_ = minimise_nll([w, b], lambda: logits * w + b, labels, max_iter=self.max_iter)
        self.scale_, self.offset_ = w.detach(), b.detach()

    def calibration_map(self):  # noqa: ANN201 - CalibrationMap
        self.check_is_fitted()
        return affine_map(torch.diag(self.scale_), self.offset_)

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        return overconfident_example(generator)
