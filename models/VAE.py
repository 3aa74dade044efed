"""The variational autoencoder (and beta-VAE): Gaussian codes, a KL term and an optional warm-up.

With a `ConvArchitecture` and the defaults this is the study's model, GDL_code's digits VAE; with a
`DenseArchitecture` it is the dense VAE framework or the small binarized-MNIST VAE (utils/experiments/
presets.py). The loss is `r_loss + beta * kl_loss [+ decoder_l2 * l2_loss]`, each per image.
"""

import dataclasses
import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from models import likelihoods, penalties
from models.base import AutoencoderModel, batches, first, no_gradients, to_numpy
from models.gaussian import log_normal, log_standard_normal, quantile_grid
from models.layers import Sampling
from models.registry import register_family
from models.settings import FRACTION, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, check_fields, setting

# Importance samples decoded at once (draws x images per call): a conv decoder ran 1.4x faster with 2,500 a call
# than with 10,000, whose activations do not stay in the CPU caches (docs/benchmarks.md).
DECODES_PER_CALL = 2_500
ACTIVE_UNIT_THRESHOLD = 0.01  # a latent dimension whose posterior mean varies more than this is active
ACTIVE_KL_THRESHOLD = 0.01  # nats: a latent dimension whose mean KL exceeds this is active by KL


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
class VariationalAutoencoder(AutoencoderModel):
    """A VAE: the encoder ends in mu, log_var and a `Sampling` layer; the KL weight can warm up."""

    Objective = VAEObjective
    encoder_outputs = ("mean", "log_var", "z")
    code_name = "mean"
    has_likelihood = True
    sampling_note = "z ~ N(0, I), the VAE's prior"

    @classmethod
    def check_config(cls, config):
        if config.architecture.encoder_head != "dense":
            raise ValueError("a VAE's encoder ends in Dense heads for the mean and log-variance: drop --encoder-head")

    def build_networks(self):
        self.encoder = self.build_encoder()
        self.decoder = self.config.architecture.decoder(likelihoods.decoder_outputs(self.config.objective.loss))
        # The KL weight lives in a variable so a warm-up can change it without retracing.
        self.kl_beta = self.add_weight(name="kl_beta", shape=(), trainable=False,
                                       initializer=keras.initializers.Constant(self.config.objective.beta))

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

    def term_names(self):
        return ("r_loss", "kl_loss") + (("l2_loss",) if self.config.objective.decoder_l2 else ())

    def loss_terms(self, images, outputs):
        objective = self.config.objective
        terms = {"r_loss": (likelihoods.reconstruction_loss(objective.loss, images, outputs["outputs"],
                                                            objective.r_loss_factor, objective.sigma), None),
                 "kl_loss": (self.prior_kl(outputs["mean"], outputs["log_var"]), self.kl_beta)}
        if objective.decoder_l2:
            terms["l2_loss"] = (penalties.l2_weights(self.decoder.trainable_weights, terms["kl_loss"][0]),
                                objective.decoder_l2)
        return terms

    def on_epoch_start(self, epoch, epochs):
        """beta * min(1, epoch / L), epochs counted from 0: a warm-up of L epochs (0 .. L-1) raises beta from 0,
        and from epoch L on beta is full and stays so."""
        length = self.config.objective.warmup_length(epochs)
        if length:
            self.kl_beta.assign(self.config.objective.beta * min(1.0, epoch / length))

    def first_comparable_epoch(self, epochs):
        """The first epoch (from 1) with beta at its full value: a val_loss during the warm-up weighs the KL
        less, so it would look best early."""
        return math.ceil(self.config.objective.warmup_length(epochs)) + 1

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

    def scoring_likelihood(self, binary, validation_images):
        """Bernoulli on binary data; on grey data a discretized Gaussian with the model's own sigma, or (mse, rmse,
        bce) one sigma fitted on the validation images: the root mean squared error of their reconstructions
        from one posterior draw each, the sigma that maximises a Gaussian decoder's expected log-likelihood."""
        objective = self.config.objective

        def fitted():
            with no_gradients():
                errors = [np.mean(np.square(b - to_numpy(first(self.forward(b)["outputs"]))))
                          for b in batches(validation_images, 1000)]
            sizes = [len(b) for b in batches(validation_images, 1000)]
            return float(np.sqrt(np.average(errors, weights=sizes))), f"fitted on {len(validation_images)} validation images"

        return likelihoods.scoring_likelihood(objective.loss, binary, objective.sigma, fitted)

    def training_likelihood(self):
        """The `Likelihood` the loss maximises (a ValueError for mse/rmse)."""
        return likelihoods.training_likelihood(self.config.objective.loss, self.config.objective.sigma)

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
