"""Last-layer Laplace approximation: a Gaussian posterior over a trained classifier's last linear layer.

Problem: a trained network is one point estimate of its weights, so its softmax has no notion
of how well the data pin those weights down; far from the training data it stays confident.
Idea: keep the network, and treat only its last linear layer Bayesianly: a second-order Taylor
expansion of the log posterior around the trained weights gives a Gaussian whose precision is
the loss's curvature plus the prior's; pushing that Gaussian through the linear layer gives
each input a distribution over logits, wide where the features are unlike the training
features, and averaging the softmax over it softens overconfident predictions (MacKay 1992;
Daxberger et al. 2021, "Laplace Redux -- Effortless Bayesian Deep Learning"; Kristiadi, Hein &
Hennig 2020 for why the last layer suffices).

The maths (what `fit` and `predict_proba` compute)
--------------------------------------------------
Features phi_n (D,) = `model.forward_head(model.forward_features(x_n), pre_logits=True)` of the
N training inputs; with a bias, phi~_n = [phi_n, 1] (E = D + 1 entries), else phi~_n = phi_n.
The layer's weights W~ = [W, b] (K, E) are flattened row by row into theta (P = K E,);
logits f_n = W~ phi~_n = (I_K kron phi~_n^T) theta = J_n theta.

Likelihood curvature. For softmax cross-entropy, the Hessian of -log p(y_n | theta) is
    J_n^T Lambda_n J_n = Lambda_n kron (phi~_n phi~_n^T),   Lambda_n = diag(p_n) - p_n p_n^T,
with p_n = softmax(f_n). The logits are linear in theta, so this generalised Gauss-Newton matrix
(equal here to the Fisher) *is* the exact Hessian, and H = sum_n Lambda_n kron phi~_n phi~_n^T
(P x P, computed in full: the head is small; sizes above `max_parameters` are refused).

Prior and posterior. Prior theta ~ N(0, tau^-1 I); posterior N(theta*, Sigma) with
Sigma = (H + tau I)^-1 and theta* the trained weights (the MAP estimate the Laplace
approximation expands around).

Prior precision tau (when not given): maximise the Laplace approximation of the log marginal
likelihood (MacKay's evidence),
    log Z(tau) = -sum_n log p(y_n | theta*) - tau/2 |theta*|^2 + P/2 log tau - 1/2 log det(H + tau I).
With the eigenvalues lambda_j of H, d log Z / d tau = 1/2 [sum_j lambda_j / (tau (lambda_j + tau)) - |theta*|^2];
the sum falls strictly with tau, so log Z has a single maximum, found by bisection on log tau
(to 1e-10 relative), deterministic and free of step sizes. It is the data-only choice of
Laplace Redux's post-hoc "marglik" option; no validation set is needed.

Predictive. For an input with features phi~, the logits are Gaussian, f ~ N(mu, S) with
mu = W~ phi~ and S_kl = phi~^T Sigma[k, :, l, :] phi~ (Sigma viewed as (K, E, K, E)).
`predictive="probit"` (default) uses the extended probit approximation
    p(y = k | x) ~ softmax_k( mu_k / sqrt(1 + pi/8 S_kk) )
(MacKay 1992; Gibbs 1997; as in Laplace Redux), closed form and deterministic, applied to the
centred logits C f (C = I - 11^T / K), which have the same softmax (see `probit_predictive`).
`predictive="mc"` averages softmax over `mc_samples` draws f = mu + L z, L L^T = S, z ~ N(0, I),
from a generator seeded with `seed`.
"""

from __future__ import annotations

import math
from typing import Literal, Self

import torch

from deepstrata.errors import UserError
from deepstrata.learned.base import Example, Learned, check_same_length, check_tensor
from deepstrata.registry import register_learned

_BATCH = 512  # rows per block when accumulating H or computing predictive covariances


@register_learned("last_layer_laplace")
class LastLayerLaplace(Learned):
    """Laplace posterior over a classifier's last linear layer (full GGN; tau by marginal likelihood; probit predictive).

    Args:
        prior_precision: tau of the prior N(0, tau^-1 I); None chooses it by maximising the
            Laplace marginal likelihood on the fitting data (see the module docstring).
        predictive: "probit" (extended probit approximation) or "mc" (Monte Carlo over logits).
        mc_samples: logit draws per input for predictive="mc".
        seed: seed of the draws for predictive="mc".
        max_parameters: largest P = K (D + 1) for which the full P x P Hessian is formed.

    Fitted attributes:
        weight_: theta* as (K, E) float64 ([W, b] with a bias column when fitted with one).
        covariance_: the posterior covariance Sigma = (H + tau I)^-1, (P, P) float64.
        prior_precision_: tau used (float). log_marginal_likelihood_: log Z(tau) (float).
        nll_: mean negative log-likelihood of the fitting data at theta* (float).
        has_bias_: whether phi~ carries the constant 1 (bool). num_classes_, num_features_: K, D (int).
    """

    fit_call = "fit(features, labels, weight, bias)"

    def __init__(
        self,
        *,
        prior_precision: float | None = None,
        predictive: Literal["probit", "mc"] = "probit",
        mc_samples: int = 1000,
        seed: int = 0,
        max_parameters: int = 6000,
    ) -> None:
        self.prior_precision = prior_precision
        self.predictive = predictive
        self.mc_samples = mc_samples
        self.seed = seed
        self.max_parameters = max_parameters

    # ------------------------------------------------------------------ fitting

    def fit(self, features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Self:
        """Fit on training `features` (N, D), `labels` (N,) and the trained layer's `weight` (K, D), `bias` (K,) or None."""
        name = type(self).__name__
        where = f"{name}.fit"
        self._check_params()
        x = check_tensor(features, where=where, name="features", shape="(N, D)", ndim=2, dtype="float")
        y = check_tensor(labels, where=where, name="labels", shape="(N,)", ndim=1, dtype="int")
        check_same_length(where, ("features", "labels"), x, y)
        w = check_tensor(weight, where=where, name="weight", shape=f"(K, {x.shape[1]})", ndim=2, dtype="float")
        if w.shape[1] != x.shape[1]:
            raise UserError(f"{where} expected weight of shape (K, {x.shape[1]}) to match features (N, {x.shape[1]}), got shape {tuple(w.shape)}")
        k = w.shape[0]
        if k < 2:
            raise UserError(f"{where} expected weight of shape (K, D) with K >= 2 classes, got shape {tuple(w.shape)}")
        if bias is not None:
            b = check_tensor(bias, where=where, name="bias", shape=f"({k},)", ndim=1, dtype="float")
            if b.shape[0] != k:
                raise UserError(f"{where} expected bias of shape ({k},) for weight of shape {tuple(w.shape)}, got shape {tuple(b.shape)}")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= k:
            raise UserError(f"{where} expected labels in [0, K) = [0, {k}) for weight of shape {tuple(w.shape)}, got values from {low} to {high}")
        e = x.shape[1] + (bias is not None)
        p_count = k * e
        if p_count > self.max_parameters:
            raise UserError(
                f"{where}: the last layer has P = {k} x {e} = {p_count} parameters, above max_parameters={self.max_parameters} "
                f"(the full Hessian is P x P); raise max_parameters if {p_count}^2 float64 numbers fit in memory"
            )

        theta = w.detach().to("cpu", torch.float64)
        if bias is not None:
            theta = torch.cat([theta, bias.detach().to("cpu", torch.float64)[:, None]], dim=1)  # (K, E)
        phi = x.detach().to("cpu", torch.float64)
        y64 = y.detach().to("cpu", torch.long)

        hessian = torch.zeros(k, e, k, e, dtype=torch.float64)
        nll_sum = 0.0
        for start in range(0, len(phi), _BATCH):
            block = self._augment(phi[start : start + _BATCH], bias is not None)  # (n, E)
            logits = block @ theta.T  # (n, K)
            probs = logits.softmax(dim=1)
            nll_sum += float(torch.nn.functional.cross_entropy(logits, y64[start : start + _BATCH], reduction="sum"))
            # sum_n diag(p_n) kron phi~ phi~^T: one (E, E) block per class on the diagonal.
            diag = torch.einsum("nk,nd,ne->kde", probs, block, block)  # (K, E, E)
            hessian[torch.arange(k), :, torch.arange(k), :] += diag
            # - sum_n (p_n kron phi~_n)(p_n kron phi~_n)^T
            outer = (probs[:, :, None] * block[:, None, :]).reshape(len(block), k * e)  # (n, P)
            hessian -= (outer.T @ outer).view(k, e, k, e)
        h = hessian.reshape(p_count, p_count)
        h = (h + h.T) / 2  # exact symmetry for eigh
        eigenvalues, eigenvectors = torch.linalg.eigh(h)
        eigenvalues = eigenvalues.clamp_min(0.0)  # H is positive semi-definite; drop round-off below 0
        norm2 = float(theta.square().sum())

        tau = float(self.prior_precision) if self.prior_precision is not None else _evidence_maximiser(eigenvalues, norm2)
        self.weight_ = theta
        self.covariance_ = (eigenvectors / (eigenvalues + tau)) @ eigenvectors.T  # (P, P) = U diag(1/(lambda+tau)) U^T
        self.prior_precision_ = tau
        self.log_marginal_likelihood_ = log_marginal_likelihood(tau, eigenvalues=eigenvalues, norm2=norm2, nll_sum=nll_sum)
        self.nll_ = nll_sum / len(phi)
        self.has_bias_ = bias is not None
        self.num_classes_ = k
        self.num_features_ = x.shape[1]
        return self

    def _check_params(self) -> None:
        name = type(self).__name__
        if self.prior_precision is not None and not float(self.prior_precision) > 0:
            raise UserError(f"{name} needs prior_precision > 0 (or None to choose it by marginal likelihood), got {self.prior_precision}")
        if self.predictive not in ("probit", "mc"):
            raise UserError(f"{name}: predictive must be 'probit' or 'mc', got {self.predictive!r}")
        if self.mc_samples < 1 or self.max_parameters < 1:
            raise UserError(f"{name} needs mc_samples >= 1 and max_parameters >= 1, got {self.mc_samples} and {self.max_parameters}")

    @staticmethod
    def _augment(phi: torch.Tensor, bias: bool) -> torch.Tensor:
        return torch.cat([phi, torch.ones(len(phi), 1, dtype=phi.dtype)], dim=1) if bias else phi

    # ------------------------------------------------------------------ the predictive

    def logit_distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (N, K) and covariance (N, K, K) of the Gaussian over logits, float64."""
        self.check_is_fitted()
        where = f"{type(self).__name__}.logit_distribution"
        d, k = self.num_features_, self.num_classes_
        x = check_tensor(features, where=where, name="features", shape=f"(N, {d})", ndim=2, dtype="float")
        if x.shape[1] != d:
            raise UserError(f"{where} expected features of shape (N, {d}) (fitted on {d} features), got shape {tuple(x.shape)}")
        phi = self._augment(x.detach().to("cpu", torch.float64), self.has_bias_)  # (N, E)
        e = phi.shape[1]
        sigma = self.covariance_.view(k, e, k, e)
        covs = []
        for start in range(0, len(phi), _BATCH):
            block = phi[start : start + _BATCH]
            right = torch.einsum("kdle,ne->nkdl", sigma, block)  # (n, K, E, K): Sigma J^T
            covs.append(torch.einsum("nd,nkdl->nkl", block, right))  # (n, K, K): J Sigma J^T
        cov = torch.cat(covs)
        return phi @ self.weight_.T, (cov + cov.transpose(1, 2)) / 2

    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """Predictive class probabilities (N, K), float32 on the features' device, by probit or MC (see `predictive`)."""
        mean, cov = self.logit_distribution(features)
        if self.predictive == "probit":
            probs = probit_predictive(mean, cov)
        else:
            probs = mc_predictive(mean, cov, samples=self.mc_samples, generator=torch.Generator().manual_seed(self.seed))
        return probs.to(device=features.device, dtype=torch.float32)

    @classmethod
    def example(cls, generator: torch.Generator) -> Example:
        """Three Gaussian classes in 3 dimensions and a linear-discriminant head (weight = centres)."""
        n, dim, k = 150, 3, 3
        labels = torch.randint(0, k, (n,), generator=generator)
        centres = 2.0 * torch.randn(k, dim, generator=generator)
        features = centres[labels] + torch.randn(n, dim, generator=generator)
        weight, bias = centres.clone(), -0.5 * centres.square().sum(1)
        return Example(
            fit_args=(features, labels, weight, bias),
            method="predict_proba",
            inputs=(features[:20],),
            invalid_fit_args=(
                (features[:, :, None], labels, weight, bias),  # (N, D, 1)
                (features.long(), labels, weight, bias),  # integer features
                (features, labels.float(), weight, bias),  # float labels
                (features, labels[:-1], weight, bias),  # N mismatch
                (features, labels, weight[:, :2], bias),  # D mismatch
                (features, labels, weight, bias[:2]),  # K mismatch
                (features, labels + k, weight, bias),  # labels out of range
                (features.numpy(), labels, weight, bias),  # not a tensor
            ),
            invalid_inputs=((features[0],), (features[:, :2],), (features.long(),)),
        )


# ------------------------------------------------------------------ the formulas, usable on their own


def log_marginal_likelihood(tau: float, *, eigenvalues: torch.Tensor, norm2: float, nll_sum: float) -> float:
    """log Z(tau) = -NLL - tau/2 |theta*|^2 + P/2 log tau - 1/2 sum_j log(lambda_j + tau)."""
    p_count = len(eigenvalues)
    return float(-nll_sum - 0.5 * tau * norm2 + 0.5 * p_count * math.log(tau) - 0.5 * torch.log(eigenvalues + tau).sum())


def _evidence_maximiser(eigenvalues: torch.Tensor, norm2: float, low: float = 1e-8, high: float = 1e8) -> float:
    """The tau in [low, high] where d log Z / d tau = 0 (bisection on log tau; the derivative falls with tau)."""

    def slope(log_tau: float) -> float:
        tau = math.exp(log_tau)
        return float((eigenvalues / (tau * (eigenvalues + tau))).sum()) - norm2

    a, b = math.log(low), math.log(high)
    if slope(a) <= 0:
        return low
    if slope(b) >= 0:
        return high
    while b - a > 1e-10:
        mid = (a + b) / 2
        a, b = (mid, b) if slope(mid) > 0 else (a, mid)
    return math.exp((a + b) / 2)


def probit_predictive(mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Extended probit approximation on centred logits: (N, K) mean, (N, K, K) covariance -> (N, K).

    softmax is blind to adding one number to every logit, so f and C f (C = I - 11^T/K, the
    logits minus their mean) give the same predictive; the probit formula is not blind to it,
    and the posterior is widest exactly there (moving all classes' weights together changes no
    likelihood, only the prior holds it). Applying softmax(C mu / sqrt(1 + pi/8 diag(C S C)))
    leaves the exact predictive unchanged and drops that irrelevant variance from the formula.
    """
    k = mean.shape[-1]
    centre = torch.eye(k, dtype=mean.dtype, device=mean.device) - 1.0 / k  # (K, K), symmetric
    variance = (centre @ cov @ centre).diagonal(dim1=1, dim2=2)
    return torch.softmax(mean @ centre / torch.sqrt(1.0 + math.pi / 8.0 * variance), dim=1)


def mc_predictive(mean: torch.Tensor, cov: torch.Tensor, *, samples: int, generator: torch.Generator) -> torch.Tensor:
    """(1/S) sum_s softmax(mu + L z_s) with L L^T = S (eigen-square-root: S may be near singular); -> (N, K)."""
    values, vectors = torch.linalg.eigh(cov)
    root = vectors * values.clamp_min(0.0).sqrt()[:, None, :]  # (N, K, K): root @ root^T = S
    z = torch.randn(samples, *mean.shape, generator=generator, dtype=mean.dtype)  # (S, N, K)
    logits = mean + torch.einsum("nkl,snl->snk", root, z)
    return torch.softmax(logits, dim=-1).mean(0)
