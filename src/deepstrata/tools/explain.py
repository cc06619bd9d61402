"""Explain: which parts of an input a finished run's prediction rests on, by every method asked for.

Problem: a user who asks "why did the model say 5?" needs the attribution methods run on their
own files (made into model inputs exactly as `deepstrata.load(run).predict` makes them), side by
side, with a word for each method that cannot explain this model instead of a silent gap, and
the report needs the same picture for test examples the model got right and wrong.
Idea: `strata explain RUN [INPUT ...] --method integrated_gradients,grad_cam` resolves each name
through the explainer registry (a registered name, or an alias an explainer declares with
`aliases=`), asks each explainer whether it applies (`why_not`), and explains the predicted
class of: the INPUT files (images, .npy arrays; for a text run, strings or text files, tokenised
by the run's tokenizer), and a fixed set of test examples, the first `examples // 2` the model
gets right and the first that it gets wrong in split order. It writes one overlay PNG per input
x method (`overlays/`), highlighted HTML per text input (`text/`), the grid of test examples x
methods (`grid.png`, or `grid.html` for text) that the report's explain section shows, and a
table of methods with their cost and what they need; a method that does not apply stays in the
table with its reason. Asking only for methods that do not apply is an error that says why.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepstrata.errors import UserError
from deepstrata.registry import register_tool
from deepstrata.run.run import Run
from deepstrata.tools.base import Analysis, phase, scratch_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_METHODS = ["saliency", "integrated_gradients", "grad_cam"]


def resolve_method(name: str) -> str:
    """A registered explainer's name for `name` (its own, or an alias it declares); see `explain.base.explainer_name`."""
    from deepstrata.explain.base import explainer_name

    return explainer_name(name, who="explain")


@register_tool("explain", kind="analysis", report="explain", positional="inputs")
def explain(
    run: Run,
    *,
    inputs: list[str] = [],  # noqa: B006 - read, never mutated
    method: list[str] = DEFAULT_METHODS,  # noqa: B006 - read, never mutated
    examples: int = 8,
    split: str = "test",
) -> Analysis:
    """Attribution maps of the predicted class for INPUT files (or texts) and for right and wrong test examples.

    inputs: image files (.png, .jpg), .npy arrays, or for a text run texts or text files (also as words after RUN_DIR).
    method: explainers, comma-separated: registered names or their aliases (ig, gradcam; `strata list explainers`).
    examples: test examples in the grid, half the model gets right and half it gets wrong (0: no grid).
    split: the split the grid's examples come from.
    """
    import torch

    from deepstrata.explain.base import EXPLAINERS, make_explainer

    if examples < 0:
        raise UserError(f"explain: --examples must be >= 0, got {examples}")
    if not method:
        raise UserError("explain: give at least one method, e.g. --method saliency,integrated_gradients")
    names = list(dict.fromkeys(resolve_method(m) for m in method))
    explainers = {n: make_explainer(n) for n in names}
    model = run.model().eval()
    phase(f"explain: choosing {examples} {split} examples")
    grid = _split_examples(run, split, model, examples)
    like = grid["x"]
    text = not torch.is_floating_point(like)
    user = _text_inputs(run, inputs, like) if text else _file_inputs(run, inputs)
    if not inputs:  # explain the test examples themselves
        user = {"x": grid["x"], "names": [f"{split}-{i}" for i in grid["index"]], "tokens": grid.get("tokens")}
    x_all = torch.cat([user["x"], grid["x"]]) if inputs else grid["x"]
    if len(x_all) == 0:
        raise UserError(f"explain: nothing to explain: give INPUT files or --examples > 0 ('{run.path}' {split} split)")
    with torch.no_grad():
        predicted = model(x_all).argmax(1)

    rows: list[dict[str, Any]] = []
    maps: dict[str, torch.Tensor] = {}
    for name, explainer in explainers.items():
        needs = str(EXPLAINERS.meta(name).get("needs", type(explainer).needs))
        reason = explainer.why_not(model, x_all)
        if reason is not None:
            rows.append({"method": name, "applies": "no", "needs": needs, "seconds": None, "seconds_per_input": None, "note": reason})
            continue
        phase(f"explain: {name} on {len(x_all)} inputs")
        start = time.perf_counter()
        try:
            maps[name] = explainer.attribute(model, x_all, predicted).detach()
        except UserError as err:  # a method that scores something else (TCAV's concepts) says so when asked for maps
            rows.append({"method": name, "applies": "no", "needs": needs, "seconds": None, "seconds_per_input": None, "note": str(err)})
            continue
        seconds = time.perf_counter() - start
        rows.append({"method": name, "applies": "yes", "needs": needs, "seconds": round(seconds, 4), "seconds_per_input": round(seconds / len(x_all), 5), "note": ""})
    if not maps:
        raise UserError("explain: no method asked for applies to this model: " + "; ".join(f"{r['method']}: {r['note']}" for r in rows))

    phase("explain: drawing")
    folder = scratch_dir(run, "explain")
    try:
        files, figures = _write_outputs(run, folder, user, grid, maps, predicted, n_user=len(user["x"]), text=text)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    metrics: dict[str, float] = {"explain/inputs": float(len(user["x"])), "explain/examples": float(len(grid["x"])), "explain/methods_applied": float(len(maps))}
    for row in rows:
        if row["seconds_per_input"] is not None:
            metrics[f"explain/{row['method']}/seconds_per_input"] = float(row["seconds_per_input"])
    skipped = [r["method"] for r in rows if r["applies"] == "no"]
    summary = (
        f"Attributions of the predicted class by {', '.join(maps)} for {len(user['x'])} input(s) "
        f"and a grid of {grid['correct']} correctly and {grid['wrong']} wrongly classified {split} examples."
    )
    if grid["wrong"] < examples - examples // 2 and examples:
        summary += f" The {split} split has only {grid['wrong']} misclassified example(s) in all."
    if skipped:
        summary += f" Not applicable: {', '.join(skipped)} (see the table)."
    tables = {"methods": rows, "examples": grid["rows"]}
    return Analysis(metrics=metrics, tables=tables, figures=figures, summary=summary, files=files)


# --------------------------------------------------------------------------------------
# What to explain.
# --------------------------------------------------------------------------------------


def _split_examples(run: Run, split: str, model: Any, k: int) -> dict[str, Any]:
    """The first ceil(k/2) correctly and floor(k/2) wrongly classified examples of `split`, in split order.

    When there are too few wrong ones, the grid holds what there is (and the summary says so).
    """
    import torch

    from deepstrata.tools.predictions import labelled_batches

    want_right, want_wrong = k - k // 2, k // 2
    right: list[tuple[int, Any, int, int]] = []
    wrong: list[tuple[int, Any, int, int]] = []
    seen = 0
    like = None
    for inputs, labels in labelled_batches(run, split):
        if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
            raise UserError(f"explain works on models fed one tensor (images, features or token ids); '{run.path}' feeds its model {len(inputs)} inputs")
        x = inputs[0]
        like = x[:0]
        with torch.no_grad():
            pred = model(x).argmax(1)
        for i in range(len(x)):
            item = (seen + i, x[i], int(labels[i]), int(pred[i]))
            if pred[i] == labels[i] and len(right) < want_right:
                right.append(item)
            elif pred[i] != labels[i] and len(wrong) < want_wrong:
                wrong.append(item)
        seen += len(x)
        if len(right) >= want_right and len(wrong) >= want_wrong:
            break
    chosen = right + wrong
    x = torch.stack([c[1] for c in chosen]) if chosen else like
    names = run.class_names
    label = (lambda c: str(names[c])) if names and len(names) > 0 else str
    rows = [{"index": c[0], "label": label(c[2]), "predicted": label(c[3]), "correct": c[2] == c[3]} for c in chosen]
    return {"x": x, "index": [c[0] for c in chosen], "rows": rows, "correct": len(right), "wrong": len(wrong), "labels": [label(c[2]) for c in chosen]}


def _file_inputs(run: Run, paths: list[str]) -> dict[str, Any]:
    """Image files or .npy arrays -> model inputs, as `deepstrata.load(run).predict_files` makes them."""
    import torch

    from deepstrata.predictor import IMAGE_SUFFIXES

    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"explain: input file '{missing[0]}' does not exist" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if not paths:
        return {"x": None, "names": []}
    predictor = run.predictor()
    xs, names = [], []
    for i, path in enumerate(map(Path, paths)):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raw, _ = predictor.read_image(path)
            batch = predictor.preprocess(raw)
        else:
            prepared, _ = predictor.prepare(predictor.read_input(path))
            batch = predictor.preprocess(prepared)
        stem = _safe(path.stem)
        xs.append(batch.float())
        names += [f"{i:02d}-{stem}" if len(batch) == 1 else f"{i:02d}-{stem}-{r}" for r in range(len(batch))]
    return {"x": torch.cat(xs), "names": names}


def _text_inputs(run: Run, texts: list[str], like: torch.Tensor) -> dict[str, Any]:
    """Texts (or files holding them) -> token ids padded like the split's, by the run's own tokenizer."""
    import torch

    from deepstrata.data.tokenizers import load_tokenizer
    from deepstrata.errors import DataError

    if not texts:
        return {"x": like[:0], "names": []}
    try:
        tokenizer = load_tokenizer(run.path)
    except DataError as err:
        raise UserError(f"explain: text inputs need the run's tokenizer ({err})") from None
    length = int(like.shape[1]) if like.dim() == 2 else max(8, max(len(t) for t in texts))
    contents = [Path(t).read_text(encoding="utf-8") if Path(t).is_file() else t for t in texts]
    if hasattr(tokenizer, "encode_padded"):
        ids = tokenizer.encode_padded(contents, length)
    else:
        rows = [(tokenizer.encode(c) + [tokenizer.pad_id] * length)[:length] for c in contents]
        ids = torch.tensor(rows, dtype=torch.long)
    names = [f"{i:02d}-{_safe(Path(t).stem if Path(t).is_file() else t[:24])}" for i, t in enumerate(texts)]
    return {"x": ids.to(like.dtype), "names": names, "tokenizer": tokenizer}


def _safe(text: str) -> str:
    """A file-name piece: letters, digits, '-', '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:40] or "input"


# --------------------------------------------------------------------------------------
# What is written.
# --------------------------------------------------------------------------------------


def _write_outputs(
    run: Run, folder: Path, user: dict[str, Any], grid: dict[str, Any], maps: dict[str, Any], predicted: Any, *, n_user: int, text: bool
) -> tuple[dict[str, Path], dict[str, Any]]:
    from deepstrata.explain import overlay

    files: dict[str, Path] = {}
    figures: dict[str, Any] = {}
    names = run.class_names
    label = (lambda c: str(names[c])) if names else str
    x_user = user["x"]
    user_maps = {m: a[:n_user] for m, a in maps.items()} if x_user is not None and n_user else {}
    grid_maps = {m: a[len(maps[m]) - len(grid["x"]) :] for m, a in maps.items()}
    grid_pred = predicted[len(predicted) - len(grid["x"]) :]
    if text:
        tokenizer = user.get("tokenizer") or _tokenizer(run)
        for i, stem in enumerate(user["names"]):
            fragments = [_token_fragment(overlay, tokenizer, x_user[i], user_maps[m][i], f"{m}: predicted {label(int(predicted[i]))}") for m in user_maps]
            path = folder / "text" / f"{stem}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(overlay.html_page(fragments, title=stem), encoding="utf-8")
            files[f"text/{stem}.html"] = path
        if len(grid["x"]):
            fragments = []
            for i, row in enumerate(grid["rows"]):
                head = f"{row['index']}: {row['label']} predicted {row['predicted']} ({'right' if row['correct'] else 'wrong'})"
                fragments += [_token_fragment(overlay, tokenizer, grid["x"][i], grid_maps[m][i], f"{head}; {m}") for m in grid_maps]
            path = folder / "grid.html"
            path.write_text(overlay.html_page(fragments, title=f"{run.name}: explained examples"), encoding="utf-8")
            files["grid.html"] = path
        return files, figures
    for i, stem in enumerate(user["names"] if user_maps else []):
        for m, a in user_maps.items():
            figure = overlay.overlay_figure(x_user[i], a[i], f"{m}: predicted {label(int(predicted[i]))}")
            path = folder / "overlays" / f"{stem}-{_safe(m)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(overlay.png_bytes(figure))
            files[f"overlays/{path.name}"] = path
    if len(grid["x"]):
        row_labels = [f"#{r['index']} {r['label']}->{label(int(p))}{'' if r['correct'] else ' (wrong)'}" for r, p in zip(grid["rows"], grid_pred)]
        title = f"{run.name}: {grid['correct']} right, {grid['wrong']} wrong test examples"
        figures["grid"] = overlay.grid_figure(grid["x"], grid_maps, row_labels, title=title)
    return files, figures


def _tokenizer(run: Run) -> Any:
    from deepstrata.data.tokenizers import load_tokenizer
    from deepstrata.errors import DataError

    try:
        return load_tokenizer(run.path)
    except DataError as err:
        raise UserError(f"explain: showing tokens needs the run's tokenizer ({err})") from None


def _token_fragment(overlay: Any, tokenizer: Any, ids: Any, scores: Any, title: str) -> str:
    """One text's tokens (padding left out) with their scores, as highlighted HTML."""
    keep = [j for j, t in enumerate(ids.tolist()) if t != tokenizer.pad_id]
    tokens = [tokenizer.decode([int(ids[j])]) or f"[{int(ids[j])}]" for j in keep]
    values = scores.reshape(len(ids), -1).sum(1)[keep] if scores.dim() > 1 else scores[keep]
    # Tokens that the tokenizer writes side by side (characters) are shown side by side.
    joined = tokenizer.decode([int(ids[j]) for j in keep]) == "".join(tokens)
    return overlay.token_html(tokens, values.cpu().numpy(), title=title, separator="" if joined else " ")
