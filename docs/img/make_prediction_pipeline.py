"""Draws docs/img/prediction_pipeline.png: what the Predictor does to a drawing before an MNIST model reads it.

Problem: "the image is converted like the training data" means little until one sees the
steps; a user who knows them can tell why a drawing was read right, or wrong.
Idea: draw two hand-style digits (black pen on white paper, a wobbly polyline), run each
stage of `deepstrata.data.image_fit` on them and show every stage with the model's answer,
next to what the model said when the image was only resized (the Predictor before fitting).

    .venv/bin/python docs/img/make_prediction_pipeline.py [RUN_DIR]

Without RUN_DIR it trains recipes/mnist_lenet.yaml on 30,000 images for 2 epochs (the run
tests/test_predictor_images.py uses; needs ../shared/data/mnist).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "prediction_pipeline.png"

# Pen strokes in a 300 x 240 canvas (x, y): a "7" with a crossbar, and a "4" drawn in two strokes.
DRAWINGS = {
    "7": [[(70, 55), (150, 50), (215, 58), (180, 120), (150, 190), (138, 215)], [(120, 135), (200, 132)]],
    "4": [[(175, 40), (95, 150), (215, 148)], [(180, 80), (176, 160), (172, 220)]],
}


def hand_drawn(strokes: list[list[tuple[int, int]]], seed: int):
    """Black ink on off-white paper, with a seeded wobble along each stroke (an 8-bit grey PIL image)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("L", (300, 240), 236)
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        points = []
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            for t in np.linspace(0, 1, 12, endpoint=False):
                points.append((x0 + t * (x1 - x0) + rng.normal(0, 1.5), y0 + t * (y1 - y0) + rng.normal(0, 1.5)))
        points.append(stroke[-1])
        draw.line(points, fill=25, width=14, joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=25)
    return img


def stages(grey: np.ndarray, fit) -> list[tuple[str, np.ndarray]]:
    """The pipeline's steps on a (H, W) grey image in 0..1, each as shown in the figure."""
    from deepstrata.data.image_fit import ImageFit, fit_image, ink_box, stretch_levels, to_light_ink

    light, inverted = to_light_ink(grey)
    levels = stretch_levels(light)
    top, bottom, left, right = ink_box(levels)
    crop = levels[top:bottom, left:right]
    scaled = fit_image(crop, ImageFit(frame=fit.box, box=fit.box, center="box"))
    final = fit_image(levels, fit)
    return [
        ("2. grey, inverted" if inverted else "2. grey", light),
        ("3. levels: paper 0, ink 1", levels),
        (f"4. cropped to the ink\n{crop.shape[1]}x{crop.shape[0]} px", crop),
        (f"5. long side scaled\nto {fit.box} px", scaled),
        (f"6. centre of mass at the\ncentre of {fit.frame}x{fit.frame}", final),
    ]


def main(run_dir: str | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepstrata.data.image_fit import center_of_mass, ink_box
    from deepstrata.run.run import Run

    if run_dir is None:
        from deepstrata import api

        overrides = ["data.limit=30000", "trainer.max_epochs=2", "trainer.progress=off", "trainer.num_threads=1"]
        run_dir = str(api.train(REPO / "recipes" / "mnist_lenet.yaml", [*overrides, f"output_dir={tempfile.mkdtemp()}"]).run_dir)
    run = Run.open(run_dir)
    predictor = run.predictor()
    fig, axes = plt.subplots(len(DRAWINGS), 7, figsize=(17, 2.9 * len(DRAWINGS)), gridspec_kw={"width_ratios": [1.5, 1.5, 1.5, 1, 1, 1, 1.3]})
    with tempfile.TemporaryDirectory() as tmp:
        for row, (digit, strokes) in zip(axes, DRAWINGS.items()):
            path = Path(tmp) / f"drawn_{digit}.png"
            drawing = hand_drawn(strokes, seed=int(digit))
            drawing.save(path)
            grey = np.asarray(drawing, dtype=np.float32) / 255.0
            (new,) = predictor.predict_files([path], top_k=10)
            # The Predictor before image fitting resized the whole picture to 28x28, nothing else.
            resized = np.asarray(drawing.resize((28, 28)), dtype=np.float32)
            (old,) = predictor.predict(resized)
            row[0].imshow(grey, cmap="gray", vmin=0, vmax=1)
            row[0].set_title(f"1. the drawing ({grey.shape[1]}x{grey.shape[0]})\nonly resized: \"{old['class_name']}\" ({old['probability']:.2f})", fontsize=9)
            for ax, (title, img) in zip(row[1:6], stages(grey, predictor.image_fit)):
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
                ax.set_title(title, fontsize=9)
            final = stages(grey, predictor.image_fit)[-1][1]
            cy, cx = center_of_mass(final)
            top, bottom, left, right = ink_box(final)
            row[5].plot([cx], [cy], "r+", markersize=12)
            row[5].add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="tab:blue", linewidth=0.8))
            top = sorted(new["top_k"], key=lambda t: t["label"])  # all ten classes, 0 at the top
            row[6].barh([t["class_name"] for t in top], [t["probability"] for t in top], color="tab:green")
            row[6].invert_yaxis()
            row[6].set_xlim(0, 1)
            row[6].set_title(f"7. the model: \"{new['class_name']}\" ({new['probability']:.2f})" + ("\n" + "; ".join(new["warnings"]) if new.get("warnings") else ""), fontsize=9)
            for ax in row[:6]:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"What the Predictor does to a drawing for an MNIST model (run: {run.spec.get('recipe')}, red +: centre of mass, blue: the ink's box)", fontsize=11)
    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    return OUT


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else None))
