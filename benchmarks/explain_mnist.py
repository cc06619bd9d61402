"""Attribution methods on MNIST: faithfulness, sanity, IG completeness and cost, in one table.

Problem: every attribution method draws a plausible picture; which of them say something about
the model? Issue 16 asks, on 500 MNIST test images per method, for the deletion and insertion
AUC (Petsiuk et al. 2018) against a random attribution, the Spearman correlation of the
cascading model-randomisation test (Adebayo et al. 2018), and each method's cost.
Idea:
- train `recipes/mnist_lenet.yaml` (seed 0) as a user would (`strata train`);
- explain the predicted class of the first 500 test images with every registered explainer
  that applies to it, at its registered defaults (fixed a priori, not tuned); a method whose
  probe on 10 images projects to more than PROJECTED_LIMIT_S seconds for 500 runs on the
  first SUBSET images only (KernelSHAP, LIME), and the table says so;
- deletion and insertion curves over 28 steps of 28 pixels, pixels ranked by the attribution
  summed over channels (most positive first), removed pixels set to the black background's
  model-input value; the same curves for a uniform random ranking (seed 0);
- cascading randomisation top-down over every parameterised layer on the first SANITY images
  (fewer for the costly methods), Spearman rank correlation of the absolute maps against the
  trained model's, reported after the top layer alone and after all layers;
- Integrated Gradients' completeness: |sum of attributions - (F(x) - F(x'))| / |F(x) - F(x')|
  for the target logit, on all 500 images, at the explainer's 50 steps and its 0.0 baseline;
- `strata explain RUN --method ...` draws the grid of right and wrong test examples (docs/img).

    .venv/bin/python benchmarks/run_all.py --only explain_mnist
    .venv/bin/python benchmarks/explain_mnist.py --reuse runs/mnist_lenet/STAMP   # an existing run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from _recipe_run import REPO, run_recipe  # noqa: E402

os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
RECIPE = "recipes/mnist_lenet.yaml"
N_IMAGES = 500
SUBSET = 100  # images for a method too costly for all 500
SANITY = 100  # images of the randomisation test
SANITY_BUDGET_S = 120.0  # a method's randomisation test is cut to fewer images beyond this projected time
PROJECTED_LIMIT_S = 240.0
STEPS = 28
BATCH = 50
GRID_METHODS = "saliency,integrated_gradients,grad_cam,guided_grad_cam,occlusion"
STRATA = str(Path(sys.executable).with_name("strata"))


def attribute_all(explainer, model, x, target):
    import torch

    return torch.cat([explainer.attribute(model, x[i : i + BATCH], target[i : i + BATCH]) for i in range(0, len(x), BATCH)])


def main() -> None:
    import torch

    from deepstrata.errors import UserError
    from deepstrata.explain.base import EXPLAINERS, make_explainer
    from deepstrata.explain.faithfulness import auc, deletion_curve, insertion_curve, random_attribution
    from deepstrata.explain.sanity import cascading_randomisation, parameterised_layers
    from deepstrata.run.run import Run
    from deepstrata.tools.predictions import input_tensor

    parser = argparse.ArgumentParser()
    parser.add_argument("--reuse", default=None, help="an existing mnist_lenet run directory")
    parser.add_argument("--images", type=int, default=N_IMAGES, help="a quick check on fewer images (the stored result uses 500)")
    args = parser.parse_args()
    if args.reuse:
        run_dir, metrics = Path(args.reuse), {}
    else:
        metrics, run_dir, wall, _, _ = run_recipe(RECIPE)
        print(f"trained {run_dir} in {wall:.0f} s", flush=True)
    run = Run.open(run_dir)
    test_accuracy = metrics.get("test/accuracy", run.test_metrics.get("test/accuracy"))
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = run.model().eval()
    x, y = input_tensor(run, "test", limit=args.images, tool="explain_mnist")
    with torch.no_grad():
        target = model(x).argmax(1)
    black = float(x.min())  # raw 0 (the background) in model-input units
    layers = [name for name, _ in parameterised_layers(model, x)]
    print(f"{len(x)} test images, accuracy on them {float((target == y).float().mean()):.4f}; background {black:.4f}; layers {layers}", flush=True)

    def faithfulness(attribution, xs, ts):
        d = auc(deletion_curve(model, xs, ts, attribution, baseline=black, steps=STEPS))
        i = auc(insertion_curve(model, xs, ts, attribution, baseline=black, steps=STEPS))
        return float(d.mean()), float(i.mean())

    rand_del, rand_ins = faithfulness(random_attribution(x, seed=0), x, target)
    rand_sub = faithfulness(random_attribution(x[:SUBSET], seed=0), x[:SUBSET], target[:SUBSET])
    rows, data = [], {"layers": layers, "random": {"deletion_auc": rand_del, "insertion_auc": rand_ins, "subset": rand_sub}}
    completeness = None
    for name in EXPLAINERS.names():
        explainer = make_explainer(name)
        reason = explainer.why_not(model, x)
        needs = str(EXPLAINERS.meta(name).get("needs", type(explainer).needs))
        if reason is not None:
            rows.append({"method": name, "needs": needs, "applies": False, "reason": reason})
            print(f"{name}: does not apply: {reason}", flush=True)
            continue
        start = time.perf_counter()
        try:
            explainer.attribute(model, x[:10], target[:10])
        except UserError as err:  # TCAV scores concept sets, not pixels
            rows.append({"method": name, "needs": needs, "applies": False, "reason": str(err)})
            print(f"{name}: draws no maps: {err}", flush=True)
            continue
        probe = (time.perf_counter() - start) / 10
        n = len(x) if probe * len(x) <= PROJECTED_LIMIT_S else min(SUBSET, len(x))
        xs, ts = x[:n], target[:n]
        start = time.perf_counter()
        attribution = attribute_all(explainer, model, xs, ts)
        seconds = (time.perf_counter() - start) / n
        deletion, insertion = faithfulness(attribution, xs, ts)
        base_del, base_ins = (rand_del, rand_ins) if n == len(x) else rand_sub
        n_sanity = min(n, max(10, min(SANITY, int(SANITY_BUDGET_S / max(seconds * len(layers), 1e-9)))))
        ink = (xs[:n_sanity] != black).any(1).flatten(1)  # the digit's pixels: every other one is the black background
        steps = cascading_randomisation(
            model,
            xs[:n_sanity],
            ts[:n_sanity],
            lambda m, a, t, e=explainer: attribute_all(e, m, a, t),
            original=attribution[:n_sanity],
            within=ink,
        )
        row = {
            "method": name,
            "needs": needs,
            "applies": True,
            "images": n,
            "seconds_per_image": seconds,
            "deletion_auc": deletion,
            "insertion_auc": insertion,
            "random_deletion_auc": base_del,
            "random_insertion_auc": base_ins,
            "sanity_images": n_sanity,
            "spearman_top_layer": steps[0].spearman,
            "spearman_all_layers": steps[-1].spearman,
            "sanity_undefined": steps[-1].undefined,
            "spearman_all_layers_ink": steps[-1].spearman_within,
            "cascade": [(s.layer, s.spearman, s.undefined, s.spearman_within, s.undefined_within) for s in steps],
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "cascade"}), flush=True)
        if name == "integrated_gradients":
            baseline = torch.full_like(xs, float(getattr(explainer, "baseline", 0.0)))
            with torch.no_grad():
                fx = model(xs).gather(1, ts[:, None]).squeeze(1)
                fb = model(baseline).gather(1, ts[:, None]).squeeze(1)
            gap = (fx - fb).double()
            err = (attribution.flatten(1).sum(1).double() - gap).abs() / gap.abs().clamp_min(1e-12)
            completeness = {"median": float(err.median()), "max": float(err.max()), "within_1pct": float((err <= 0.01).double().mean()), "n": len(err)}
            print(f"IG completeness: {completeness}", flush=True)
    data["rows"] = rows
    data["ig_completeness"] = completeness

    # The grid of right and wrong test examples, drawn by the tool as a user would.
    grid_png = None
    proc = subprocess.run([STRATA, "explain", str(run_dir), "--method", GRID_METHODS, "--examples", "8", "--json"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode == 0:
        result = Run.open(run_dir).latest_tool_result("explain")
        source = Path(result["dir"]) / "grid.png"
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, REPO / "docs" / "img" / "explain_mnist_grid.png")
        grid_png = "img/explain_mnist_grid.png"
    else:
        sys.stderr.write(proc.stderr[-2000:])

    def f(v, digits=4):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    lines = [
        "| method | needs | images | s / image | deletion AUC (lower better) | random | insertion AUC (higher better) | random | Spearman, top layer random | Spearman, all layers random (images) | the same, ink pixels only |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["applies"]:
            lines.append(f"| {r['method']} | {r['needs']} | does not apply: {r['reason']} | | | | | | | | |")
            continue
        undefined = f", {r['sanity_undefined']} constant maps" if r["sanity_undefined"] else ""
        lines.append(
            f"| {r['method']} | {r['needs']} | {r['images']} | {r['seconds_per_image']:.4f} | {f(r['deletion_auc'])} | {f(r['random_deletion_auc'])} | "
            f"{f(r['insertion_auc'])} | {f(r['random_insertion_auc'])} | {f(r['spearman_top_layer'], 3)} | {f(r['spearman_all_layers'], 3)} ({r['sanity_images']}{undefined}) | {f(r['spearman_all_layers_ink'], 3)} |"
        )
    applied = [r for r in rows if r["applies"]]
    figures = [{"name": "LeNet-5 test accuracy (whole test set)", "value": test_accuracy, "unit": "", "note": f"{RECIPE}, seed 0"}]
    if completeness:
        figures.append(
            {
                "name": f"IG completeness error, median over {completeness['n']} images",
                "value": completeness["median"],
                "unit": "of the score gap F(x) - F(baseline)",
                "note": f"max {completeness['max']:.4f}; {completeness['within_1pct']:.1%} of images within 1%; 50 steps, baseline 0.0 (model-input units)",
            }
        )
    for r in applied:
        figures.append(
            {
                "name": f"{r['method']}: deletion / insertion AUC",
                "value": r["deletion_auc"],
                "unit": "deletion AUC",
                "note": f"insertion {r['insertion_auc']:.4f}; random {r['random_deletion_auc']:.4f} / {r['random_insertion_auc']:.4f}; {r['images']} images",
            }
        )
    description = (
        f"LeNet-5 ({RECIPE}) on the first {len(x)} MNIST test images, the predicted class explained. Deletion/insertion: {STEPS} steps of 28 pixels, "
        f"removed pixels set to the black background; 'random' is a uniform random ranking on the same images. Sanity: cascading randomisation "
        f"over {len(layers)} parameterised layers ({', '.join(layers)}), Spearman of absolute maps against the trained model's, mean over images "
        f"(constant maps have no ranks and are left out); 'ink pixels only' ranks only the pixels that are not black background. Methods projected over {PROJECTED_LIMIT_S:.0f} s for {len(x)} images ran on the first {SUBSET}."
    )
    emit(
        "explain_mnist",
        ".venv/bin/python benchmarks/run_all.py --only explain_mnist",
        figures,
        table="\n".join(lines),
        description=description,
        images=[grid_png] if grid_png else [],
        data=data,
    )


if __name__ == "__main__":
    main()
