"""Attack: a classifier's accuracy when an attacker may move every input by up to eps.

Problem: test accuracy says how a model does on inputs drawn like the training data, not on
inputs chosen against it; a model at 99% on MNIST is typically at ~0% once each pixel may move
by 0.3 (Szegedy et al. 2014; Madry et al. 2018), and robustness claims need a strong attack to
mean anything (Carlini et al. 2019, "On Evaluating Adversarial Robustness").
Idea: run a registered attack (`strata list attacks`: pgd, fgsm, square) on up to `limit` examples
of a split at each eps, and report robust accuracy against eps: an example counts as robust when
the model is right on it and on the attack's output. Gradient attacks maximise the margin loss
by default (Carlini & Wagner 2017), which unlike cross-entropy does not saturate on confident or
label-smoothed models (`--loss cross_entropy` for Madry et al.'s). eps is in raw pixel units in [0, 1] (the
literature's "eps = 0.3 on MNIST"), converted to the model's normalised inputs through the run's
input spec (attacks/base.py: `input_box`); the attack stays inside the valid input box. The
result: `<split>/clean_accuracy`, `<split>/robust_accuracy/eps=<eps>`, a row per eps, the curve
and a grid of adversarial examples with the model's predictions.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any, Literal

from deepstrata.errors import UserError
from deepstrata.registry import register_tool, registry
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase
from deepstrata.tools.predictions import input_tensor, require_classifier

if TYPE_CHECKING:  # pragma: no cover
    import torch

GRID_COLUMNS = 8


@register_tool("attack", kind="analysis", report="trust")
def attack_run(
    run: Run,
    *,
    attack: str = "pgd",
    eps: list[float] = [0.1, 0.2, 0.3],  # noqa: B006 - read, never mutated
    steps: int = 40,
    restarts: int = 1,
    best_iterate: bool = True,
    norm: Literal["linf", "l2"] = "linf",
    loss: Literal["margin", "cross_entropy"] = "margin",
    queries: int = 5000,
    limit: int = 1000,
    split: Literal["train", "val", "test"] = "test",
    batch_size: int = 500,
    seed: int = 0,
) -> Analysis:
    """Robust accuracy against eps under a registered attack (pgd, fgsm, square); eps in raw pixel units in [0, 1].

    attack: a registered attack. eps: the radii (L-infinity or L2 by --norm) in raw [0, 1] units.
    steps, restarts: PGD's iterations and random restarts. best_iterate: an example counts as
    broken as soon as any PGD iterate fools the model (the default; --no-best-iterate: only the
    last iterate counts, as in Madry et al.'s evaluation). loss: what a gradient attack maximises,
    the margin max_{j != y} z_j - z_y (Carlini & Wagner 2017; the default: it does not saturate on
    confident or label-smoothed models) or cross-entropy. queries: the Square attack's budget
    per example. limit: examples of `split` attacked (the first ones). seed: the random starts.
    """
    import torch

    from deepstrata.attacks.base import cross_entropy_per_example, input_box, margin_loss
    attacks = registry("attack")
    fn, meta = attacks.get(attack), attacks.meta(attack)  # an unknown name: a UserError listing the choices
    if norm not in meta.get("norms", ("linf",)):
        raise UserError(f"attack: {attack} attacks in the {', '.join(meta.get('norms', ('linf',)))} norm only, not {norm}; drop --norm or choose another attack")
    if not eps or any(not float(e) >= 0 for e in eps):
        raise UserError(f"attack: eps must be one or more numbers >= 0 (raw pixel units in [0, 1]), got {list(eps)}; e.g. --eps 0.1,0.2,0.3")
    if min(steps, restarts, queries, limit, batch_size) < 1:
        raise UserError("attack: steps, restarts, queries, limit and batch_size must be >= 1")
    require_classifier(run, "attack")

    phase(f"attack: loading the model and {limit} {split} examples")
    model = run.model().eval()
    for p in model.parameters():
        p.requires_grad_(False)  # gradients flow to the inputs only
    x, y = input_tensor(run, split, limit=limit, tool="attack")
    x = x.float()
    lower, upper, unit = input_box(run.spec.get("input_spec") or {}, x.shape[1:])
    objective = {"margin": margin_loss, "cross_entropy": cross_entropy_per_example}[loss]
    options = {"norm": norm, "steps": steps, "restarts": restarts, "best_iterate": best_iterate, "n_queries": queries, "loss": objective}
    accepted = inspect.signature(fn).parameters
    options = {k: v for k, v in options.items() if k in accepted}
    generator = torch.Generator().manual_seed(seed)

    with torch.no_grad():
        clean_pred = _predict(model, x, batch_size)
    clean_right = clean_pred == y
    metrics: dict[str, float] = {f"{split}/clean_accuracy": float(clean_right.float().mean())}
    rows, shown = [], []
    for e in sorted({float(v) for v in eps}):
        phase(f"attack: {attack} at eps={e:g} on {len(x)} examples")
        start = time.perf_counter()
        parts = [fn(model, xb, yb, eps=e, lower=lower, upper=upper, unit=unit, generator=generator, **options) for xb, yb in zip(x.split(batch_size), y.split(batch_size))]
        seconds = time.perf_counter() - start
        adv = torch.cat(parts)
        with torch.no_grad():
            adv_pred = _predict(model, adv, batch_size)
        robust = clean_right & (adv_pred == y)
        delta = ((adv - x) / unit).flatten(1)
        size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
        metrics[f"{split}/robust_accuracy/eps={e:g}"] = float(robust.float().mean())
        rows.append(
            {
                "eps": e,
                "robust_accuracy": round(float(robust.float().mean()), 4),
                "attack_success_rate": round(float((clean_right & ~robust).sum() / max(int(clean_right.sum()), 1)), 4),
                "max_perturbation": round(float(size.max()), 6),
                "seconds": round(seconds, 3),
            }
        )
        shown.append((e, adv[:GRID_COLUMNS], adv_pred[:GRID_COLUMNS]))

    names = run.class_names or [str(i) for i in range(int(y.max()) + 1)]
    figures: dict[str, Any] = {"robust_accuracy": _curve(metrics[f"{split}/clean_accuracy"], rows, attack, norm)}
    if x.dim() == 4 and x.shape[1] in (1, 3):
        figures["adversarial_examples"] = _grid(x[:GRID_COLUMNS], clean_pred[:GRID_COLUMNS], y[:GRID_COLUMNS], shown, lower, upper, names)
    worst = rows[-1]
    parts = [f"{k}={v}" for k, v in options.items() if k not in ("norm", "loss")] + ([f"{loss} loss"] if "loss" in options else [])
    described = ", ".join(parts)
    summary = (
        f"{attack} ({norm}{', ' + described if described else ''}) on {len(x)} {split} examples: clean accuracy "
        f"{metrics[f'{split}/clean_accuracy']:.4f}, robust accuracy {worst['robust_accuracy']:.4f} at eps={worst['eps']:g} "
        f"(raw pixel units in [0, 1]); robust means right on the example and on the attack's output."
    )
    return Analysis(metrics=metrics, tables={"robust_accuracy": rows}, figures=figures, summary=summary)


def _predict(model: Any, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    import torch

    return torch.cat([model(part).argmax(dim=1) for part in x.split(batch_size)])


def _curve(clean: float, rows: list[dict[str, Any]], attack: str, norm: str) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    points = [(0.0, clean)] + [(r["eps"], r["robust_accuracy"]) for r in rows if r["eps"] > 0]
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    ax.set_xlabel(f"eps ({norm}, raw pixel units in [0, 1])")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Robust accuracy under {attack}")
    ax.grid(alpha=0.3)
    return fig


def _grid(x: torch.Tensor, clean_pred: torch.Tensor, y: torch.Tensor, shown: list[tuple[float, torch.Tensor, torch.Tensor]], lower: Any, upper: Any, names: list[str]) -> Any:
    """Clean examples on the first row, their adversarial versions at each eps below, titled with the prediction."""
    from matplotlib.figure import Figure

    def image(t: torch.Tensor) -> Any:  # (C, H, W) model inputs -> (H, W[, 3]) in [0, 1] for imshow
        scaled = ((t - lower) / (upper - lower)).clamp(0, 1).squeeze(0)
        return scaled.permute(1, 2, 0).numpy() if scaled.dim() == 3 else scaled.numpy()

    n = len(x)
    fig = Figure(figsize=(1.3 * n, 1.5 * (len(shown) + 1)))
    axes = fig.subplots(len(shown) + 1, n, squeeze=False)
    rows = [("clean", x, clean_pred)] + [(f"eps={e:g}", adv, pred) for e, adv, pred in shown]
    for r, (label, images, preds) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(image(images[c]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            right = int(preds[c]) == int(y[c])
            ax.set_title(names[int(preds[c])], color="black" if right else "red", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle("Predictions on clean and adversarial examples (red: wrong)", fontsize=10)
    return fig
