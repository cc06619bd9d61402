"""Time series for forecasting: statsmodels' sunspots (yearly) and Mauna Loa CO2 (weekly).

Problem: a forecast is only honest if it is tested on a later stretch of the series than it
was trained on, and if nothing about that stretch (not even its mean, used for scaling)
leaks into training. Idea: hold out the last `holdout` share of the series; cut sliding
windows of `input_len` past values and the next `horizon` values; training windows lie
wholly before the held-out part, test windows have all their targets inside it (their
inputs may reach back into the training part, as a forecaster's would). Every statistic the
model uses (level mean and std, the std of the change over the horizon) is fitted on the
training part only and handed to the model as defaults (see `models/rnn.py`, `Forecaster`).

Values stay in the series' own units (ppm of CO2, sunspot number), so MAE reads in them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepstrata.data.base import TensorData
from deepstrata.errors import DataError
from deepstrata.registry import register_dataset


def sliding_windows(values: np.ndarray, *, input_len: int, horizon: int, starts: range) -> tuple[np.ndarray, np.ndarray]:
    """values (T,) -> inputs (N, input_len) and targets (N, horizon) for each target start t in `starts`.

    The input of a window starting its targets at t is values[t - input_len : t]; its targets
    are values[t : t + horizon].
    """
    t = np.asarray(starts)
    x = np.stack([values[s - input_len : s] for s in t]) if len(t) else np.zeros((0, input_len))
    y = np.stack([values[s : s + horizon] for s in t]) if len(t) else np.zeros((0, horizon))
    return x, y


@dataclass
class SeriesScaler:
    """Standardisation fitted on a training part only (scikit-learn's fit/transform contract)."""

    def fit(self, values: np.ndarray) -> SeriesScaler:
        values = np.asarray(values, dtype=np.float64)
        if values.size < 2:
            raise DataError(f"SeriesScaler.fit needs at least 2 values, got {values.size}")
        self.mean_ = float(values.mean())
        self.std_ = float(values.std()) or 1.0
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values) - self.mean_) / self.std_

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values) * self.std_ + self.mean_


def forecasting_data(
    name: str,
    values: np.ndarray,
    times: list[str],
    *,
    input_len: int,
    horizon: int,
    holdout: float,
    period: int,
    units: str,
    stride: int = 1,
) -> TensorData:
    """Windows of a univariate series with a chronological hold-out; statistics from the training part."""
    n = len(values)
    if not 0 < holdout < 1:
        raise DataError(f"dataset '{name}': holdout must lie in (0, 1), got {holdout}")
    if input_len < 1 or horizon < 1 or stride < 1:
        raise DataError(f"dataset '{name}': input_len, horizon and stride must be at least 1, got {input_len}, {horizon}, {stride}")
    split = int(round(n * (1 - holdout)))  # first index of the held-out part
    train_starts = range(input_len, split - horizon + 1, stride)
    test_starts = range(max(split, input_len), n - horizon + 1)
    if len(train_starts) < 2 or len(test_starts) < 1:
        raise DataError(
            f"dataset '{name}': {n} values with holdout={holdout} leave {len(train_starts)} training and {len(test_starts)} "
            f"test windows for input_len={input_len}, horizon={horizon}; shorten them"
        )
    x, y = sliding_windows(values, input_len=input_len, horizon=horizon, starts=train_starts)
    test_x, test_y = sliding_windows(values, input_len=input_len, horizon=horizon, starts=test_starts)
    levels = SeriesScaler().fit(values[:split])
    change_std = float((y - x[:, -1:]).std()) or 1.0  # how far the series moves over the horizon, in training

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)

    return TensorData(
        x=t(x)[:, :, None],  # (N, input_len, 1)
        y=t(y),  # (N, horizon)
        task="forecasting",
        test_x=t(test_x)[:, :, None],
        test_y=t(test_y),
        input_spec={
            "raw": f"the last {input_len} values of the series, in {units}",
            "units": units,
            "period": period,
            "input_len": input_len,
            "horizon": horizon,
            "holdout_from": times[split],
            "series_end": times[-1],
            "train_level_max": float(values[:split].max()),
            "test_level_max": float(values[split:].max()),
        },
        model_defaults={
            "input_size": 1,
            "horizon": horizon,
            "level_mean": levels.mean_,
            "level_std": levels.std_,
            "change_std": change_std,
        },
        description=f"{name}: {n} values {times[0]}..{times[-1]}, last {holdout:.0%} (from {times[split]}) held out",
    )


@register_dataset("co2")
def co2(*, input_len: int = 104, horizon: int = 52, holdout: float = 0.2, stride: int = 1) -> TensorData:
    """Mauna Loa weekly CO2 (ppm) 1958-2001 from statsmodels; last 20% held out; windows -> next weeks."""
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data
    # 59 of 2,284 weeks are missing in the record; fill them by linear interpolation in time.
    series = frame["co2"].interpolate(method="linear", limit_direction="both")
    times = [str(ts.date()) for ts in series.index]
    return forecasting_data(
        "co2", series.to_numpy(np.float64), times, input_len=input_len, horizon=horizon, holdout=holdout, period=52, units="ppm", stride=stride
    )


@register_dataset("sunspots")
def sunspots(*, input_len: int = 33, horizon: int = 11, holdout: float = 0.2, stride: int = 1) -> TensorData:
    """Yearly sunspot numbers 1700-2008 from statsmodels; last 20% held out; ~11-year cycle."""
    import statsmodels.api as sm

    frame = sm.datasets.sunspots.load_pandas().data
    times = [str(int(y)) for y in frame["YEAR"]]
    return forecasting_data(
        "sunspots", frame["SUNACTIVITY"].to_numpy(np.float64), times, input_len=input_len, horizon=horizon, holdout=holdout, period=11, units="sunspots", stride=stride
    )
