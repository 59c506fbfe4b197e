"""Gao et al.'s functional forms: least squares recovers known (α, β), the peaks are where the
derivative vanishes, and bad input is refused."""

import numpy as np
import pytest

from rlbook_lib.llm import overoptimization as oo


@pytest.mark.parametrize("form,alpha,beta", [("bon", 1.5, 0.4), ("rl", 2.0, 0.7)])
def test_fit_recovers_known_parameters(form, alpha, beta):
    d = np.linspace(0.0, 4.0, 30)
    gain = predict = oo.predict(d, alpha, beta, form)
    f = oo.fit(d, gain, form)
    assert (f.alpha, f.beta) == pytest.approx((alpha, beta), abs=1e-9)
    assert f.rmse < 1e-9
    noisy = predict + 0.01 * np.sin(np.arange(30) * 7.3)  # a fixed small perturbation
    g = oo.fit(d, noisy, form)
    assert (g.alpha, g.beta) == pytest.approx((alpha, beta), abs=0.05)


def test_forms_by_hand_and_their_peaks():
    d = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(oo.predict(d, 3.0, 1.0, "bon"), [0.0, 3 - 1, 2 * (3 - 2)])
    np.testing.assert_allclose(oo.predict(d, 3.0, 1.0, "rl"), [0.0, 3.0, 2 * (3 - np.log(2))])
    for form, alpha, beta in (("bon", 1.5, 0.4), ("rl", 2.0, 0.7)):
        f = oo.Fit(form, alpha, beta, 0.0)
        top = oo.peak(f)
        h = 1e-5
        slope = (oo.predict(top + h, alpha, beta, form) - oo.predict(top - h, alpha, beta, form)) / (2 * h)
        assert abs(slope) < 1e-6
    assert oo.peak(oo.Fit("rl", 1.0, -0.1, 0.0)) == float("inf")


def test_bad_input():
    with pytest.raises(ValueError, match="form"):
        oo.fit([1.0, 2.0], [0.0, 1.0], "ppo")
    with pytest.raises(ValueError, match=">= 0"):
        oo.predict([-1.0], 1.0, 1.0, "bon")
    with pytest.raises(ValueError, match="same number"):
        oo.fit([1.0, 2.0], [0.0], "rl")
