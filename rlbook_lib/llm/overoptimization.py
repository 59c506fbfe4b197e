r"""Reward over-optimisation: Gao et al.'s (2022) functional forms of the gold reward against KL.

Optimising a learned (proxy) reward moves the policy away from the reference; measure the
distance by d = √KL(π ‖ π_ref). Gao et al. found that the true ("gold") reward gained over
the reference, R(d) = E_π[r*] − E_{π_ref}[r*], follows

.. math::

    R_{\text{bon}}(d) = d\,(\alpha_{\text{bon}} - \beta_{\text{bon}}\, d) \quad\text{(best-of-n)},
    \qquad
    R_{\text{RL}}(d) = d\,(\alpha_{\text{RL}} - \beta_{\text{RL}} \log d) \quad\text{(RL)}.

Both are linear in (α, β): R = α d − β d² and R = α d − β d log d, so ordinary least
squares fits them (:func:`fit`). The best-of-n form peaks at d = α/(2β); the RL form at
d = exp(α/β − 1) (:func:`peak`). These β are shape parameters of the fits, not KL coefficients.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FORMS = ("bon", "rl")
"""The two functional forms."""


class Fit(NamedTuple):
    form: str
    """"bon" or "rl"."""
    alpha: float
    beta: float
    rmse: float
    """Root-mean-square residual of the fit."""


def _basis(d, form: str) -> np.ndarray:
    d = np.asarray(d, np.float64)
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise ValueError("d = sqrt(KL) must be finite and >= 0")
    if form == "bon":
        second = d * d
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            second = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)  # d log d → 0 at d = 0
    return np.stack([d, -second], axis=-1)


def predict(d, alpha: float, beta: float, form: str) -> np.ndarray:
    """R(d) = α d − β d² ("bon") or α d − β d log d ("rl")."""
    return _basis(d, form) @ np.array([alpha, beta], np.float64)


def fit(d, gain, form: str) -> Fit:
    """Least-squares (α, β) of R(d) to points (d_i, R_i): ``gain`` is the true reward minus the reference's."""
    d, gain = np.ravel(np.asarray(d, np.float64)), np.ravel(np.asarray(gain, np.float64))
    if d.shape != gain.shape or d.size < 2:
        raise ValueError(f"d and gain must have the same number (>= 2) of points, got {d.shape} and {gain.shape}")
    basis = _basis(d, form)
    (alpha, beta), *_ = np.linalg.lstsq(basis, gain, rcond=None)
    rmse = float(np.sqrt(np.mean((basis @ np.array([alpha, beta]) - gain) ** 2)))
    return Fit(form, float(alpha), float(beta), rmse)


def peak(f: Fit) -> float:
    """d at which the fitted R(d) is largest (inf if it never turns down, i.e. β ≤ 0)."""
    if f.beta <= 0:
        return float("inf")
    return f.alpha / (2 * f.beta) if f.form == "bon" else float(np.exp(f.alpha / f.beta - 1))
