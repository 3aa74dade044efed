"""Mean, standard deviation, Student-t 95 % confidence intervals and t-test p-values over seeds, plain and
paired, and Holm's adjustment of a family of p-values."""

import math
from dataclasses import dataclass

from scipy.stats import t as student_t


def t975(df):
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1; got {df}")
    return float(student_t.ppf(0.975, df))


@dataclass(frozen=True)
class Estimate:
    """Mean of n values with their sample standard deviation and t-based 95 % CI (NaN when n < 2)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    @property
    def has_ci(self):
        """Whether the interval is defined (it needs at least two values)."""
        return self.n >= 2 and math.isfinite(self.low)

    @property
    def excludes_zero(self):
        """Whether the CI lies wholly above or below zero (False when the CI is undefined)."""
        return self.has_ci and (self.low > 0 or self.high < 0)

    @property
    def p_value(self):
        """Two-sided p-value of a mean of zero (Student t, n − 1 df; of paired differences: the paired
        t-test); NaN without an interval."""
        if not self.has_ci:
            return math.nan
        if self.sd == 0:  # every value the same: t is 0 or infinite
            return 1.0 if self.mean == 0 else 0.0
        t = self.mean / (self.sd / math.sqrt(self.n))
        return float(2 * student_t.sf(abs(t), self.n - 1))


def estimate(values):
    """Mean, sample sd (n - 1) and 95 % CI mean ± t(0.975, n - 1) · sd / √n of finite `values`."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(values)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Estimate(n, mean, sd, mean - half, mean + half)


def paired_difference(values, reference):
    """`estimate` of values[s] - reference[s] over the keys (seeds) that both mappings hold."""
    common = sorted(set(values) & set(reference))
    return estimate([values[s] - reference[s] for s in common])


def holm(p_values):
    """Holm's step-down adjustment of a family of p-values, in their order; NaNs stay NaN and are not
    counted in the family. The i-th smallest of m becomes max over j <= i of min(1, (m − j + 1) · p_(j))."""
    # By hand: SciPy has only false_discovery_control (Benjamini-Hochberg), and statsmodels is not a dependency.
    order = sorted((i for i, p in enumerate(p_values) if math.isfinite(p)), key=lambda i: p_values[i])
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
