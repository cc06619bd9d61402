"""Generative models: likelihoods and sample quality on held-out data, beside trivial baselines.

Problem: a generative model's loss going down says nothing about whether it is any good; the
numbers that matter are held-out likelihoods (nats, bits/dim) next to a trivial baseline and
the published figure, and for conditional models whether samples show the requested class.
Idea: train each recipe with a fixed seed inside a fixed CPU budget (a callback stops training
when the budget is spent) and score it on the official test set:
  vae       MNIST VAE negative ELBO (test binarised once, seed 0) vs independent per-pixel Bernoulli
  pixelcnn  MNIST PixelCNN NLL, same protocol
  moons     two-moons RealNVP test log-likelihood and DDPM/RealNVP energy distances vs a Gaussian
  flow      MNIST RealNVP bits/dim (dequantised) vs independent per-pixel Gaussian and histogram
  digits    digits RealNVP bits/dim (dequantised), same baselines; digits GAN
  cvae, cgan, cddpm  conditional VAE, GAN and DDPM (DDIM 50 steps, guidance 2): share of
            samples of class c that a separately trained classifier calls c
Every image model also gets a Frechet distance on the penultimate features of a separately
trained judge classifier (LeNet-5 for MNIST, the small CNN for digits), next to the
real-vs-real distance for the same number of images (training images against the test set),
since the estimate grows as the sample shrinks.
Choose parts with GENERATIVE_PARTS=vae,moons (default) or =all; GENERATIVE_SMOKE=1 runs every
part with tiny settings to check the code. One torch thread by default: on a shared, busy CPU two
threads fight and run several times slower; GENERATIVE_THREADS=2 gives a part both cores of an
otherwise idle machine (each figure's note says which).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("DEEPSTRATA_DATA", str(REPO.parent / "shared" / "data"))
SMOKE = os.environ.get("GENERATIVE_SMOKE") == "1"
BUDGET_S = 20.0 if SMOKE else float(os.environ.get("GENERATIVE_BUDGET_S", "600"))
THREADS = int(os.environ.get("GENERATIVE_THREADS", "1"))  # 2 uses both cores: only on an otherwise idle machine


def _budget_callback(budget_s: float) -> Any:
    from deepstrata.training.callbacks.base import Callback

    class TimeBudget(Callback):
        """Stops training once `budget_s` seconds of fit time are spent (checked every batch)."""

        def on_fit_start(self, trainer: Any) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, output: Any) -> None:
            if time.perf_counter() - self.start > budget_s:
                trainer.state.should_stop, trainer.state.stop_reason = True, f"time budget {budget_s:.0f} s"

    return TimeBudget()


def _train(recipe: str, overrides: list[str], out: str) -> tuple[Any, dict[str, Any]]:
    """Train with the time budget; returns (result, run info)."""
    import json

    from deepstrata.api import train

    sets = [f"output_dir={out}", "trainer.progress=off", f"trainer.num_threads={THREADS}", *overrides]
    if SMOKE:
        sets += ["trainer.max_epochs=1", "trainer.max_steps=5", "callbacks=[]"]
    result = train(recipe, sets, extra_callbacks=[_budget_callback(BUDGET_S)])
    info = json.loads((result.run_dir / "run.json").read_text())
    return result, info


def _epochs_done(result: Any) -> int:
    from deepstrata.training.callbacks.metrics_logger import read_metrics

    return sum(1 for r in read_metrics(result.run_dir / "metrics.jsonl") if r.get("scope") == "epoch")


class Judges:
    """Digit classifiers trained once per benchmark process (fixed seed): class fidelity and Frechet features.

    `get(dataset)` returns (judge, test features, training images); the judge never sees samples
    in training, and its test accuracy is reported with the figures.
    """

    def __init__(self, out: str):
        self.out = out
        self.cache: dict[str, tuple[Any, Any, Any]] = {}
        self.figures: list[dict[str, Any]] = []
        self.floors: set[tuple[str, int]] = set()  # (dataset, n) whose real-vs-real floor was reported

    def get(self, dataset: str) -> tuple[Any, Any, Any]:
        if dataset not in self.cache:
            self.cache[dataset] = self._train(dataset)
        return self.cache[dataset]

    def _train(self, dataset: str) -> tuple[Any, Any, Any]:
        import torch

        from deepstrata.api import load, train
        from deepstrata.data.base import build_data
        from deepstrata.metrics.frechet import frechet_from_features

        if dataset == "mnist":
            model = {"name": "lenet5", "norm": "batch"}
            data = {"name": "mnist", "batch_size": 128, "val_fraction": 0.05, **({"limit": 2000} if SMOKE else {})}
            epochs = 1 if SMOKE else 3
        else:
            model = {"name": "small_cnn", "widths": [32, 64], "dropout": 0.25}
            data = {"name": "digits", "batch_size": 32, "val_fraction": 0.1, "test_fraction": 0.2}
            epochs = 2 if SMOKE else 30
        run = train(
            {"name": f"{dataset}_judge", "seed": 1, "output_dir": self.out, "data": data, "model": model,
             "optimizer": {"name": "adamw", "lr": 0.003}, "scheduler": {"name": "cosine"},
             "trainer": {"max_epochs": epochs, "progress": "off", "num_threads": 1}, "metrics": ["accuracy"]}
        )  # fmt: skip
        judge = load(run.run_dir).model.eval()
        bundle = build_data(dataset, seed=0, val_fraction=0.1, test_fraction=0.2)
        test = torch.stack([bundle.test[i][0] for i in range(len(bundle.test))])
        train_x = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
        with torch.no_grad():
            feats = torch.cat([judge.forward_head(judge.forward_features(b), pre_logits=True) for b in test.split(1000)])
        half = len(test) // 2
        self.figures += [
            {"name": f"{dataset} judge classifier test accuracy", "value": run.metrics["test/accuracy"], "unit": "", "note": f"{model['name']}, trained separately (seed 1)"},
            {"name": f"{dataset} Frechet distance real vs real (test halves, {half} vs {len(test) - half})", "value": frechet_from_features(feats[:half], feats[half:]), "unit": "", "note": "the floor at this sample size"},
        ]  # fmt: skip
        return judge, feats, train_x


def frechet_figures(judges: Judges, dataset: str, label: str, samples: Any, note: str = "") -> list[dict[str, Any]]:
    """Frechet distance of `samples` to the test set, and (once per sample size) of as many real training images: the floor."""
    import torch

    from deepstrata.metrics.frechet import frechet_from_features

    judge, test_feats, train_x = judges.get(dataset)
    n = len(samples)
    real = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:n]]
    with torch.no_grad():
        fake_f = torch.cat([judge.forward_head(judge.forward_features(b.clamp(0, 1)), pre_logits=True) for b in samples.split(500)])
        real_f = torch.cat([judge.forward_head(judge.forward_features(b), pre_logits=True) for b in real.split(500)])
    figures = [{"name": f"{label}: Frechet distance to test ({n} samples)", "value": frechet_from_features(test_feats, fake_f), "unit": "", "note": note or f"{dataset} judge's penultimate features"}]
    if (dataset, n) not in judges.floors:
        judges.floors.add((dataset, n))
        figures.append({"name": f"{dataset} Frechet real-vs-real floor: {n} training images to test", "value": frechet_from_features(test_feats, real_f), "unit": "", "note": "the floor for that many samples"})
    return figures


def bench_mnist_likelihood(name: str, recipe: str, published: str, out: str, judges: Judges) -> list[dict[str, Any]]:
    import torch

    from deepstrata.api import load
    from deepstrata.data.binarized_mnist import binarized_mnist
    from deepstrata.metrics.pixel_baselines import bernoulli_nll

    overrides = ["data.limit=2000"] + (["model.channels=8", "model.num_blocks=1"] if name == "pixelcnn" else []) if SMOKE else []
    result, info = _train(recipe, overrides, out)
    data = binarized_mnist(limit=2000 if SMOKE else None)
    baseline = bernoulli_nll(data.x, data.test_x)
    nats = result.metrics["test/loss"]
    label = "negative ELBO" if name == "vae" else "NLL"
    # PixelCNN samples pixel by pixel (784 passes of the network), so it gets fewer samples.
    n = (20 if SMOKE else 200) if name == "pixelcnn" else (100 if SMOKE else 1000)
    t0 = time.perf_counter()
    samples = load(result.run_dir).model.eval().sample(n, generator=torch.Generator().manual_seed(0))
    sample_s = time.perf_counter() - t0
    return [
        {"name": f"MNIST {name} test {label}", "value": nats, "unit": "nats",
         "note": f"floor <= {'95' if name == 'vae' else '100'}; fit {info['fit_time_s']:.0f} s, {_epochs_done(result)} epochs, {THREADS} thread(s); {published}"},
        {"name": f"MNIST {name} test {label} (bits/dim)", "value": nats / (784 * math.log(2)), "unit": "bits/dim", "note": ""},
        {"name": "MNIST independent per-pixel Bernoulli (trivial baseline)", "value": baseline, "unit": "nats", "note": "pixel means fitted on train, same binarised test set"},
        *frechet_figures(judges, "mnist", f"MNIST {name} samples", samples, note="binary samples against grey test images" if name == "pixelcnn" else ""),
        {"name": f"MNIST {name}: time to draw {n} samples", "value": sample_s, "unit": "s", "note": "one thread"},
    ]  # fmt: skip


def bench_moons(out: str, judges: Judges) -> list[dict[str, Any]]:
    import torch

    from deepstrata.api import load
    from deepstrata.data.base import build_data
    from deepstrata.metrics.energy_distance import energy_distance

    data = build_data("moons", seed=0, val_fraction=0.1, test_fraction=0.2)
    train = torch.stack([data.train[i][0] for i in range(len(data.train))]).double()
    test = torch.stack([data.test[i][0] for i in range(len(data.test))]).double()
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    gen = torch.Generator().manual_seed(0)
    n = len(test)
    figures = []
    flow, flow_info = _train("recipes/moons_realnvp.yaml", [], out)
    ddpm, ddpm_info = _train("recipes/moons_ddpm.yaml", [], out)
    torch.manual_seed(0)
    samples = {
        "RealNVP": load(flow.run_dir).model.sample(n, generator=gen),
        "DDPM (ancestral, 200 steps)": load(ddpm.run_dir).model.sample(n, generator=gen),
        "DDPM (DDIM, 50 steps)": load(ddpm.run_dir).model.sample(n, steps=50, generator=gen),
        "Gaussian fitted on train (baseline)": gauss.sample((n,)).float(),
        "real train points (real-vs-real floor)": train[torch.randperm(len(train), generator=gen)[:n]].float(),
    }
    figures.append({"name": "moons RealNVP test log-likelihood", "value": -flow.metrics["test/loss"], "unit": "nats/point", "note": f"fit {flow_info['fit_time_s']:.0f} s"})
    figures.append({"name": "moons Gaussian test log-likelihood (baseline)", "value": float(gauss.log_prob(test).mean()), "unit": "nats/point", "note": "full covariance fitted on train"})
    for label, s in samples.items():
        figures.append({"name": f"moons energy distance to test: {label}", "value": energy_distance(s.float(), test.float()), "unit": "", "note": "lower is better"})
    return figures


def _flow_figures(dataset: str, result: Any, info: dict[str, Any], levels: int, published: str = "") -> list[dict[str, Any]]:
    """The flow's test bits/dim beside the two independent-pixel baselines and the uniform one."""
    import torch

    from deepstrata.data.base import build_data
    from deepstrata.metrics.pixel_baselines import gaussian_bits_per_dim, histogram_bits_per_dim

    data = build_data(dataset, seed=0, val_fraction=0.05 if dataset == "mnist" else 0.1, test_fraction=0.2)  # the recipes' splits (MNIST: official test set)
    train, test = (torch.stack([split[i][0] for i in range(len(split))]) for split in (data.train, data.test))
    gaussian = gaussian_bits_per_dim(train, test, levels, generator=torch.Generator().manual_seed(0))
    name = "MNIST" if dataset == "mnist" else dataset
    return [
        {"name": f"{name} RealNVP test bits/dim", "value": result.metrics["test/bits_per_dim"], "unit": "bits/dim",
         "note": f"dequantised {levels} levels, upper bound; fit {info['fit_time_s']:.0f} s, {_epochs_done(result)} epochs, {THREADS} thread(s){'; ' + published if published else ''}"},
        {"name": f"{name} independent per-pixel Gaussian (trivial baseline)", "value": gaussian, "unit": "bits/dim", "note": "fitted on dequantised train pixels, same bound"},
        {"name": f"{name} independent per-pixel histogram (baseline)", "value": histogram_bits_per_dim(train, test, levels), "unit": "bits/dim", "note": f"{levels}-level histogram per pixel fitted on train: the best independent-pixel model"},
        {"name": f"{name} uniform (baseline)", "value": math.log2(levels), "unit": "bits/dim", "note": ""},
    ]  # fmt: skip


def bench_digits(out: str, judges: Judges) -> list[dict[str, Any]]:
    import torch

    from deepstrata.api import load

    smoke = ["trainer.max_epochs=2"] if SMOKE else []
    result, info = _train("recipes/digits_realnvp.yaml", smoke, out)
    n = len(judges.get("digits")[1])
    gen = torch.Generator().manual_seed(0)
    flow_samples = load(result.run_dir).model.eval().sample(n, generator=gen)
    gan, gan_info = _train("recipes/digits_gan.yaml", smoke, out)
    gan_samples = load(gan.run_dir).model.eval().sample(n, generator=gen)
    return [
        *_flow_figures("digits", result, info, 17),
        *frechet_figures(judges, "digits", "digits RealNVP samples", flow_samples),
        *frechet_figures(judges, "digits", "digits GAN samples", gan_samples, note=f"fit {gan_info['fit_time_s']:.0f} s"),
    ]  # fmt: skip


PUBLISHED_REALNVP = "published: RealNVP 1.06 bits/dim on MNIST, as reported in Grathwohl et al. 2019 (FFJORD), Table 2"


def bench_mnist_flow(out: str, judges: Judges) -> list[dict[str, Any]]:
    import torch

    from deepstrata.api import load

    smoke = ["data.limit=1000", "model.hidden=8", "model.num_couplings=4"] if SMOKE else []
    result, info = _train("recipes/mnist_realnvp.yaml", smoke, out)
    samples = load(result.run_dir).model.eval().sample(100 if SMOKE else 1000, generator=torch.Generator().manual_seed(0))
    return [*_flow_figures("mnist", result, info, 256, PUBLISHED_REALNVP), *frechet_figures(judges, "mnist", "MNIST RealNVP samples", samples)]


CONDITIONAL = {
    "cvae": ("cVAE", "recipes/mnist_cvae.yaml", {}),
    "cgan": ("cGAN", "recipes/mnist_cgan.yaml", {}),
    "cddpm": ("conditional DDPM (DDIM 50, guidance 2)", "recipes/mnist_ddpm.yaml", {"steps": 50, "guidance": 2.0}),
}


def bench_conditional(part: str, out: str, judges: Judges) -> list[dict[str, Any]]:
    """Class fidelity and Frechet distance of one conditional model's samples, judged by the separately trained classifier."""
    import torch

    from deepstrata.api import load

    judge, _, _ = judges.get("mnist")
    label, recipe, kw = CONDITIONAL[part]
    per_class = 10 if SMOKE else 100
    y = torch.arange(10).repeat_interleave(per_class)
    smoke = ["data.limit=1000"] + (["model.base_channels=8"] if "ddpm" in recipe else ["model.width=8"] if "cgan" in recipe else []) if SMOKE else []
    result, info = _train(recipe, smoke, out)
    model = load(result.run_dir).model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        x = torch.cat([model.sample(len(c), y=c, generator=torch.Generator().manual_seed(0), **kw) for c in y.split(250)])
        pred = torch.cat([judge(b).argmax(1) for b in x.split(500)])
    sample_s = time.perf_counter() - t0
    return [
        {"name": f"{label}: samples classified as the requested class", "value": float((pred == y).float().mean()), "unit": "",
         "note": f"{len(y)} samples ({sample_s:.0f} s to draw); fit {info['fit_time_s']:.0f} s, {_epochs_done(result)} epochs, {THREADS} thread(s)"},
        *frechet_figures(judges, "mnist", label, x),
    ]  # fmt: skip


PUBLISHED_VAE = "published: VAE (1 stochastic layer) 86.76 nats test NLL by IWAE-5000 bound, Burda et al. 2016 Table 1 (ELBO is higher)"
PUBLISHED_PIXELCNN = "published: PixelCNN 81.30 nats, van den Oord et al. 2016 (Table 4, binarised MNIST)"


def main() -> None:
    import json

    parts = os.environ.get("GENERATIVE_PARTS", "vae,moons")
    chosen = list(ALL_PARTS) if parts == "all" else parts.split(",")
    unknown = set(chosen) - set(ALL_PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(ALL_PARTS)} or all")
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as out:
        judges = Judges(out)
        for part in chosen:
            t0 = time.perf_counter()
            judges.figures = []
            part_figures = ALL_PARTS[part](out, judges)
            figures += [{**f, "part": part} for f in judges.figures + part_figures]  # a judge's figures go with the first part that needed it
            print(f"part {part}: {time.perf_counter() - t0:.0f} s", flush=True)
    for f in figures:
        print(f"{f['name']}: {f['value']:.4f} {f['unit']}", flush=True)
    # Parts are measured in separate runs (each fits a 10-minute budget): keep the stored
    # figures of the parts not run this time, so results/generative.json accumulates them.
    stored = REPO / "benchmarks" / "results" / "generative.json"
    kept: list[dict[str, Any]] = []
    measured = set(chosen)
    if stored.is_file() and not SMOKE:
        old = json.loads(stored.read_text())
        new_names = {f["name"] for f in figures}  # a judge measured again replaces its stored figures
        kept = [f for f in old.get("figures", []) if f.get("part", "vae" if "vae" in f["name"] or "Bernoulli" in f["name"] else "moons") not in measured and f["name"] not in new_names]
        measured |= {f.get("part", "") for f in kept} - {""}
    order = list(ALL_PARTS)
    merged = sorted(kept + figures, key=lambda f: order.index(f.get("part", "vae")) if f.get("part", "vae") in order else 99)
    done = ",".join(p for p in order if p in measured)
    emit(
        "generative",
        f"GENERATIVE_PARTS=<part> .venv/bin/python benchmarks/run_all.py --only generative  (parts measured: {done})",
        merged,
        description=f"Generative models on held-out data, fixed seed 0, {BUDGET_S:.0f} s training budget per recipe on a 2-core CPU: one torch thread per part while the other core was busy, unless a note says 2 threads (the part then had the machine to itself). Parts measured so far: {done}; not yet: {','.join(p for p in order if p not in measured) or 'none'}.",
    )


ALL_PARTS = {
    "vae": lambda out, judges: bench_mnist_likelihood("vae", "recipes/mnist_vae.yaml", PUBLISHED_VAE, out, judges),
    "pixelcnn": lambda out, judges: bench_mnist_likelihood("pixelcnn", "recipes/mnist_pixelcnn.yaml", PUBLISHED_PIXELCNN, out, judges),
    "moons": bench_moons,
    "flow": bench_mnist_flow,
    "digits": bench_digits,
    "cvae": lambda out, judges: bench_conditional("cvae", out, judges),
    "cgan": lambda out, judges: bench_conditional("cgan", out, judges),
    "cddpm": lambda out, judges: bench_conditional("cddpm", out, judges),
}


if __name__ == "__main__":
    main()
