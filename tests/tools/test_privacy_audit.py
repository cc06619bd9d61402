"""`strata privacy-audit`: the loss-threshold attack's figures are scikit-learn's ROC of minus the
per-example losses, and the attack finds the leak of a model overfit on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from deepstrata import api
from deepstrata.run.run import Run
from deepstrata.tools.base import apply_tool
from deepstrata.tools.privacy_audit import attack_scores

REPO = Path(__file__).resolve().parents[2]
OVERFIT_RECIPE = REPO / "recipes" / "mnist_overfit.yaml"


def test_attack_scores_read_the_roc_at_the_low_false_positive_rates() -> None:
    members = torch.tensor([5.0, 4.0, 3.0, 0.5, 0.2])
    outsiders = torch.tensor([2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0])
    row = attack_scores(members, outsiders)
    y = np.r_[np.ones(5), np.zeros(10)]
    s = np.r_[members.numpy(), outsiders.numpy()]
    assert row["auc"] == pytest.approx(roc_auc_score(y, s))
    # No outsider above 2.0: the three members above it are found at FPR 0; the fourth costs 2 of 10 outsiders.
    assert row["tpr_at_fpr_0.001"] == row["tpr_at_fpr_0.01"] == pytest.approx(3 / 5)
    fpr, tpr, _ = roc_curve(y, s)
    assert row["advantage"] == pytest.approx(float((tpr - fpr).max()))


@pytest.mark.e2e
@pytest.mark.slow
def test_the_audit_finds_the_leak_of_an_overfit_model_and_its_auc_is_that_of_the_losses(tmp_path: Path) -> None:
    # recipes/mnist_overfit.yaml as shipped (900 training images, 100 epochs, no regularisation):
    # its full run measured AUC 0.5945 on 900 members against 900 test images (docs/privacy.md).
    run_dir = api.train(str(OVERFIT_RECIPE), [f"output_dir={tmp_path / 'runs'}", "trainer.progress=off"]).run_dir
    result = apply_tool("privacy_audit", run_dir)
    m = result.metrics
    assert m["audit/members"] == 900  # every training image, against as many test images
    assert m["audit/train_loss_mean"] < 0.01 < m["audit/test_loss_mean"]
    assert m["audit/loss_threshold/auc"] > 0.56  # about 3 standard errors below the measured 0.5945

    # The same AUC from losses computed here, on the same draw of non-members.
    run = Run.open(run_dir)
    model = run.model().eval()
    train, test = run.split("train"), run.split("test")
    generator = torch.Generator().manual_seed(0)
    assert len(train) == 900
    rows = torch.randperm(len(test), generator=generator)[:900].sort().values.tolist()

    def losses(ds, idx):
        x = torch.stack([ds[i][0] for i in idx])
        y = torch.tensor([int(ds[i][1]) for i in idx])
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    member, outsider = losses(train, range(900)), losses(test, rows)
    y = np.r_[np.ones(900), np.zeros(900)]
    assert m["audit/loss_threshold/auc"] == pytest.approx(roc_auc_score(y, -np.r_[member.numpy(), outsider.numpy()]), abs=1e-6)
    saved = json.loads((result.result_dir / "result.json").read_text())
    assert saved["figures"] == ["roc.png"]

    from deepstrata.report import build_report

    report = Path(build_report(run_dir)).read_text()
    assert "membership-inference audit" in report and "Trained without differential privacy" in report
