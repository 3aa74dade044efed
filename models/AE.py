"""The autoencoder family: plain (GDL chapter 3), denoising and sparse autoencoders.

One model, three objectives chosen by settings: `noise` corrupts the input while training only
(`gaussian:SIGMA` adds N(0, SIGMA^2) noise, `dropout:RATE` zeroes pixels as Keras's Dropout does) and
the target stays the clean image; `sparsity` adds a penalty on the code (`l1:WEIGHT`, or
`kl:TARGET:WEIGHT` on the batch-mean activation of a sigmoid code). An AE has no prior, so the codes it
decodes into new images are drawn from a Gaussian fitted to its training codes at the end of training,
kept with its weights (`CodeGaussian`).
"""

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from models import likelihoods, penalties
from models.architectures import check_encoder_body
from models.base import AutoencoderModel, to_numpy
from models.gaussian import quantile_grid, sample_gaussian
from models.registry import register_family
from models.settings import NON_NEGATIVE, POSITIVE, check_fields, setting

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

    loss: str = setting("mse", "reconstruction term (models/likelihoods.py)", choices=likelihoods.LOSSES)
    # 1: Keras's loss="mse", a mean over pixels, the scale the penalty weights assume
    r_loss_factor: float = setting(1.0, "weight of mse/rmse (VAE default 1000, AE 1)", check=POSITIVE)
    sigma: float = setting(1.0, "the gaussian loss's fixed pixel standard deviation", check=POSITIVE)
    code_activation: str = setting("linear", "AE: the code's activation", choices=CODE_ACTIVATIONS)
    noise: str = setting("none", "denoising AE: gaussian:SIGMA or dropout:RATE on the input while training")
    sparsity: str = setting("none", "sparse AE: l1:WEIGHT or kl:TARGET:WEIGHT on the code")
    decoder_l2: float = setting(0.0, "weight of sum(w^2) over the decoder's weights", check=NON_NEGATIVE)

    def __post_init__(self):
        check_fields(self)
        parse_noise(self.noise)
        sparsity = parse_sparsity(self.sparsity)
        if sparsity and sparsity[0] == "kl" and self.code_activation != "sigmoid":
            raise ValueError("kl sparsity needs activations in (0, 1): set code_activation to sigmoid")

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
class CodeGaussian(layers.Layer):
    """The Gaussian fitted to an autoencoder's training codes (mean and covariance), saved with its weights."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.mean = self.add_weight(name="mean", shape=(dim,), initializer="zeros", trainable=False)
        self.cov = self.add_weight(name="cov", shape=(dim, dim), initializer="zeros", trainable=False)
        self.fitted = self.add_weight(name="fitted", shape=(), initializer="zeros", trainable=False)
        self.built = True  # its weights do not depend on an input shape

    def set(self, mean, cov):
        """Take a fitted mean and covariance."""
        self.mean.assign(np.asarray(mean, "float32"))
        self.cov.assign(np.atleast_2d(np.asarray(cov, "float32")))
        self.fitted.assign(1.0)

    def load_own_variables(self, store):
        if len(store) == 0:  # weights saved before the Gaussian was kept with them: not fitted yet
            return
        super().load_own_variables(store)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@register_family("ae")
@register_family("dae")
@register_family("sae")
@keras.saving.register_keras_serializable(package="vae")
class Autoencoder(AutoencoderModel):
    """A deterministic autoencoder: image -> code -> image, plain, denoising or sparse."""

    Objective = AEObjective
    sampling_note = ("codes ~ a Gaussian fitted to the training codes: an autoencoder has no prior, so N(0, I) "
                     "would decode to nonsense")

    @classmethod
    def check_config(cls, config):
        check_encoder_body(config.architecture, config.family)
        if config.family == "dae" and config.objective.noise == "none":
            raise ValueError("a denoising autoencoder needs input noise: --noise gaussian:0.3 or dropout:0.5")
        if config.family == "sae" and config.objective.sparsity == "none":
            raise ValueError("a sparse autoencoder needs a penalty: --sparsity l1:1e-4 or kl:0.05:1.0")

    def build_networks(self):
        self.encoder = self.build_encoder()
        self.decoder = self.config.architecture.decoder(likelihoods.decoder_outputs(self.config.objective.loss))
        noise = parse_noise(self.config.objective.noise)
        # Keras's noise layers act only when training=True: validation and exports see clean images.
        self.corruption = None if noise is None else (
            layers.GaussianNoise(noise[1], name="input_noise") if noise[0] == "gaussian"
            else layers.Dropout(noise[1], name="input_noise"))
        self.code_gaussian = CodeGaussian(self.config.z_dim, name="code_gaussian")

    def build_encoder(self):
        """The architecture's body, then a Dense code with the objective's activation."""
        architecture = self.config.architecture
        images = keras.Input(shape=architecture.input_shape, name="encoder_input")
        x = architecture.encoder_body(images)
        activation = self.config.objective.code_activation
        if architecture.encoder_head == "none":  # the body's output is the code
            if x.shape[-1] != architecture.z_dim:
                raise ValueError(f"with encoder_head none the code is the body's output of {x.shape[-1]} units; set "
                                 f"z_dim to {x.shape[-1]}")
            code = layers.Activation(activation, name="code")(x)
        else:
            code = layers.Dense(architecture.z_dim, activation=None if activation == "linear" else activation,
                                name="code")(x)
        return keras.Model(images, code, name="encoder")

    def corrupt(self, images, training):
        """The encoder's input: `images` with the training noise, or unchanged."""
        return images if self.corruption is None else self.corruption(images, training=training)

    def forward(self, images, training=False):
        code = self.encoder(self.corrupt(images, training), training=training)
        return {"code": code, "outputs": self.decoder(code, training=training)}

    def loss_terms(self, images, outputs):
        objective = self.config.objective
        # The target is the clean image, whatever the encoder saw.
        r_loss = likelihoods.reconstruction_loss(objective.loss, images, outputs["outputs"], objective.r_loss_factor,
                                                 objective.sigma)
        terms = {"r_loss": (r_loss, None)}
        sparsity = parse_sparsity(objective.sparsity)
        if sparsity:
            kind, weight, target = sparsity
            code = outputs["code"]
            value = penalties.l1_activity(code) if kind == "l1" else penalties.kl_sparsity(code, target)
            terms["sparsity_loss"] = (value, weight)
        if objective.decoder_l2:
            terms["l2_loss"] = (penalties.l2_weights(self.decoder.trainable_weights, r_loss), objective.decoder_l2)
        return terms

    # --- the contract ----------------------------------------------------------------------------------
    def fit_code_distribution(self, images):
        """Fit the Gaussian that new codes are drawn from to the codes of `images` (training images)."""
        codes = self.latent_means(images).astype("float64")
        self.code_gaussian.set(codes.mean(axis=0), np.cov(codes, rowvar=False))

    def restore_legacy_state(self, state):
        """Run folders made before the Gaussian was kept with the weights stored it in code_gaussian.json."""
        if "code_gaussian" in state and not self.code_fitted:
            self.code_gaussian.set(state["code_gaussian"]["mean"], state["code_gaussian"]["cov"])

    @property
    def code_fitted(self):
        """Whether the code Gaussian has been fitted (at the end of training)."""
        return bool(to_numpy(self.code_gaussian.fitted) > 0)

    def code_moments(self):
        """(mean, covariance) of the fitted code Gaussian, as float64 NumPy arrays."""
        if not self.code_fitted:
            raise ValueError("an autoencoder has no prior: its codes are drawn from a Gaussian fitted to its "
                             "training codes when training ends, and this one has not finished; finish it with "
                             "--resume")
        return to_numpy(self.code_gaussian.mean).astype("float64"), to_numpy(self.code_gaussian.cov).astype("float64")

    def sample_codes(self, n, rng):
        """Codes from the Gaussian fitted to the training codes (an AE has no prior)."""
        return sample_gaussian(n, rng, *self.code_moments())

    def latent_grid(self, n):
        """Normal quantiles of the fitted Gaussian's marginals on each axis of a 2-D code."""
        if self.config.z_dim != 2:
            return None
        mean, cov = self.code_moments()
        return quantile_grid(n, mean, np.sqrt(np.diag(cov)))

    def diagnostics(self, images):
        """A denoising AE's noisy inputs, outputs and clean images; a sparse AE's code activations."""
        figures = {}
        if self.corruption is not None:
            clean = np.asarray(images[:10], "float32")
            noisy = to_numpy(self.corrupt(clean, training=True))
            figures["denoising.png"] = ("image_rows", {
                "rows": [noisy, self.reconstruct(noisy), clean],
                "title": "noisy input (top), output (middle), clean image (bottom)"})
        if parse_sparsity(self.config.objective.sparsity):
            figures["code_histogram.png"] = ("activations", self.latent_means(images))
        return figures
