"""`POST /v2/models/NAME/explain`: the served model's Grad-CAM map of an uploaded image, equal to the explainer's own."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from deepstrata import api
from deepstrata.explain.base import make_explainer
from deepstrata.run.run import Run
from deepstrata.serving.server import open_models, serve_in_thread
from tests.serving.test_server import RECIPE, _digit_png

pytestmark = [pytest.mark.xdist_group("serving"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("explain_serve") / "runs"
    cnn = api.train({**RECIPE, "output_dir": str(out)}).run_dir
    mlp = api.train({**RECIPE, "name": "serve_mlp", "model": {"name": "mlp", "in_features": 64, "hidden": [16]}, "output_dir": str(out)}).run_dir
    return {"cnn": cnn, "mlp": mlp}


def test_the_map_is_grad_cam_of_the_input_the_predictor_makes(runs: dict[str, Path], tmp_path: Path) -> None:
    png = _digit_png(tmp_path / "digit.png", index=5)
    predictor = Run.open(runs["cnn"]).predictor()
    raw, _ = predictor.image_bytes_input(png.read_bytes())
    x = predictor.preprocess(raw)
    with torch.no_grad():
        label = int(predictor.model(x).argmax(1))
    cam = make_explainer("grad_cam").attribute(predictor.model, x, torch.tensor([label]))[0, 0].double().numpy()
    expected = (cam - cam.min()) / (cam.max() - cam.min())
    with serve_in_thread(open_models([runs["cnn"]])) as url:
        reply = httpx.post(f"{url}/v2/models/serve_cnn/explain", content=png.read_bytes(), headers={"Content-Type": "image/png"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["method"] == "grad_cam" and (body["height"], body["width"]) == tuple(x.shape[-2:])
        assert body["prediction"]["label"] == label == predictor.predict_image_bytes(png.read_bytes())[0]["label"]
        got = np.array(body["map"]).reshape(body["height"], body["width"])
        assert np.abs(got - expected).max() < 1e-3  # rounded to 4 decimals on the wire
        assert 0.0 <= min(body["input"]) and max(body["input"]) == 1.0
        # a pixel method's map: |attribution| summed over the channels
        sal = httpx.post(f"{url}/v2/models/serve_cnn/explain?method=saliency", content=png.read_bytes(), headers={"Content-Type": "image/png"})
        assert sal.status_code == 200 and len(sal.json()["map"]) == body["height"] * body["width"]
        alias = httpx.post(f"{url}/v2/models/serve_cnn/explain?method=gradcam", content=png.read_bytes(), headers={"Content-Type": "image/png"})
        assert alias.json()["method"] == "grad_cam" and alias.json()["map"] == body["map"]


def test_explain_says_what_is_wrong(runs: dict[str, Path], tmp_path: Path) -> None:
    png = _digit_png(tmp_path / "digit.png").read_bytes()
    with serve_in_thread(open_models([runs["cnn"], runs["mlp"]])) as url:
        unknown = httpx.post(f"{url}/v2/models/serve_cnn/explain?method=gradcamm", content=png, headers={"Content-Type": "image/png"})
        assert unknown.status_code == 400 and "unknown method 'gradcamm'" in unknown.json()["error"] and "grad_cam" in unknown.json()["error"]
        not_image = httpx.post(f"{url}/v2/models/serve_cnn/explain", json={"inputs": [1, 2]})
        assert not_image.status_code == 400 and "send an image" in not_image.json()["error"]
        mlp = httpx.post(f"{url}/v2/models/serve_mlp/explain", content=png, headers={"Content-Type": "image/png"})
        assert mlp.status_code == 400 and "grad_cam cannot explain this model" in mlp.json()["error"]
        assert httpx.post(f"{url}/v2/models/nope/explain", content=png, headers={"Content-Type": "image/png"}).status_code == 404
