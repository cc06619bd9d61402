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
    # recipes/mnist_overfit.yaml as shipped (1,000 training images, 100 epochs, no regularisation),
    # audited against its 1,000 held-out images (docs/privacy.md has the measured figures).
    run_dir = api.train(str(OVERFIT_RECIPE), [f"output_dir={tmp_path / 'runs'}", "trainer.progress=off"]).run_dir
    result = apply_tool("privacy_audit", run_dir, nonmembers="val")
    m = result.metrics
    assert m["audit/members"] == 1000  # every training image, against every held-out one
    assert m["audit/train_loss_mean"] < 0.01 < m["audit/val_loss_mean"]
    assert m["audit/loss_threshold/auc"] > 0.53  # the full run measured 0.5611; one standard error is about 0.013

    # The same AUC from losses computed here.
    run = Run.open(run_dir)
    model = run.model().eval()
    train, test = run.split("train"), run.split("val")
    assert len(train) == len(test) == 1000

    def losses(ds, idx):
        x = torch.stack([ds[i][0] for i in idx])
        y = torch.tensor([int(ds[i][1]) for i in idx])
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    member, outsider = losses(train, range(1000)), losses(test, range(1000))
    y = np.r_[np.ones(1000), np.zeros(1000)]
    assert m["audit/loss_threshold/auc"] == pytest.approx(roc_auc_score(y, -np.r_[member.numpy(), outsider.numpy()]), abs=1e-6)
    saved = json.loads((result.result_dir / "result.json").read_text())
    assert saved["figures"] == ["roc.png"]

    from deepstrata.report import build_report

    report = Path(build_report(run_dir)).read_text()
    assert "membership-inference audit" in report and "Trained without differential privacy" in report


def test_logit_confidence_is_the_log_odds_of_the_true_class() -> None:
    from deepstrata.tools.privacy_audit import logit_confidence

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [30.0, -30.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2, 0])
    p = torch.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    phi = logit_confidence(logits, y)
    torch.testing.assert_close(phi[:2], torch.log(p / (1 - p))[:2])
    assert phi[2] == pytest.approx(30.0 - 1.0, abs=1e-9)  # p_y -> 1: stable where 1 - p_y rounds to 0


def test_lira_scores_each_example_against_its_own_out_distribution() -> None:
    from deepstrata.tools.privacy_audit import lira_offline

    shadow_in = torch.tensor([[0.0, 5.0], [2.0, 7.0]])  # K=2 shadows, 2 members
    shadow_out = torch.tensor([[1.0], [3.0]])  # 1 non-member
    z_in, z_out = lira_offline(torch.tensor([3.0, 6.0]), torch.tensor([2.0]), shadow_in, shadow_out)
    sigma = torch.tensor([2.0, 2.0, 2.0]).mean().sqrt()  # every example's unbiased variance over the 2 shadows is 2
    torch.testing.assert_close(z_in, torch.tensor([(3.0 - 1.0), (6.0 - 6.0)]) / sigma)
    torch.testing.assert_close(z_out, torch.tensor([(2.0 - 2.0)]) / sigma)


@pytest.mark.e2e
def test_lira_trains_shadows_on_rows_disjoint_from_the_audited_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepstrata.tools.privacy_audit as audit

    overrides = [f"output_dir={tmp_path / 'runs'}", "trainer.progress=off", "model.dropout=0.0", "optimizer.weight_decay=0.0",
                 "callbacks=[]", "trainer.max_epochs=20", "trainer.test_weights=last"]
    run_dir = api.train(str(REPO / "recipes" / "engine_mlp_digits.yaml"), overrides).run_dir
    run = Run.open(run_dir)
    train, test = run.split("train"), run.split("test")
    generator = torch.Generator().manual_seed(0)  # the tool's draw of audited rows, repeated
    used = {"train": set(audit._draw(len(train), len(test), generator)), "test": set(audit._draw(len(test), len(test), generator))}
    pool_x, _ = audit._pool(run, used)
    assert len(pool_x) == len(train) + len(run.split("val")) + len(test) - 2 * len(test)  # every row but the 720 audited
    pool = {tuple(r.tolist()) for r in pool_x.flatten(1)}
    seen = []
    real = audit.train_shadow

    def spy(run_, x, y, *, seed):
        seen.append((x, seed))
        return real(run_, x, y, seed=seed)

    monkeypatch.setattr(audit, "train_shadow", spy)
    result = apply_tool("privacy_audit", run_dir, attacks=["loss_threshold", "lira"], shadows=2)
    assert [s for _, s in seen] == [1000, 1001]  # the recipe's seed 0 + 1000 + k
    for x, _ in seen:  # as many rows as the target trained on, capped by the pool, all from the pool
        assert len(x) == min(len(train), len(pool_x)) and {tuple(r.tolist()) for r in x.flatten(1)} <= pool
    m = result.metrics
    assert 0.0 <= m["audit/lira/auc"] <= 1.0 and m["audit/lira/tpr_at_fpr_0.01"] <= 1.0
    assert "2 shadow models" in result.summary
