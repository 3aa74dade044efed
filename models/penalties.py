"""Penalty terms on codes and weights: where the VAE's KL term and the sparse autoencoders' penalties
are decided. Each returns a value per image; batch-level penalties are repeated for every image of
the batch, so a per-image mean of the loss adds them once."""

from keras import ops

_EPS = 1e-7  # keeps log(rho_hat) finite when a unit is always off or always on


def gaussian_kl(mu, log_var):
    """KL(N(mu, exp(log_var)) || N(0, I)) per image, summed over latent dimensions (the stable form)."""
    mu, log_var = ops.cast(mu, "float32"), ops.cast(log_var, "float32")
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=-1)


def gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p, axis=-1):
    """KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p))), summed over `axis` (None: per unit)."""
    mean_q, log_var_q, mean_p, log_var_p = (ops.cast(t, "float32") for t in (mean_q, log_var_q, mean_p, log_var_p))
    per_unit = 0.5 * (log_var_p - log_var_q + (ops.exp(log_var_q) + ops.square(mean_q - mean_p)) / ops.exp(log_var_p)
                      - 1.0)
    return per_unit if axis is None else ops.sum(per_unit, axis=axis)


def l1_activity(code):
    """Sum of |code| per image: the L1 activity penalty of a sparse autoencoder."""
    return ops.sum(ops.abs(ops.cast(code, "float32")), axis=-1)


def kl_sparsity(code, target):
    """sum_j KL(rho || rho_hat_j), rho_hat_j the batch-mean activation of unit j (a sigmoid code, in
    (0, 1)), KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q)); repeated per image."""
    code = ops.cast(code, "float32")
    rho_hat = ops.clip(ops.mean(code, axis=0), _EPS, 1.0 - _EPS)
    kl = target * ops.log(target / rho_hat) + (1.0 - target) * ops.log((1.0 - target) / (1.0 - rho_hat))
    return ops.zeros_like(code[:, 0]) + ops.sum(kl)


def l2_weights(weights, batch_like):
    """sum of w^2 over `weights`, repeated for each image of `batch_like` (a per-image tensor)."""
    total = ops.sum(ops.stack([ops.sum(ops.square(ops.cast(w, "float32"))) for w in weights]))
    return ops.zeros_like(ops.cast(batch_like, "float32")) + total
