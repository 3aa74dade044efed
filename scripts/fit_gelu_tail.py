"""Fit the coefficients of models/gelu_tf.py's Gaussian tail: 0.5 * erfc(z) = 0.5 * t * exp(-z^2) * P(t).

    python -m scripts.fit_gelu_tail              # prints p, the coefficients of P and the worst relative error

t = 1 / (1 + p z). P is fitted to a uniform relative error over 0 <= z <= 10.5 (beyond that exp(-z^2)
underflows float32) by Lawson's iteratively reweighted least squares, which converges to the minimax
fit, for each p on a grid; the best p wins. The reference is float64 math.erfc (relative error ~1e-16).
"""

import argparse
import math
import sys

import numpy as np


def tail_ratio(z):
    """erfc(z) * exp(z^2): the smooth factor that P(t) * t approximates."""
    return np.array([math.erfc(v) * math.exp(v * v) for v in z])


def lawson_fit(z, ratio, p, degree, iterations=60):
    """Coefficients of P (lowest power first) for this p, and the worst relative error of t * P(t)."""
    t = 1.0 / (1.0 + p * z)
    basis = np.vander(t, degree + 1, increasing=True) * (t / ratio)[:, None]  # relative residual = basis @ c - 1
    weights = np.full(len(z), 1.0 / len(z))
    for _ in range(iterations):
        root = np.sqrt(weights)
        coefficients, *_ = np.linalg.lstsq(basis * root[:, None], root, rcond=None)
        error = np.abs(basis @ coefficients - 1.0)
        weights = weights * error + 1e-300
        weights /= weights.sum()
    return coefficients, float(error.max())


def main(argv=None):
    """Search p, print the best fit as Python literals."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--degree", type=int, default=8)
    parser.add_argument("--zmax", type=float, default=10.5)
    args = parser.parse_args(argv)
    if args.degree < 1 or args.zmax <= 0:
        parser.error("--degree must be at least 1 and --zmax positive")
    z = np.linspace(0.0, args.zmax, 20001)
    ratio = tail_ratio(z)
    fits = [(p, *lawson_fit(z, ratio, p, args.degree)) for p in np.round(np.arange(0.20, 0.62, 0.02), 2)]
    p, coefficients, error = min(fits, key=lambda fit: fit[2])
    print(f"p = {p}\ncoefficients = {[float(c) for c in coefficients]}\nworst relative error {error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
