"""The variational autoencoder (and beta-VAE): Gaussian codes, a KL term and an optional warm-up.

With a `ConvArchitecture` and the defaults this is the study's model, GDL_code's digits VAE; with a
`DenseArchitecture` it is the dense VAE framework or the small binarized-MNIST VAE (utils/experiments/
presets.py). The loss is `r_loss + beta * kl_loss [+ decoder_l2 * l2_loss]`, each per image.
"""

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from models import likelihoods, penalties
from models.architectures import check_encoder_body
from models.base import AutoencoderModel, batches, no_gradients, to_numpy
from models.gaussian import log_normal, log_standard_normal, quantile_grid
from models.layers import Sampling
from models.registry import register_family
from models.settings import FRACTION, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, check_fields, setting
from models.vae_parts import ACTIVE_KL_THRESHOLD, ACTIVE_UNIT_THRESHOLD, DECODES_PER_CALL, KLWarmup, ScoredByLikelihood


@dataclass(frozen=True)
class VAEObjective:
    """The VAE's loss settings; the defaults are the study's (1000 * MSE + KL)."""

    loss: str = setting("mse", "reconstruction term (models/likelihoods.py)", choices=likelihoods.LOSSES)
    r_loss_factor: float = setting(1000.0, "weight of mse/rmse (VAE default 1000, AE 1)", check=POSITIVE)
    sigma: float = setting(1.0, "the gaussian loss's fixed pixel standard deviation", check=POSITIVE)
    beta: float = setting(1.0, "weight of the KL term", check=NON_NEGATIVE)
    warmup_epochs: int = setting(0, "raise beta linearly from 0 over N epochs", check=NON_NEGATIVE_INT)
    warmup_fraction: float = setting(0.0, "... or over this share of the run's epochs (e.g. 3/7)", check=FRACTION)
    warmup_fraction_epochs: float = setting(0.0, "the warm-up fraction in epochs, fixed when the run starts",
                                            check=NON_NEGATIVE, flag=False)
    decoder_l2: float = setting(0.0, "weight of sum(w^2) over the decoder's weights", check=NON_NEGATIVE)

    def __post_init__(self):
        check_fields(self)
        if self.warmup_epochs and self.warmup_fraction:
            raise ValueError("give the warm-up in epochs or as a fraction of the run, not both (a preset's or the "
                             "family's fraction goes with --warmup-fraction 0)")

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        beta = "" if self.beta == 1 else f"{self.beta:g} × "
        text = f"{likelihoods.describe(self.loss, self.r_loss_factor, self.sigma)} + {beta}KL"
        if self.warmup_epochs or self.warmup_fraction:
            text += " (KL weight warming up)"
        return text + (f" + {self.decoder_l2:g} × decoder Σw²" if self.decoder_l2 else "")

    def for_run(self, epochs):
        """These settings as a new run of `epochs` records them: a warm-up given as a fraction fixed in epochs,
        so a resumed or extended run keeps the warm-up it started with."""
        if not self.warmup_fraction or self.warmup_fraction_epochs:
            return self
        return dataclasses.replace(self, warmup_fraction_epochs=self.warmup_fraction * epochs)

    def warmup_length(self, epochs):
        """Warm-up length in epochs (may be fractional) for a run of `epochs`; 0 means none. A run folder made
        before `for_run` (a fraction with no length fixed) stretches its warm-up over `epochs`, as it did."""
        return self.warmup_epochs or self.warmup_fraction_epochs or self.warmup_fraction * epochs


@register_family("vae")
@keras.saving.register_keras_serializable(package="vae")
class VariationalAutoencoder(KLWarmup, ScoredByLikelihood, AutoencoderModel):
    """A VAE: the encoder ends in mu, log_var and a `Sampling` layer; the KL weight can warm up."""

    Objective = VAEObjective
    encoder_outputs = ("mean", "log_var", "z")
    code_name = "mean"
    sampling_note = "z ~ N(0, I), the VAE's prior"

    @classmethod
    def check_config(cls, config):
        check_encoder_body(config.architecture, config.family)
        if config.architecture.encoder_head != "dense":
            raise ValueError("a VAE's encoder ends in Dense heads for the mean and log-variance: drop --encoder-head")

    def build_networks(self):
        self.encoder = self.build_encoder()
        self.decoder = self.config.architecture.decoder(likelihoods.decoder_outputs(self.config.objective.loss))
        self.add_kl_weight()

    def build_encoder(self):
        """The architecture's body, then Dense heads for mu and log_var and the `Sampling` layer."""
        architecture = self.config.architecture
        images = keras.Input(shape=architecture.input_shape, name="encoder_input")
        x = architecture.encoder_body(images)
        mu = layers.Dense(architecture.z_dim, name="mu")(x)
        log_var = layers.Dense(architecture.z_dim, name="log_var")(x)
        z = Sampling(name="z")([mu, log_var])
        return keras.Model(images, [mu, log_var, z], name="encoder")

    def forward(self, images, training=False):
        mu, log_var, z = self.encoder(images, training=training)
        return {"mean": mu, "log_var": log_var, "z": z, "outputs": self.decoder(z, training=training)}

    def loss_terms(self, images, outputs):
        kl = self.prior_kl(outputs["mean"], outputs["log_var"])
        return {"r_loss": (self.pixel_loss(images, outputs), None), "kl_loss": (kl, self.kl_beta),
                **self.decoder_penalty(kl)}

    def pixel_loss(self, images, outputs):
        """The reconstruction term per image (`loss`: 1000 × MSE, BCE, a Gaussian, ...)."""
        objective = self.config.objective
        return likelihoods.reconstruction_loss(objective.loss, images, outputs["outputs"], objective.r_loss_factor,
                                               objective.sigma)

    def decoder_penalty(self, per_image):
        """{"l2_loss": (sum(w^2) over the decoder, its weight)} where `decoder_l2` asks for it (shaped like
        `per_image`), else {}."""
        weight = self.config.objective.decoder_l2
        return {"l2_loss": (penalties.l2_weights(self.decoder.trainable_weights, per_image), weight)} if weight else {}

    # --- the prior: N(0, I); a family with another prior overrides these three ---------------------------
    def prior_kl(self, mean, log_var):
        """KL(q(z | x) || p(z)) per image, in closed form."""
        return penalties.gaussian_kl(mean, log_var)

    def log_prior(self, z):
        """log p(z), summed over the latent dimensions."""
        return log_standard_normal(z)

    def sample_codes(self, n, rng):
        """z ~ p(z) = N(0, I)."""
        return rng.standard_normal((n, self.config.z_dim)).astype("float32")

    def latent_grid(self, n):
        """The prior's normal quantiles on each axis of a 2-D latent space."""
        return quantile_grid(n) if self.config.z_dim == 2 else None

    def log_importance_weights(self, images, samples, rng, likelihood=None):
        """log p(x | z_k) + log p(z_k) - log q(z_k | x) for z_k = mu + sigma * eps_k, eps_k ~ N(0, I)."""
        likelihood = likelihood or self.training_likelihood()
        x = np.asarray(images, dtype="float32")
        eps = rng.standard_normal((samples, len(x), self.config.z_dim)).astype("float32")
        chunks = []
        with no_gradients():
            mu, log_var, _ = self.encoder(x, training=False)
            mu, log_var = ops.cast(mu, "float32"), ops.cast(log_var, "float32")
            for eps_chunk in batches(eps, max(1, DECODES_PER_CALL // len(x))):
                k = len(eps_chunk)
                z = mu[None] + ops.exp(0.5 * log_var)[None] * ops.convert_to_tensor(eps_chunk)  # k x B x z_dim
                outputs = self.decoder(ops.reshape(z, (-1, self.config.z_dim)), training=False)
                x_rep = np.broadcast_to(x[None], (k,) + x.shape).reshape((-1,) + x.shape[1:])
                log_px_z = likelihood.log_prob(x_rep, outputs).reshape(k, -1)
                chunks.append(log_px_z + to_numpy(self.log_prior(z) - log_normal(z, mu[None], log_var[None])))
        return np.concatenate(chunks)

    def latent_summary(self, images):
        """Active units (posterior-mean variance over images > 0.01), the mean KL per latent dimension and the
        dimensions active by KL (> 0.01 nats)."""
        encoded = self.encode(images)
        mu, log_var = encoded["mean"], encoded["log_var"]
        kl = np.mean(0.5 * (mu**2 + np.exp(log_var) - 1.0 - log_var), axis=0)
        return {"active_units": int(np.sum(np.var(mu, axis=0) > ACTIVE_UNIT_THRESHOLD)),
                "active_units_kl": int(np.sum(kl > ACTIVE_KL_THRESHOLD)), "kl_per_dimension": kl.tolist()}
