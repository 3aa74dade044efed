"""The VAE's loss terms, per sample: where `--loss mse|rmse|bce` and the KL term are decided.

The model averages each over the batch. Inputs may be float16/bfloat16 under mixed precision;
every term is computed in float32.
"""

from keras import ops

RECONSTRUCTION_LOSSES = ("mse", "rmse", "bce")


def reconstruction_loss(kind, x, x_hat, r_loss_factor):
    """Per-sample reconstruction loss: `mse`/`rmse` scaled by `r_loss_factor`, `bce` in nats."""
    x = ops.cast(x, "float32")
    x_hat = ops.cast(x_hat, "float32")
    pixel_axes = tuple(range(1, len(x.shape)))
    if kind == "mse":  # what the study's code computes
        return r_loss_factor * ops.mean(ops.square(x - x_hat), axis=pixel_axes)
    if kind == "rmse":  # what the study's README says
        return r_loss_factor * ops.sqrt(ops.mean(ops.square(x - x_hat), axis=pixel_axes))
    if kind == "bce":  # Bernoulli log-likelihood, summed over pixels
        return ops.sum(ops.binary_crossentropy(x, x_hat), axis=pixel_axes)
    raise ValueError(f"loss must be one of {', '.join(RECONSTRUCTION_LOSSES)}; got {kind!r}")


def kl_divergence(mu, log_var):
    """Per-sample KL(N(mu, exp(log_var)) || N(0, I)), summed over latent dimensions."""
    mu = ops.cast(mu, "float32")
    log_var = ops.cast(log_var, "float32")
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=-1)
