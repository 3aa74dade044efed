"""Reconstruction terms, per image: where `--loss mse|rmse|bce|gaussian|gaussian_learned` is decided.

Training minimises `reconstruction_loss`; the NLL (a model's `log_importance_weights`) scores with
`log_likelihood`, so the two cannot disagree.

- `mse`, `rmse`: `r_loss_factor` times the mean squared pixel error (what the study's code computes) or
  its square root (what the study's README says). Neither is a likelihood: they have no unit that the
  VAE literature shares, and `log_likelihood` refuses them.
- `bce`: Bernoulli pixels with means x_hat (the decoder's sigmoid output), in nats, summed over pixels.
- `gaussian`: independent Gaussian pixels N(x_hat, sigma^2) with a fixed `sigma`, in nats.
- `gaussian_learned`: N(x_hat, exp(log_var)) with a per-pixel log-variance that the decoder outputs as a
  second image; generation uses the mean.

Inputs may be float16/bfloat16 under mixed precision; every term is computed in float32.
"""

import math

from keras import ops

LOSSES = ("mse", "rmse", "bce", "gaussian", "gaussian_learned")
LIKELIHOODS = ("bce", "gaussian", "gaussian_learned")  # the terms that are negative log-likelihoods
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def decoder_outputs(kind):
    """How many images the decoder returns for `kind`: the mean, and a log-variance for `gaussian_learned`."""
    return 2 if kind == "gaussian_learned" else 1


def reconstruction_loss(kind, x, outputs, r_loss_factor=1.0, sigma=1.0):
    """The per-image reconstruction term that training minimises (see the module docstring)."""
    if kind in LIKELIHOODS:
        return -log_likelihood(kind, x, outputs, sigma)
    x, mean = _float32(x), _float32(_mean(outputs))
    mse = ops.mean(ops.square(x - mean), axis=_pixel_axes(x))
    if kind == "mse":
        return r_loss_factor * mse
    if kind == "rmse":
        return r_loss_factor * ops.sqrt(mse)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {kind!r}")


def log_likelihood(kind, x, outputs, sigma=1.0):
    """log p(x | decoder outputs) per image, in nats (summed over pixels)."""
    x, mean = _float32(x), _float32(_mean(outputs))
    axes = _pixel_axes(x)
    if kind == "bce":  # Keras clips the probabilities to [1e-7, 1 - 1e-7]
        return -ops.sum(ops.binary_crossentropy(x, mean), axis=axes)
    if kind == "gaussian":
        per_pixel = -0.5 * ops.square((x - mean) / sigma) - math.log(sigma) - _HALF_LOG_2PI
        return ops.sum(per_pixel, axis=axes)
    if kind == "gaussian_learned":
        log_var = _float32(outputs[1])
        per_pixel = -0.5 * (ops.square(x - mean) * ops.exp(-log_var) + log_var) - _HALF_LOG_2PI
        return ops.sum(per_pixel, axis=axes)
    raise ValueError(f"{kind!r} is not a likelihood (mse and rmse are scaled errors); use one of "
                     f"{', '.join(LIKELIHOODS)}")


def scoring_likelihood(loss):
    """The likelihood a run trained with `loss` is scored with: its own, or Bernoulli pixel means for mse/rmse
    (as the literature's MNIST numbers assume: ~90 nats for a VAE on binarized MNIST, ~135 for a 2-D latent)."""
    return loss if loss in LIKELIHOODS else "bce"


def describe(kind, r_loss_factor=1.0, sigma=1.0):
    """The reconstruction term in words, for summaries: e.g. `1000 × pixel MSE`."""
    factor = "" if r_loss_factor == 1 else f"{r_loss_factor:g} × "
    return {"mse": f"{factor}pixel MSE", "rmse": f"{factor}pixel RMSE", "bce": "Bernoulli NLL (nats)",
            "gaussian": f"Gaussian NLL (σ = {sigma:g})", "gaussian_learned": "Gaussian NLL (learned variance)"}[kind]


def _mean(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _float32(t):
    return ops.cast(t, "float32")


def _pixel_axes(x):
    return tuple(range(1, len(x.shape)))
