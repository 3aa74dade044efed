"""Mean, standard deviation and Student-t 95 % confidence intervals over seeds, plain and paired."""

import math
from dataclasses import dataclass
from statistics import NormalDist

# Two-sided 95 % Student-t quantiles t(0.975, df) for df = 1..30, to 4 decimals. A table (and the
# expansion below) because the project does not depend on SciPy for one quantile function.
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t975(df):
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1; got {df}")
    if df <= len(T975):
        return T975[int(df) - 1]
    # Above 30 the Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5)
    # is within 1e-7 of the exact value.
    z, v = NormalDist().inv_cdf(0.975), float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4))


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
