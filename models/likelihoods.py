"""Reconstruction terms, per image: where `--loss mse|rmse|bce|gaussian|gaussian_learned` is decided.

Training minimises `reconstruction_loss`; `training_likelihood` is the same term as a `Likelihood`, which
a model's `log_importance_weights` uses by default, so the ELBO it gives is the one training maximises.

- `mse`, `rmse`: `r_loss_factor` times the mean squared pixel error (what the study's code computes) or
  its square root (what the study's README says). Neither is a likelihood: they have no unit that the
  VAE literature shares, and `log_likelihood` refuses them.
- `bce`: Bernoulli pixels with means x_hat (the decoder's sigmoid output), in nats, summed over pixels.
- `gaussian`: independent Gaussian pixels N(x_hat, sigma^2) with a fixed `sigma`, in nats.
- `gaussian_learned`: N(x_hat, exp(log_var)) with a per-pixel log-variance that the decoder outputs as a
  second image; generation uses the mean.

Inputs may be float16/bfloat16 under mixed precision; every term is computed in float32.

Scoring is a separate question (`Likelihood`, `scoring_likelihood`): a likelihood of the data as they are.
Binary images are scored with Bernoulli pixels; 8-bit grey images, whose pixels take 256 levels, with a
Gaussian discretized to those levels (each level's probability is the Gaussian's mass over its bin, the
edge bins reaching to ±infinity, so the 256 probabilities sum to 1), in bits per dimension as the field
reports them. A continuous density of grey pixels, or a Bernoulli cross-entropy of them, is no likelihood
of the data and is not used for scoring.
"""

import math
from dataclasses import dataclass

import numpy as np
from keras import ops
from scipy.special import log_ndtr

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


LEVELS = 256  # the levels of an 8-bit pixel
BERNOULLI_CLIP = 1e-7  # as Keras's binary cross-entropy clips probabilities


@dataclass(frozen=True)
class Likelihood:
    """A likelihood that scores images: `kind` (bernoulli, gaussian: a density, discretized_gaussian: 256
    levels), a Gaussian's pixel `sigma` (None: the decoder's own variance), and how `sigma` was chosen."""

    kind: str
    sigma: float | None = None
    sigma_source: str = ""

    @property
    def discrete(self):
        """Whether it is a probability of the pixels' values (Bernoulli, 256 levels), not a density."""
        return self.kind in ("bernoulli", "discretized_gaussian")

    @property
    def name(self):
        """For eval.json and summaries, e.g. `discretized_gaussian(sigma=0.1032, fitted on the validation images)`."""
        if self.kind == "bernoulli":
            return self.kind
        sigma = "the decoder's own variance" if self.sigma is None else f"sigma={self.sigma:.4g}"
        return f"{self.kind}({sigma}{', ' + self.sigma_source if self.sigma_source else ''})"

    def log_prob(self, x, outputs):
        """log p(x | decoder outputs) per image, in nats, float64 NumPy (`x` and `outputs` NumPy or tensors)."""
        x = np.asarray(ops.convert_to_numpy(x), dtype="float64")
        mean = np.asarray(ops.convert_to_numpy(_mean(outputs)), dtype="float64")
        axes = tuple(range(1, x.ndim))
        if self.kind == "bernoulli":
            p = np.clip(mean, BERNOULLI_CLIP, 1 - BERNOULLI_CLIP)
            return np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=axes)
        sigma = self.sigma if self.sigma is not None else np.exp(
            0.5 * np.asarray(ops.convert_to_numpy(outputs[1]), dtype="float64"))
        if self.kind == "gaussian":
            return np.sum(-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma) - _HALF_LOG_2PI, axis=axes)
        if self.kind == "discretized_gaussian":
            return np.sum(discretized_gaussian_log_prob(x, mean, sigma), axis=axes)
        raise ValueError(f"unknown likelihood {self.kind!r}")


def discretized_gaussian_log_prob(x, mean, sigma, levels=LEVELS):
    """log P(pixel = x) per pixel: the mass of N(mean, sigma^2) over x's bin of width 1/(levels - 1) around
    x in [0, 1], the first and last bins reaching to -inf and +inf, so the levels' probabilities sum to 1.

    log(Phi(b) - Phi(a)) is taken from SciPy's log_ndtr on whichever side of the mean keeps both terms in
    the lower tail, where they do not round to 1: exact in float64 far into the tails."""
    x, mean, sigma = np.broadcast_arrays(*(np.asarray(v, dtype="float64") for v in (x, mean, sigma)))
    half = 0.5 / (levels - 1)
    low = np.where(x <= half, -np.inf, (x - half - mean) / sigma)
    high = np.where(x >= 1 - half, np.inf, (x + half - mean) / sigma)
    # Phi(high) - Phi(low) = Phi(-low) - Phi(-high): use the mirrored form where the bin lies above the mean.
    flip = low + high > 0
    a, b = np.where(flip, -high, low), np.where(flip, -low, high)
    log_b, log_a = log_ndtr(b), log_ndtr(a)
    with np.errstate(divide="ignore"):
        return log_b + np.log1p(-np.exp(np.minimum(log_a - log_b, 0.0)))


def bits_per_dimension(nll_nats, dimensions):
    """Nats per image as bits per pixel value: nll / (dimensions * ln 2)."""
    return nll_nats / (dimensions * math.log(2.0))


def is_binary(images):
    """Whether every pixel is 0 or 1."""
    images = np.asarray(images)
    return bool(np.all((images == 0) | (images == 1)))


def on_levels(images, levels=LEVELS):
    """Whether every pixel is one of the `levels` values k / (levels - 1) (8-bit images scaled to [0, 1])."""
    images = np.asarray(images, dtype="float64")
    return bool(np.allclose(np.rint(images * (levels - 1)) / (levels - 1), images, rtol=0, atol=1e-6))


def training_likelihood(kind, sigma=1.0):
    """The `Likelihood` a model trained with loss `kind` (bce, gaussian, gaussian_learned) maximises; a
    ValueError for mse/rmse, which are scaled errors."""
    if kind not in LIKELIHOODS:
        raise ValueError(f"{kind!r} is not a likelihood (mse and rmse are scaled errors); use one of "
                         f"{', '.join(LIKELIHOODS)}")
    return {"bce": Likelihood("bernoulli"), "gaussian": Likelihood("gaussian", sigma, "fixed by --sigma"),
            "gaussian_learned": Likelihood("gaussian")}[kind]


def scoring_likelihood(kind, binary, sigma=1.0, fitted_sigma=None):
    """The likelihood of the data as they are that a model trained with loss `kind` is scored with.

    Binary images: Bernoulli pixels with the decoder's means. 8-bit grey images: the discretized Gaussian,
    with the decoder's own variance (gaussian_learned), its fixed sigma (gaussian), or, for losses with no
    noise model (mse, rmse, bce on grey pixels), `fitted_sigma()`: one sigma for every pixel, fitted on the
    validation images (the caller's choice, named in `sigma_source`)."""
    if binary:
        return Likelihood("bernoulli")
    if kind == "gaussian_learned":
        return Likelihood("discretized_gaussian")
    if kind == "gaussian":
        return Likelihood("discretized_gaussian", sigma, "fixed by --sigma")
    return Likelihood("discretized_gaussian", *fitted_sigma())


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
