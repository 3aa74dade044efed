"""The kernel distance of generated images (KID; Bińkowski, Sutherland, Arbel and Gretton 2018, "Demystifying
MMD GANs"): the squared maximum mean discrepancy between features of real and of generated images under the
cubic polynomial kernel k(x, y) = (x·y / d + 1)^3, estimated without bias, with a 95 % interval.

Unlike the Fréchet distance, whose estimate from n samples is biased upwards by a term that shrinks with n
(so figures from 1,000 samples depend on the sample count), the estimate here is unbiased at every n, and
its expected value is 0 when the two sets come from one distribution.

Written by hand: no well-kept library of this project's stack computes it (torchmetrics and torch-fidelity
are PyTorch-side and fetch Inception weights). It follows TF-GAN's `kernel_classifier_distance_and_std`,
the block estimator of Zaremba, Gretton and Blaschko (2013): the images are split into disjoint subsets,
the unbiased MMD² is computed on each, and the figure is their mean. Disjoint subsets give independent
estimates, so the Student-t interval over them is a true 95 % interval of the mean (torch-fidelity's
overlapping random subsets would give a spread, not a standard error).
"""

import numpy as np

from utils.analysis.stats import estimate

SUBSETS = 10
MAX_SUBSET_SIZE = 1000  # the paper's and torch-fidelity's subset size
SEED = 0  # which images go into which subset, the same for every run
MIN_IMAGES = 2 * SUBSETS  # two in each subset


def polynomial_kernel(a, b):
    """The matrix of k(a_i, b_j) = (a_i·b_j / d + 1)^3, d the features' width."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(real, generated):
    """The unbiased estimate of MMD² between two sets of features (rows), under the polynomial kernel:
    the means of k over distinct pairs within each set, less twice the mean of k across the sets."""
    x, y = (np.asarray(f, dtype="float64") for f in (real, generated))
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within = ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)))
    return float(within - 2 * polynomial_kernel(x, y).mean())


def kernel_distance(real, generated, subsets=SUBSETS, max_size=MAX_SUBSET_SIZE, seed=SEED):
    """KID between two sets of features: the mean of the unbiased MMD² over `subsets` disjoint subsets of
    each (min(max_size, n // subsets) rows each, drawn with `seed`), with its 95 % t-interval over them."""
    size = min(max_size, min(len(real), len(generated)) // subsets)
    if subsets < 2 or size < 2:
        raise ValueError(f"KID needs at least 2 subsets of 2 images; got {len(real)} and {len(generated)} images "
                         f"for {subsets} subsets")
    rng = np.random.default_rng(seed)
    x, y = (np.asarray(f)[rng.permutation(len(f))[:subsets * size]].reshape(subsets, size, -1)
            for f in (real, generated))
    found = estimate([mmd2_unbiased(a, b) for a, b in zip(x, y)])
    return {"kid": found.mean, "kid_low": found.low, "kid_high": found.high, "kid_subsets": subsets,
            "kid_subset_size": size}
