"""The normalisation lab: BatchNorm depends on the batch, LayerNorm and GroupNorm do not."""

from __future__ import annotations

import pytest
import torch

from deepstrata.labs.digits_data import digits_lab_data
from deepstrata.labs.normalization import batch_statistics_accuracy, fit_small_cnn, train_cell


@pytest.fixture(scope="module")
def trained():
    """The same CNN with each normalisation, trained at batch size 32 (150 Adam steps)."""
    return {norm: fit_small_cnn(norm=norm, batch_size=32, steps=150)[0] for norm in ("batch", "layer", "group")}


def test_batchnorm_degrades_at_batch_size_2_while_layernorm_and_groupnorm_do_not(trained):
    d = digits_lab_data(0)
    acc = {n: {b: batch_statistics_accuracy(m, d.x_test, d.y_test, batch_size=b) for b in (2, 128)} for n, m in trained.items()}
    bn_drop = acc["batch"][128] - acc["batch"][2]
    assert acc["batch"][128] > 0.9
    assert bn_drop > 0.05, acc["batch"]  # two examples' statistics are a poor estimate of the population's
    for n in ("layer", "group"):
        drop = acc[n][128] - acc[n][2]
        assert drop < bn_drop / 5, (n, acc[n], acc["batch"])  # per-example statistics: no batch dependence


def test_batchnorm_prediction_depends_on_the_batch_partner_and_layernorm_does_not(trained):
    d = digits_lab_data(0)
    x = d.x_test[:3]
    for norm, expect_change in (("batch", True), ("layer", False), ("group", False)):
        m = trained[norm].train()
        with torch.no_grad():
            a = m(torch.stack([x[0], x[1]]))[0]
            b = m(torch.stack([x[0], x[2]]))[0]
        m.eval()
        assert (not torch.allclose(a, b, atol=1e-5)) == expect_change, norm


def test_sweep_cell_records_accuracy_and_stability():
    cell = train_cell(norm="layer", batch_size=8, steps=30)
    assert len(cell.losses) == 30 and cell.loss_roughness > 0 and 0 <= cell.test_accuracy <= 1
    assert cell.batch_stat_accuracy == pytest.approx(cell.test_accuracy, abs=0.02)  # same numbers, batches drop a remainder
    with pytest.raises(ValueError, match="unknown norm"):
        train_cell(norm="instance", batch_size=8, steps=1)
