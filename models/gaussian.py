"""Gaussian pieces the families share: log densities for importance weights, the quantile grid of a 2-D
code space, and drawing codes from a Gaussian. Log densities use `keras.ops`, so they run on every backend."""

import math
from statistics import NormalDist

import numpy as np
from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(z, mean, log_var):
    """log N(z; mean, exp(log_var)) summed over the last axis, in float32."""
    z, mean, log_var = (ops.cast(t, "float32") for t in (z, mean, log_var))
    return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(z - mean) / ops.exp(log_var), axis=-1)


def log_standard_normal(z):
    """log N(z; 0, I) summed over the last axis, in float32."""
    z = ops.cast(z, "float32")
    return -0.5 * ops.sum(LOG_2PI + ops.square(z), axis=-1)


def precision_weighted(mean_a, log_var_a, mean_b, log_var_b):
    """(mean, log-variance) of N(mean_a, var_a) · N(mean_b, var_b), normalised: the precisions add, the means
    are weighted by them. In log-variances, stable for any spread: var = 1 / (1/var_a + 1/var_b) and the weight
    of mean_a is var_b / (var_a + var_b) = sigmoid(log_var_b - log_var_a)."""
    weight_a = ops.sigmoid(log_var_b - log_var_a)
    return weight_a * mean_a + (1.0 - weight_a) * mean_b, -ops.logaddexp(-log_var_a, -log_var_b)


def normal_quantiles(n):
    """Standard-normal quantiles of the probabilities (i + 0.5) / n: never 0 or 1, so never inf."""
    return np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)], dtype="float32")


def quantile_grid(n, center=(0.0, 0.0), scale=(1.0, 1.0)):
    """n x n 2-D points at `center + scale * normal_quantiles(n)` on each axis, the top row at high z[1]."""
    q = normal_quantiles(n)
    zx, zy = np.meshgrid(center[0] + scale[0] * q, center[1] + scale[1] * q[::-1])
    return np.c_[zx.ravel(), zy.ravel()].astype("float32")


def sample_gaussian(n, rng, mean, cov):
    """`n` draws from N(mean, cov) with the NumPy generator `rng` (eigh, so a singular cov is fine)."""
    return rng.multivariate_normal(mean, cov, size=n, method="eigh").astype("float32")
