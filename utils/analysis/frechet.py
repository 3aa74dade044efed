"""Scores of generated images on a classifier trained here (the judge of utils/analysis/features.py): the
Fréchet distance between Gaussian fits of its penultimate features of real and of generated images, the
accuracy of its classes on reconstructions, and the spread of its classes over samples; and the blurred and
noisy images that give the distances their scale (the KID is in utils/analysis/kid.py).

FID (Heusel et al. 2017) uses Inception features, which cannot be downloaded here and describe 28x28 digits
poorly; the same distance on a classifier of the dataset itself is TF-GAN's `frechet_classifier_distance`
(its MNIST Fréchet distance), the "Fréchet LeNet distance".
"""

import numpy as np


def gaussian_fit(features):
    """(mean, covariance) of rows of features, in float64."""
    features = np.asarray(features, dtype="float64")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues below 0 clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mean_a, cov_a, mean_b, cov_b):
    """||mean_a - mean_b||^2 + Tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)).

    Tr((cov_a cov_b)^(1/2)) = Tr((S cov_b S)^(1/2)) with S = cov_a^(1/2): the latter is symmetric, so its
    square root comes from one eigendecomposition, with no general matrix square root (and no SciPy)."""
    root = _sqrt_psd(cov_a)
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root @ cov_b @ root), 0, None)))
    return float(np.sum((np.asarray(mean_a) - np.asarray(mean_b)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def distance_between(features_a, features_b):
    """The Fréchet distance between the Gaussian fits of two sets of features."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))


def class_spread(predicted, n_classes):
    """How evenly predicted classes cover the classes: the entropy of their histogram over log(n_classes) (1:
    all equally often, 0: one class), and the share of the rarest class (1/n_classes at best)."""
    counts = np.bincount(np.asarray(predicted), minlength=n_classes).astype("float64")
    shares = counts / counts.sum()
    entropy = -np.sum(shares[shares > 0] * np.log(shares[shares > 0]))
    return {"class_entropy": float(entropy / np.log(n_classes)) + 0.0, "rarest_class_share": float(shares.min())}  # + 0.0: no -0.0


def blurred(images, sigma):
    """`images` (N x H x W x C) convolved with a Gaussian of `sigma` pixels (separable, edges reflected)."""
    radius = max(1, int(round(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = np.asarray(images, dtype="float32")
    for axis in (1, 2):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(4)], mode="reflect")
        out = sum(w * np.take(padded, range(i, i + out.shape[axis]), axis=axis) for i, w in enumerate(taps))
    return out.astype("float32")


def noisy(images, sigma, seed=0):
    """`images` with N(0, sigma^2) noise added, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 1).astype("float32")
