"""utils/analysis/stats.py against hand computations: the paired t-test's p-value and Holm's adjustment."""

import math

import pytest
from scipy.stats import ttest_rel

from utils.analysis.stats import estimate, holm, paired_difference, t975


def test_paired_p_value_matches_a_hand_computed_t_test():
    values, reference = {0: 10.0, 1: 12.0, 2: 11.0}, {0: 9.0, 1: 10.0, 2: 10.0, 3: 5.0}  # seed 3: no pair
    est = paired_difference(values, reference)
    # Differences 1, 2, 1: mean 4/3, sd sqrt(1/3), standard error 1/3, so t = 4 on 2 degrees of freedom.
    # With 2 df, P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2)), so p = 2 (1/2 - 4 / (2 sqrt 18)) = 1 - 4 / sqrt 18.
    assert est.p_value == pytest.approx(1 - 4 / math.sqrt(18), rel=1e-9)
    assert est.p_value == pytest.approx(ttest_rel([10.0, 12.0, 11.0], [9.0, 10.0, 10.0]).pvalue, rel=1e-9)
    assert not est.excludes_zero and est.p_value > 0.05  # p < 0.05 exactly when the 95 % interval excludes 0


def test_p_value_of_identical_or_too_few_values():
    assert estimate([2.0, 2.0, 2.0]).p_value == 0.0  # no spread: any nonzero mean is certain
    assert estimate([0.0, 0.0]).p_value == 1.0
    assert math.isnan(estimate([1.0]).p_value) and math.isnan(estimate([]).p_value)


def test_t975_is_students_quantile():
    assert t975(4) == pytest.approx(2.7764, abs=1e-4) and t975(1) == pytest.approx(12.7062, abs=1e-4)
    with pytest.raises(ValueError):
        t975(0)


def test_holm_matches_a_hand_computation():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (never below the
    # one before), returned in the order given.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, and kept monotone
    adjusted = holm([0.02, math.nan, 0.01])  # no p-value (one pair): not in the family of 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([]) == []
