"""Forecasting: a window of past values -> the next `horizon` values, judged against baselines.

Problem: a forecaster's error means nothing alone: on a smooth seasonal series even "tomorrow
equals today" scores a small MAE, and a deep model that loses to a linear fit is not worth
its cost. Idea: report, on the same windows, the MAE of three baselines next to the model's:
persistence (every future value equals the last one seen), seasonal naive (each future value
equals the value one season earlier) and a linear autoregressive model (least squares from
the window, relative to its last value, to the future changes; fitted on the training
windows only), plus the model's skill against the first two: 1 - MAE_model / MAE_baseline.

Batches are (x (N, L, C), y (N, horizon)); channel 0 of x is the forecast series.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from deepstrata.registry import register_task
from deepstrata.tasks.base import Quality, StepOutput, Task

BASELINES = ("persistence", "seasonal_naive", "linear_ar")
RIDGE = 1e-6  # keeps the least-squares system well posed; relative to the features' scale


class ForecastingTask(Task):
    kind = "forecasting"
    default_loss = "mse"
    default_metrics = ("mae", "rmse")
    quality = Quality("mae", higher_is_better=False, baselines=("persistence_mae", "seasonal_naive_mae"))

    def __init__(self, model: nn.Module, loss: nn.Module, metrics: dict[str, Any], *, data: Any = None):
        super().__init__(model, loss, metrics)
        spec = getattr(data, "input_spec", {}) or {}
        self.period: int | None = spec.get("period")
        self.units: str = spec.get("units", "")
        self.ar_weights: torch.Tensor | None = None  # (L, horizon) + bias row, from the training windows
        if data is not None and getattr(data, "train", None) is not None:
            self.ar_weights = fit_linear_ar(data.train)
        self._abs_err: dict[str, dict[str, float]] = {}
        self._count: dict[str, int] = {}
        self._test_rows: list[dict[str, torch.Tensor]] = []

    # ---------------------------------------------------------------- steps
    def shared_step(self, batch: Any) -> StepOutput:
        x, y = batch
        pred = self.model(x).reshape(y.shape)  # (N, horizon)
        return StepOutput(loss=self.loss_fn(pred, y), batch_size=x.shape[0], preds=pred, target=y)

    @torch.no_grad()
    def evaluation_step(self, batch: Any, split: str) -> StepOutput:
        out = super().evaluation_step(batch, split)
        x, y = batch
        forecasts = self.baselines(x, y.shape[1])
        errs = self._abs_err.setdefault(split, {})
        for name, f in forecasts.items():
            errs[name] = errs.get(name, 0.0) + float((f - y).abs().sum())
        self._count[split] = self._count.get(split, 0) + y.numel()
        if split == "test":
            self._test_rows.append({"x": x[:, :, 0].cpu(), "y": y.cpu(), "model": out.preds.cpu(), **{k: v.cpu() for k, v in forecasts.items()}})
        return out

    def compute_metrics(self, split: str) -> dict[str, float]:
        result = super().compute_metrics(split)
        count = self._count.pop(split, 0)
        errs = self._abs_err.pop(split, {})
        for name, total in errs.items():
            result[f"{split}/{name}_mae"] = total / count
        model_mae = result.get(f"{split}/mae")
        for name in ("persistence", "seasonal_naive"):
            base = result.get(f"{split}/{name}_mae")
            if model_mae is not None and base:
                result[f"{split}/skill_vs_{name}"] = 1.0 - model_mae / base
        return result

    # ---------------------------------------------------------------- baselines
    def baselines(self, x: torch.Tensor, horizon: int) -> dict[str, torch.Tensor]:
        """Baseline forecasts (N, horizon) of channel 0 from windows x (N, L, C)."""
        series = x[:, :, 0]  # (N, L)
        n, length = series.shape
        out = {"persistence": series[:, -1:].expand(n, horizon)}
        if self.period and length >= self.period:
            steps = torch.arange(horizon, device=x.device) % self.period  # h-1 mod P
            out["seasonal_naive"] = series[:, length - self.period + steps]  # value one season before each target
        if self.ar_weights is not None and self.ar_weights.shape[0] == length:
            out["linear_ar"] = linear_ar_forecast(series, self.ar_weights.to(x.device))
        return out

    def artifacts(self) -> dict[str, str]:
        """forecasts.json: per-horizon MAE of the model and the baselines, and a few test windows."""
        if not self._test_rows:
            return {}
        rows = {k: torch.cat([r[k] for r in self._test_rows]) for k in self._test_rows[0]}
        names = ["model", *[b for b in BASELINES if b in rows]]
        per_step = {name: (rows[name] - rows["y"]).abs().mean(dim=0).tolist() for name in names}
        picks = torch.linspace(0, len(rows["y"]) - 1, 4).round().long().tolist()
        examples = [
            {"history": rows["x"][i].tolist(), "actual": rows["y"][i].tolist(), **{name: rows[name][i].tolist() for name in names}, "index": i}
            for i in picks
        ]
        payload = {"units": self.units, "mae_by_step": per_step, "examples": examples}
        return {"forecasts.json": json.dumps(payload)}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, Any]:
        return {"value": self.model(x)}


def _relative(series: torch.Tensor) -> torch.Tensor:
    """(N, L) window -> its values minus the last one, without the last (always 0), plus a constant 1."""
    rel = series[:, :-1] - series[:, -1:]
    return torch.cat([rel, torch.ones_like(rel[:, :1])], dim=1)  # (N, L)


@torch.no_grad()
def fit_linear_ar(train: Any) -> torch.Tensor | None:
    """Least squares from the relative window to the future changes, on the training windows: (L, horizon)."""
    if len(train) < 2:
        return None
    xs, ys = zip(*(train[i] for i in range(len(train))))
    series = torch.stack(xs)[:, :, 0].double()  # (N, L)
    y = torch.stack(ys).double()  # (N, horizon)
    a = _relative(series)
    target = y - series[:, -1:]
    gram = a.T @ a
    gram += RIDGE * torch.eye(gram.shape[0], dtype=gram.dtype) * gram.diagonal().mean()
    return torch.linalg.solve(gram, a.T @ target).float()


def linear_ar_forecast(series: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, L) windows, (L, horizon) weights -> (N, horizon) forecasts."""
    return series[:, -1:] + _relative(series) @ weights


@register_task("forecasting")
def forecasting(*, model: Any, loss: Any, metrics: dict[str, Any], data: Any = None) -> ForecastingTask:
    """Windows -> future values; MSE, MAE and RMSE next to persistence, seasonal-naive and linear AR baselines."""
    return ForecastingTask(model, loss, metrics, data=data)
