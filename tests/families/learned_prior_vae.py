"""A family kept outside the project, to test the model contract: a VAE whose prior N(0, diag(s^2)) has a
learned scale s per latent dimension. Load it with `VAE_FAMILY_MODULES=learned_prior_vae` and this folder
on PYTHONPATH; it registers the family, a preset and a suite, and nothing in the project knows its name."""

import math

import keras
from keras import ops

from models import register_family
from models.VAE import VariationalAutoencoder
from models.presets import register_preset
from utils.experiments.suites import register_suite


@register_family("learned_prior_vae")
@keras.saving.register_keras_serializable(package="plugins")
class LearnedPriorVAE(VariationalAutoencoder):
    """The study's VAE with the prior's per-dimension log-scale trained with the rest."""

    sampling_note = "z ~ N(0, diag(s^2)), the learned prior"

    def build_networks(self):
        super().build_networks()
        self.prior_log_scale = self.add_weight(name="prior_log_scale", shape=(self.config.z_dim,),
                                               initializer="zeros")

    def prior_kl(self, mean, log_var):
        """KL(N(mean, exp(log_var)) || N(0, s^2)) per image."""
        mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
        log_s = ops.cast(self.prior_log_scale, "float32")
        per_dim = log_s - 0.5 * log_var + (ops.exp(log_var) + ops.square(mean)) / (2 * ops.exp(2 * log_s)) - 0.5
        return ops.sum(per_dim, axis=-1)

    def log_prior(self, z):
        log_s = ops.cast(self.prior_log_scale, "float32")
        z = ops.cast(z, "float32")
        return ops.sum(-0.5 * math.log(2 * math.pi) - log_s - 0.5 * ops.square(z / ops.exp(log_s)), axis=-1)

    def sample_codes(self, n, rng):
        scale = ops.convert_to_numpy(ops.exp(self.prior_log_scale))
        return (rng.standard_normal((n, self.config.z_dim)) * scale).astype("float32")

    def latent_grid(self, n):
        grid = super().latent_grid(n)
        return None if grid is None else grid * ops.convert_to_numpy(ops.exp(self.prior_log_scale))


register_preset("learned_prior_vae", {"family": "learned_prior_vae"})
register_suite("learned_prior", ["conv_vae", "learned_prior_vae"])
