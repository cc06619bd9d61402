"""Time-series windows: chronological hold-out, statistics from the training part only, both datasets load offline."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.data.timeseries import SeriesScaler, co2, forecasting_data, sliding_windows, sunspots
from deepstrata.errors import DataError


def test_sliding_windows_take_the_past_and_the_next_values() -> None:
    values = np.arange(10.0)
    x, y = sliding_windows(values, input_len=3, horizon=2, starts=range(3, 9))
    assert x.shape == (6, 3) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(y[-1], [8, 9])


def test_holdout_is_chronological_and_statistics_ignore_it() -> None:
    values = np.concatenate([np.zeros(80), np.full(20, 1000.0)])  # the held-out part is wildly different
    times = [str(i) for i in range(100)]
    data = forecasting_data("toy", values, times, input_len=5, horizon=3, holdout=0.2, period=4, units="u")
    assert data.y.max() == 0.0  # no training target reaches into the held-out part
    assert data.test_y.min() == 1000.0  # every test target lies in it
    assert data.test_x[0, -1, 0] == 0.0  # test inputs may reach back into the training part
    assert data.model_defaults["level_mean"] == 0.0 and data.model_defaults["change_std"] == 1.0  # fitted on training only
    assert data.input_spec["holdout_from"] == "80"


def test_scaler_fits_only_what_it_is_given() -> None:
    scaler = SeriesScaler().fit(np.array([1.0, 3.0]))
    assert (scaler.mean_, scaler.std_) == (2.0, 1.0)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(np.array([5.0, -1.0]))), [5.0, -1.0])


def test_co2_and_sunspots_load_offline() -> None:
    c = co2()
    assert c.x.shape[1:] == (104, 1) and c.y.shape[1] == 52 and not c.x.isnan().any()
    assert c.input_spec["test_level_max"] > c.input_spec["train_level_max"]  # the trend leaves the training range
    s = sunspots(input_len=22, horizon=3)
    assert s.x.shape[1:] == (22, 1) and s.test_y.shape[1] == 3


def test_impossible_windows_are_refused() -> None:
    with pytest.raises(DataError, match="shorten them"):
        forecasting_data("toy", np.arange(20.0), [str(i) for i in range(20)], input_len=15, horizon=5, holdout=0.2, period=4, units="u")
    with pytest.raises(DataError, match="holdout"):
        co2(holdout=1.5)
