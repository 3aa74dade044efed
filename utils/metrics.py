"""Figures comparable across runs and with the literature: pixel MSE (every family), and for a VAE the
ELBO, the importance-sampled NLL, active units and KL per latent dimension.

The study's loss (1000 * MSE + KL) is not a likelihood. For runs trained with `mse`/`rmse`, the
decoder's output is read as the means of independent Bernoulli pixels, as in the literature's MNIST
numbers (e.g. ~90 nats for a VAE on binarized MNIST, ~135 for a 2-D latent); runs trained with a
likelihood (`bce`, `gaussian`, `gaussian_learned`) are scored with their own (models/likelihoods.py).
A Gaussian's figures are densities of continuous pixels, not comparable with Bernoulli nats.
"""

import math

import numpy as np
import tensorflow as tf

from models import likelihoods
from utils.analysis import active_units, decode, kl_per_dimension, latent_means, latent_moments

_LOG_2PI = math.log(2.0 * math.pi)


def scoring_likelihood(loss):
    """The likelihood a run trained with `loss` is scored with: its own, or Bernoulli for mse/rmse."""
    return loss if loss in likelihoods.LIKELIHOODS else "bce"


def _log_normal(z, mu, log_var):
    return -0.5 * tf.reduce_sum(_LOG_2PI + log_var + tf.square(z - mu) / tf.exp(log_var), axis=-1)


@tf.function(reduce_retracing=True)
def _log_weights(encoder, decoder, x, eps, kind, sigma):
    """log p(x|z_k) + log p(z_k) - log q(z_k|x) for each of the K draws z_k = mu + sigma * eps_k."""
    mu, log_var, _ = encoder(x, training=False)
    mu, log_var = tf.cast(mu, "float32"), tf.cast(log_var, "float32")
    k = tf.shape(eps)[0]
    z = mu[None] + tf.exp(0.5 * log_var)[None] * eps  # K x B x z_dim
    outputs = decoder(tf.reshape(z, (-1, z.shape[-1])), training=False)
    mean = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    x_rep = tf.reshape(tf.tile(x[None], [k] + [1] * len(x.shape)), tf.shape(mean))
    log_px_z = tf.reshape(likelihoods.log_likelihood(kind, x_rep, outputs, sigma), (k, -1))
    log_pz = _log_normal(z, 0.0, tf.zeros_like(z))
    log_qz = _log_normal(z, mu[None], log_var[None])
    return log_px_z + log_pz - log_qz  # K x B


def likelihood_figures(encoder, decoder, images, samples=100, batch_size=100, seed=0, binarize=False,
                       kind="bce", sigma=1.0):
    """Mean ELBO and importance-sampled log-likelihood (IWAE bound with `samples` draws) in nats.

    Returns {"elbo": ..., "log_likelihood": ..., "nll": ...}; nll = -log_likelihood.
    """
    rng = np.random.default_rng(seed)
    z_dim = encoder.output_shape[0][-1]
    elbos, log_likelihoods = [], []
    for start in range(0, len(images), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype="float32")
        if binarize:
            x = (x > 0.5).astype("float32")
        eps = rng.standard_normal((samples, len(x), z_dim)).astype("float32")
        log_w = _log_weights(encoder, decoder, tf.constant(x), tf.constant(eps), kind, float(sigma))
        elbos.append(tf.reduce_mean(log_w, axis=0).numpy())
        log_likelihoods.append((tf.reduce_logsumexp(log_w, axis=0) - math.log(samples)).numpy())
    log_likelihood = float(np.concatenate(log_likelihoods).mean())
    return {"elbo": float(np.concatenate(elbos).mean()), "log_likelihood": log_likelihood,
            "nll": -log_likelihood}


def reconstruction_mse(encoder, decoder, images, batch_size=1000):
    """Mean squared pixel error of reconstructions from the latent means (codes) of clean `images`:
    the figure every family shares."""
    errors = []
    for start in range(0, len(images), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype="float32")
        x_hat = decode(decoder, latent_means(encoder, x, batch_size))
        errors.append(np.mean(np.square(x - x_hat).reshape(len(x), -1), axis=1))
    return float(np.concatenate(errors).mean())


def latent_figures(encoder, images):
    """A VAE's active units (posterior-mean variance over images > 0.01) and KL per latent dimension."""
    mu, log_var = latent_moments(encoder, images)
    return {"active_units": active_units(mu), "kl_per_dimension": kl_per_dimension(mu, log_var).tolist()}
