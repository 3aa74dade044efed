"""The autoencoder family: plain (GDL chapter 3), denoising and sparse autoencoders.

One model, three objectives chosen by settings: `noise` corrupts the input while training only
(`gaussian:SIGMA` adds N(0, SIGMA^2) noise, `dropout:RATE` zeroes pixels as Keras's Dropout does) and
the target stays the clean image; `sparsity` adds a penalty on the code (`l1:WEIGHT`, or
`kl:TARGET:WEIGHT` on the batch-mean activation of a sigmoid code). An AE has no prior, so codes to
decode are drawn from a Gaussian fitted to the training codes (utils/analysis.py).
"""

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from models import likelihoods, penalties
from models.architectures import check_choice
from models.base import AutoencoderModel

CODE_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")
NOISES = ("gaussian", "dropout")
SPARSITIES = ("l1", "kl")


def parse_noise(text):
    """`none`, `gaussian:SIGMA` or `dropout:RATE` -> (kind, value) or None; ValueError if malformed."""
    if text in (None, "none"):
        return None
    kind, _, value = text.partition(":")
    try:
        amount = float(value)
    except ValueError:
        amount = None
    if kind not in NOISES or amount is None or amount <= 0 or (kind == "dropout" and amount >= 1):
        raise ValueError(f"noise must be none, gaussian:SIGMA (SIGMA > 0) or dropout:RATE (0 < RATE < 1); got {text!r}")
    return kind, amount


def parse_sparsity(text):
    """`none`, `l1:WEIGHT` or `kl:TARGET:WEIGHT` -> (kind, weight, target or None); ValueError if malformed."""
    if text in (None, "none"):
        return None
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts[1:]]
    except ValueError:
        numbers = []
    if parts[0] == "l1" and len(numbers) == 1 and numbers[0] > 0:
        return "l1", numbers[0], None
    if parts[0] == "kl" and len(numbers) == 2 and 0 < numbers[0] < 1 and numbers[1] > 0:
        return "kl", numbers[1], numbers[0]
    raise ValueError(f"sparsity must be none, l1:WEIGHT or kl:TARGET:WEIGHT (0 < TARGET < 1, WEIGHT > 0); got {text!r}")


@dataclass(frozen=True)
class AEObjective:
    """An autoencoder's loss settings: a reconstruction term, optional input noise and code sparsity.
    The defaults are GDL chapter 3's autoencoder (mean squared error over pixels, a linear code)."""

    loss: str = "mse"
    r_loss_factor: float = 1.0  # 1: Keras's loss="mse", a mean over pixels, the scale penalty weights assume
    sigma: float = 1.0
    code_activation: str = "linear"
    noise: str = "none"
    sparsity: str = "none"
    decoder_l2: float = 0.0

    def __post_init__(self):
        check_choice("loss", self.loss, likelihoods.LOSSES)
        check_choice("code_activation", self.code_activation, CODE_ACTIVATIONS)
        parse_noise(self.noise)
        sparsity = parse_sparsity(self.sparsity)
        if sparsity and sparsity[0] == "kl" and self.code_activation != "sigmoid":
            raise ValueError("kl sparsity needs activations in (0, 1): set code_activation to sigmoid")
        if self.r_loss_factor <= 0 or self.sigma <= 0 or self.decoder_l2 < 0:
            raise ValueError("r_loss_factor and sigma must be > 0 and decoder_l2 >= 0")

    def to_dict(self):
        """Plain JSON-ready values."""
        return dataclasses.asdict(self)

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        text = likelihoods.describe(self.loss, self.r_loss_factor, self.sigma)
        if self.noise != "none":
            text += f" of the clean image from a {self.noise} input"
        sparsity = parse_sparsity(self.sparsity)
        if sparsity:
            kind, weight, target = sparsity
            text += f" + {weight:g} × " + ("Σ|code|" if kind == "l1" else f"Σ KL({target:g} ‖ mean activation)")
        return text + (f" + {self.decoder_l2:g} × decoder Σw²" if self.decoder_l2 else "")


@keras.saving.register_keras_serializable(package="vae")
class Autoencoder(AutoencoderModel):
    """A deterministic autoencoder: image -> code -> image, plain, denoising or sparse."""

    Objective = AEObjective

    def build_encoder(self):
        architecture = self.config.architecture
        images = keras.Input(shape=architecture.input_shape, name="encoder_input")
        x = architecture.encoder_body(images)
        activation = self.config.objective.code_activation
        code = layers.Dense(architecture.z_dim, activation=None if activation == "linear" else activation,
                            name="code")(x)
        return keras.Model(images, code, name="encoder")

    def build_state(self):
        noise = parse_noise(self.config.objective.noise)
        # Keras's noise layers act only when training=True: validation and exports see clean images.
        self.corruption = None if noise is None else (
            layers.GaussianNoise(noise[1], name="input_noise") if noise[0] == "gaussian"
            else layers.Dropout(noise[1], name="input_noise"))

    def term_names(self):
        objective = self.config.objective
        return (("r_loss",) + (("sparsity_loss",) if parse_sparsity(objective.sparsity) else ())
                + (("l2_loss",) if objective.decoder_l2 else ()))

    def corrupt(self, images, training):
        """The encoder's input: `images` with the training noise, or unchanged."""
        return images if self.corruption is None else self.corruption(images, training=training)

    def loss_terms(self, images, training):
        objective = self.config.objective
        code = self.encoder(self.corrupt(images, training), training=training)
        outputs = self.decoder(code, training=training)
        # The target is the clean image, whatever the encoder saw.
        r_loss = likelihoods.reconstruction_loss(objective.loss, images, outputs, objective.r_loss_factor,
                                                 objective.sigma)
        terms = {"r_loss": (r_loss, None)}
        sparsity = parse_sparsity(objective.sparsity)
        if sparsity:
            kind, weight, target = sparsity
            value = penalties.l1_activity(code) if kind == "l1" else penalties.kl_sparsity(code, target)
            terms["sparsity_loss"] = (value, weight)
        if objective.decoder_l2:
            terms["l2_loss"] = (penalties.l2_weights(self.decoder.trainable_weights, r_loss), objective.decoder_l2)
        return terms

    def figures(self, images):
        """The denoising figure for a denoising AE, a histogram of code activations for a sparse one."""
        from utils.analysis import latent_means
        from utils.plots import plot_code_histogram, plot_denoising

        figures = {}
        if self.corruption is not None:
            noisy = np.asarray(self.corrupt(images[:10], training=True))
            outputs = np.asarray(self(noisy, training=False))
            figures["denoising.png"] = plot_denoising(noisy, outputs, images[:10])
        if parse_sparsity(self.config.objective.sparsity):
            figures["code_histogram.png"] = plot_code_histogram(latent_means(self.encoder, images))
        return figures
