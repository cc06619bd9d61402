"""TCAV: how much a human concept ("stripes", "a loop at the top") pushes a class's score.

Problem: pixel attributions say where a model looks, not what it looks for, and the user's
question is often conceptual: does the "zebra" output rely on stripes? A concept is easy to
show by examples but has no pixel location.
Idea: Testing with Concept Activation Vectors (Kim et al. 2018, "Interpretability Beyond Feature
Attribution"). At a layer l, train a linear classifier to separate the activations of concept
examples from those of random examples; the normal of its boundary, pointing towards the
concept, is the concept activation vector v. For an input x of class k, the directional
derivative S(x) = grad_{f_l} h_k(f_l(x)) . v says whether moving the activations towards the
concept raises the class logit h_k; the TCAV score is the fraction of class-k inputs with
S(x) > 0. A CAV trained on any random split also yields some score, so the score is computed
against several random sets, and compared, by a two-sided Student's t-test (scipy, as the
tcav library does), with the scores of
CAVs trained between random sets (random set 0 against each of the others): the concept
matters only if the two groups of scores differ significantly.

Activations are read at a Backbone stage (default -1: the last feature map or block) through
the same stage hooks as `forward_intermediates`, flattened per example. Choose the stage with
the model in mind: where the last map feeds global average pooling and a linear head
(small_cnn, ResNet), d logit / d activations is the same for every input, so every score there
is 0 or 1; an earlier stage (or LeNet's last, followed by its hidden layers) varies per input. CAVs are fitted with
scikit-learn (SGDClassifier with the tcav library's alpha=0.01, or LogisticRegression), on two
thirds of the examples, their held-out accuracy reported. Written out here rather than taken
from Captum, whose TCAV stores activations with torch.save / pickle, which this project does
not write. Concepts and random sets are tensors of model inputs or folders of images, read by
`data.image_folder.read_images` in the inputs' channels and size and mapped to model inputs by
`prepare` (default: unchanged, right for [0, 1] images such as the MNIST family's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import warnings

import numpy as np
import torch
from torch import nn

from deepstrata.errors import ConfigError, UserError
from deepstrata.explain.base import Explainer, stage_reason
from deepstrata.explain.gradcam import stage_activations_and_gradients
from deepstrata.models.base import Backbone
from deepstrata.registry import register_explainer

Examples = torch.Tensor | str | Path


@dataclass
class TCAVResult:
    """One concept's TCAV scores for one class, against each random set, and whether they differ from chance.

    scores[j]: the fraction of class inputs with a positive directional derivative along the
    CAV of concept vs random set j + 1; random_scores[j]: the same for random set 0 vs random
    set j + 1 (the null); p_value: two-sided t-test of the two lists; significant: p_value <
    significance; cav_accuracy / random_cav_accuracy: held-out accuracies of those CAVs.
    """

    scores: list[float]
    random_scores: list[float]
    p_value: float
    significant: bool
    cav_accuracy: list[float] = field(default_factory=list)
    random_cav_accuracy: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The mean TCAV score over the random sets."""
        return float(np.mean(self.scores))

    def as_dict(self) -> dict[str, object]:
        return {
            "score": self.score, "scores": self.scores, "random_scores": self.random_scores, "p_value": self.p_value,
            "significant": self.significant, "cav_accuracy": self.cav_accuracy, "random_cav_accuracy": self.random_cav_accuracy,
        }  # fmt: skip


@register_explainer("tcav")
class TCAV(Explainer):
    """TCAV (Kim et al. 2018): concept activation vectors at stage `stage`, scores against random sets, a t-test.

    Use `score(model, concept, random_sets, inputs, target)` (it is not a per-pixel attribution).
    classifier: "sgd" (SGDClassifier, alpha 0.01, as the tcav library) or "logistic";
    significance: the t-test's level; batch_size: inputs per forward pass.
    """

    needs = "concepts"

    def __init__(
        self, *, stage: int = -1, classifier: Literal["sgd", "logistic"] = "sgd", significance: float = 0.05, seed: int = 0,
        batch_size: int = 128,
    ) -> None:  # fmt: skip
        if not 0.0 < significance < 1.0:
            raise ConfigError(f"tcav.significance must lie in (0, 1), got {significance}")
        self.stage, self.classifier, self.significance, self.seed, self.batch_size = stage, classifier, significance, seed, batch_size

    def why_not(self, model: nn.Module, x: torch.Tensor) -> str | None:
        return super().why_not(model, x) or stage_reason(model, self.stage, method="TCAV")

    def attribute(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise UserError("tcav scores concepts rather than attributing inputs: call TCAV.score(model, concept, random_sets, inputs, target)")

    # ---- the pieces -------------------------------------------------------------------

    def examples(self, given: Examples, like: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """A tensor of model inputs as given, or a folder's images read in `like`'s channels and size, then `prepare`d."""
        if isinstance(given, torch.Tensor):
            return given.to(like.device, like.dtype)
        from deepstrata.data.image_folder import read_images

        if like.dim() != 4 or like.shape[1] not in (1, 3):
            raise UserError(f"tcav: concept folders hold images, but the inputs are shaped {tuple(like.shape)}; give the concept as a tensor")
        if like.shape[-1] != like.shape[-2]:
            raise UserError(f"tcav: folder images are resized to squares, but the inputs are {like.shape[-2]}x{like.shape[-1]}; give a tensor")
        images = read_images(given, grayscale=like.shape[1] == 1, image_size=like.shape[-1])
        return prepare(images).to(like.device, like.dtype)

    def activations(self, model: Backbone, x: torch.Tensor) -> torch.Tensor:
        """(N, features) flattened stage activations, computed in batches without gradients."""
        with torch.no_grad():
            parts = [model.forward_intermediates(x[i : i + self.batch_size], [self.stage])[0].flatten(1) for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts)

    def directional_derivatives(self, model: Backbone, x: torch.Tensor, target: int, cav: torch.Tensor) -> torch.Tensor:
        """(N,) S(x) = d logit_target / d f_l(x) . cav, for each input."""
        out = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i : i + self.batch_size]
            t = torch.full((len(chunk),), int(target), dtype=torch.long, device=x.device)
            _, grad = stage_activations_and_gradients(model, chunk, t, self.stage)
            out.append(grad.flatten(1) @ cav.to(grad.dtype))
        return torch.cat(out)

    def cav(self, positive: torch.Tensor, negative: torch.Tensor, seed: int) -> tuple[torch.Tensor, float]:
        """(unit vector normal to the boundary, pointing towards `positive`; its held-out accuracy)."""
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.model_selection import train_test_split

        features = torch.cat([positive, negative]).cpu().double().numpy()
        labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
        fit_x, held_x, fit_y, held_y = train_test_split(features, labels, test_size=1 / 3, stratify=labels, random_state=seed)
        if self.classifier == "sgd":
            model = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
        else:
            model = LogisticRegression(max_iter=1000)
        model.fit(fit_x, fit_y)
        normal = torch.as_tensor(model.coef_[0], dtype=positive.dtype)
        return normal / normal.norm().clamp(min=1e-12), float(model.score(held_x, held_y))

    # ---- the test ---------------------------------------------------------------------

    def score(
        self,
        model: nn.Module,
        concept: Examples,
        random_sets: Sequence[Examples],
        inputs: torch.Tensor,
        target: int,
        *,
        prepare: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
    ) -> TCAVResult:
        """TCAV scores of `concept` for class `target` on `inputs` (examples of that class), against `random_sets` (>= 3)."""
        from scipy.stats import ttest_ind

        self.check_applies(model, inputs)
        if len(random_sets) < 3:
            raise UserError(f"tcav needs at least 3 random sets (one serves as the null's concept), got {len(random_sets)}")
        assert isinstance(model, Backbone)
        concept_x = self.examples(concept, inputs, prepare)
        random_x = [self.examples(r, inputs, prepare) for r in random_sets]
        for name, examples in [("concept", concept_x), *((f"random set {i}", r) for i, r in enumerate(random_x))]:
            if len(examples) < 6:
                raise UserError(f"tcav: the {name} holds {len(examples)} examples; give at least 6 (a CAV is fitted on two thirds)")
        concept_acts = self.activations(model, concept_x)
        random_acts = [self.activations(model, r) for r in random_x]

        def tcav_score(positive: torch.Tensor, negative: torch.Tensor, seed: int) -> tuple[float, float]:
            vector, accuracy = self.cav(positive, negative, seed)
            derivatives = self.directional_derivatives(model, inputs, target, vector)
            return float((derivatives > 0).float().mean()), accuracy

        concept_runs = [tcav_score(concept_acts, r, self.seed + i) for i, r in enumerate(random_acts[1:], start=1)]
        null_runs = [tcav_score(random_acts[0], r, self.seed + i) for i, r in enumerate(random_acts[1:], start=1)]
        scores, accuracies = [s for s, _ in concept_runs], [a for _, a in concept_runs]
        random_scores, random_accuracies = [s for s, _ in null_runs], [a for _, a in null_runs]
        if np.allclose(scores, scores[0]) and np.allclose(random_scores, scores[0]):
            p_value = 1.0  # identical groups: no evidence of a difference (the t statistic is undefined)
        else:
            with warnings.catch_warnings():  # a group of equal scores (all 1.0) is a valid sample, not a precision problem
                warnings.filterwarnings("ignore", message="Precision loss occurred")
                p_value = float(ttest_ind(scores, random_scores).pvalue)  # Student's, as the tcav library
        if not np.isfinite(p_value):  # zero variance in both groups but different values: as separated as can be
            p_value = 0.0
        return TCAVResult(scores, random_scores, p_value, p_value < self.significance, accuracies, random_accuracies)
