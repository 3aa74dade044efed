"""Figures comparable across runs and with the literature, through the model contract (models/base.py):
the pixel MSE of reconstructions (every family) and, where the model has a likelihood, the ELBO and the
importance-sampled NLL (the IWAE bound with K samples) in nats per image and bits per dimension, with a
check of K.

The study's loss (1000 * MSE + KL) is not a likelihood. The model decides what it is scored with
(`scoring_likelihood`): Bernoulli pixels on binary data, a discretized Gaussian on 8-bit grey data
(models/likelihoods.py).
"""

import math

import numpy as np
from scipy.special import logsumexp

from models.likelihoods import bits_per_dimension

K_CHECK_FACTOR = 4  # the K check compares the estimate at K with the one at this many times K draws
K_CHECK_TOLERANCE = 0.1  # nats: a larger change from K to 4K draws says K is too small
K_CHECK_IMAGES = 100  # ... on the first this many scored images


def importance_sampled(model, images, samples, likelihood=None, batch_size=100, seed=0):
    """Per image: (ELBO, log-likelihood estimate with `samples` draws), in nats, as float64 arrays; `likelihood`
    None is the one the model trains on."""
    rng = np.random.default_rng(seed)
    elbos, log_likelihoods = [], []
    for start in range(0, len(images), batch_size):
        log_w = model.log_importance_weights(images[start:start + batch_size], samples, rng, likelihood)  # K x B
        elbos.append(log_w.mean(axis=0))
        log_likelihoods.append(logsumexp(log_w, axis=0) - math.log(samples))
    return np.concatenate(elbos), np.concatenate(log_likelihoods)


def likelihood_figures(model, images, samples, likelihood=None, seed=0):
    """Mean ELBO and importance-sampled NLL with `samples` draws per image, in nats, and in bits per dimension
    where the likelihood is a probability of discrete pixels (a density's bits mean nothing).

    Returns {"elbo", "log_likelihood", "nll"[, "bpd", "elbo_bpd"]}; nll = -log_likelihood."""
    elbo, log_likelihood = importance_sampled(model, images, samples, likelihood, seed=seed)
    nll = -float(log_likelihood.mean())
    figures = {"elbo": float(elbo.mean()), "log_likelihood": -nll, "nll": nll}
    if likelihood is not None and likelihood.discrete:
        dimensions = int(np.prod(images.shape[1:]))
        figures.update(bpd=bits_per_dimension(nll, dimensions),
                       elbo_bpd=bits_per_dimension(-float(elbo.mean()), dimensions))
    return figures


def k_check(model, images, samples, likelihood, seed=1):
    """How far the NLL estimate with `samples` draws is from the one with K_CHECK_FACTOR times as many, on the
    first K_CHECK_IMAGES images: the estimate at K is the mean over the K_CHECK_FACTOR disjoint blocks of
    K draws of one K_CHECK_FACTOR * K draw, so both use the same draws. The NLL estimate falls as K grows
    (it is an upper bound that tightens); a change well above 0.1 nat says K is too small."""
    images = images[:K_CHECK_IMAGES]
    rng = np.random.default_rng(seed)
    blocks, whole = [], []
    for start in range(0, len(images), 50):
        log_w = model.log_importance_weights(images[start:start + 50], K_CHECK_FACTOR * samples, rng, likelihood)
        split = log_w.reshape(K_CHECK_FACTOR, samples, -1)
        blocks.append((logsumexp(split, axis=1) - math.log(samples)).mean(axis=0))
        whole.append(logsumexp(log_w, axis=0) - math.log(K_CHECK_FACTOR * samples))
    nll_k, nll_more = -float(np.concatenate(blocks).mean()), -float(np.concatenate(whole).mean())
    return {"k_check_images": len(images), "k_check_nll_at_k": nll_k,
            f"k_check_nll_at_{K_CHECK_FACTOR}k": nll_more, "k_check_change": nll_k - nll_more}


def reconstruction_mse(model, images, batch_size=1000):
    """Mean squared pixel error of reconstructions from the latent means (codes) of clean `images`:
    the figure every family shares."""
    errors = []
    for start in range(0, len(images), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype="float32")
        errors.append(np.mean(np.square(x - model.reconstruct(x, batch_size)).reshape(len(x), -1), axis=1))
    return float(np.concatenate(errors).mean())
