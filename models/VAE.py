"""The variational autoencoder (and beta-VAE): Gaussian codes, a KL term and an optional warm-up.

With a `ConvArchitecture` and the defaults this is the study's model, GDL_code's digits VAE; with a
`DenseArchitecture` it is the dense VAE framework or the small binarized-MNIST VAE (utils/presets.py).
The loss is `r_loss + beta * kl_loss [+ decoder_l2 * l2_loss]`, each per image.
"""

import dataclasses
from dataclasses import dataclass

import keras
from keras import layers

from models import likelihoods, penalties
from models.architectures import check_choice
from models.base import AutoencoderModel
from models.layers import Sampling


@dataclass(frozen=True)
class VAEObjective:
    """The VAE's loss settings; the defaults are the study's (1000 * MSE + KL)."""

    loss: str = "mse"
    r_loss_factor: float = 1000.0  # weight of mse/rmse
    sigma: float = 1.0  # the `gaussian` likelihood's fixed standard deviation
    beta: float = 1.0
    warmup_epochs: int = 0  # beta rises linearly from 0 over this many epochs ...
    warmup_fraction: float = 0.0  # ... or over this share of the run's epochs (e.g. 3/7)
    decoder_l2: float = 0.0  # weight of sum(w^2) over the decoder's weights

    def __post_init__(self):
        check_choice("loss", self.loss, likelihoods.LOSSES)
        if self.r_loss_factor <= 0 or self.sigma <= 0:
            raise ValueError("r_loss_factor and sigma must be > 0")
        if self.beta < 0 or self.warmup_epochs < 0 or self.decoder_l2 < 0:
            raise ValueError("beta, warmup_epochs and decoder_l2 must be >= 0")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1]; got {self.warmup_fraction}")
        if self.warmup_epochs and self.warmup_fraction:
            raise ValueError("give the warm-up in epochs or as a fraction of the run, not both")

    def to_dict(self):
        """Plain JSON-ready values."""
        return dataclasses.asdict(self)

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        beta = "" if self.beta == 1 else f"{self.beta:g} × "
        text = f"{likelihoods.describe(self.loss, self.r_loss_factor, self.sigma)} + {beta}KL"
        if self.warmup_epochs or self.warmup_fraction:
            text += " (KL weight warming up)"
        return text + (f" + {self.decoder_l2:g} × decoder Σw²" if self.decoder_l2 else "")

    def warmup_length(self, epochs):
        """Warm-up length in epochs (may be fractional) for a run of `epochs`; 0 means none."""
        return self.warmup_epochs or self.warmup_fraction * epochs


@keras.saving.register_keras_serializable(package="vae")
class VariationalAutoencoder(AutoencoderModel):
    """A VAE: the encoder ends in mu, log_var and a `Sampling` layer; the KL weight can warm up."""

    Objective = VAEObjective
    has_prior = True

    def build_encoder(self):
        architecture = self.config.architecture
        images = keras.Input(shape=architecture.input_shape, name="encoder_input")
        x = architecture.encoder_body(images)
        mu = layers.Dense(architecture.z_dim, name="mu")(x)
        log_var = layers.Dense(architecture.z_dim, name="log_var")(x)
        z = Sampling(name="z")([mu, log_var])
        return keras.Model(images, [mu, log_var, z], name="encoder")

    def build_state(self):
        # The KL weight lives in a variable so a warm-up can change it without retracing.
        self.kl_beta = self.add_weight(name="kl_beta", shape=(), trainable=False,
                                       initializer=keras.initializers.Constant(self.config.objective.beta))

    def term_names(self):
        return ("r_loss", "kl_loss") + (("l2_loss",) if self.config.objective.decoder_l2 else ())

    def loss_terms(self, images, training):
        objective = self.config.objective
        mu, log_var, z = self.encoder(images, training=training)
        outputs = self.decoder(z, training=training)
        terms = {"r_loss": (likelihoods.reconstruction_loss(objective.loss, images, outputs,
                                                            objective.r_loss_factor, objective.sigma), None),
                 "kl_loss": (penalties.gaussian_kl(mu, log_var), self.kl_beta)}
        if objective.decoder_l2:
            terms["l2_loss"] = (penalties.l2_weights(self.decoder.trainable_weights, terms["kl_loss"][0]),
                                objective.decoder_l2)
        return terms

    def on_epoch_start(self, epoch, epochs):
        """beta * min(1, epoch / warm-up length), epochs counted from 0."""
        length = self.config.objective.warmup_length(epochs)
        if length:
            self.kl_beta.assign(self.config.objective.beta * min(1.0, epoch / length))
