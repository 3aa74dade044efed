"""Likelihood figures comparable with the VAE literature: the ELBO and the importance-sampled NLL.

The study's loss (1000 * MSE + KL) is not a likelihood. Here the decoder's output is read as the
means of independent Bernoulli pixels, as in the literature's MNIST numbers (e.g. ~90 nats for a
VAE on binarized MNIST, ~135 for a 2-D latent). With `binarize`, test images are thresholded at 0.5.
"""

import math

import numpy as np
import tensorflow as tf

_LOG_2PI = math.log(2.0 * math.pi)
_EPS = 1e-7  # Keras's clip for probabilities, so a saturated pixel costs at most -log(1e-7)


def _log_normal(z, mu, log_var):
    return -0.5 * tf.reduce_sum(_LOG_2PI + log_var + tf.square(z - mu) / tf.exp(log_var), axis=-1)


def _log_bernoulli(x, p):
    p = tf.clip_by_value(p, _EPS, 1.0 - _EPS)
    axes = list(range(1, len(x.shape)))
    return tf.reduce_sum(x * tf.math.log(p) + (1.0 - x) * tf.math.log(1.0 - p), axis=axes)


@tf.function(reduce_retracing=True)
def _log_weights(encoder, decoder, x, eps):
    """log p(x|z_k) + log p(z_k) - log q(z_k|x) for each of the K draws z_k = mu + sigma * eps_k."""
    mu, log_var, _ = encoder(x, training=False)
    mu, log_var = tf.cast(mu, "float32"), tf.cast(log_var, "float32")
    k = tf.shape(eps)[0]
    z = mu[None] + tf.exp(0.5 * log_var)[None] * eps  # K x B x z_dim
    flat_z = tf.reshape(z, (-1, z.shape[-1]))
    p = tf.cast(decoder(flat_z, training=False), "float32")
    x_rep = tf.reshape(tf.tile(x[None], [k] + [1] * len(x.shape)), tf.shape(p))
    log_px_z = tf.reshape(_log_bernoulli(x_rep, p), (k, -1))
    log_pz = _log_normal(z, 0.0, tf.zeros_like(z))
    log_qz = _log_normal(z, mu[None], log_var[None])
    return log_px_z + log_pz - log_qz  # K x B


def likelihood_figures(encoder, decoder, images, samples=100, batch_size=100, seed=0, binarize=False):
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
        log_w = _log_weights(encoder, decoder, tf.constant(x), tf.constant(eps))
        elbos.append(tf.reduce_mean(log_w, axis=0).numpy())
        log_likelihoods.append((tf.reduce_logsumexp(log_w, axis=0) - math.log(samples)).numpy())
    log_likelihood = float(np.concatenate(log_likelihoods).mean())
    return {"elbo": float(np.concatenate(elbos).mean()), "log_likelihood": log_likelihood,
            "nll": -log_likelihood}
