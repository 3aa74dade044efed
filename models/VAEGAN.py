"""The VAE-GAN (Larsen, Sønderby, Larochelle and Winther, 2016, "Autoencoding beyond pixels using a learned
similarity metric"): a VAE whose reconstruction term compares images in a hidden layer of a discriminator
that is trained, beside it, to tell the data from reconstructions and from samples of the prior.

With x̃ = Dec(z), z ~ q(z | x), x_p = Dec(z_p), z_p ~ N(0, I), Dis_l a hidden layer of the discriminator:

    encoder:        KL(q(z | x) || p(z))  +  ½ ||Dis_l(x) − Dis_l(x̃)||²
    decoder:        γ · ½ ||Dis_l(x) − Dis_l(x̃)||²  −  log Dis(x̃)  −  log Dis(x_p)
    discriminator:  −log Dis(x)  −  log(1 − Dis(x̃))  −  log(1 − Dis(x_p))

(the decoder's GAN term in its non-saturating form, −log Dis(fake), as GAN practice has it). The paper's
Algorithm 1 updates the three networks at once from gradients at the same weights, each by its own loss.

Why one objective and one optimizer, on every backend: Keras's `compute_loss` serves one optimizer, and
Keras has no backend-neutral gradient API, so three optimizers would need a train step per backend. Here each
term reaches only its own network: the networks it must not train are run on stopped copies of their weights
(`stateless_call` with `stop_gradient`) or fed stopped inputs, so the gradient of the sum with respect to each
network's weights is exactly that network's loss's gradient. Adam and RMSProp act on every weight alone
(their state is per weight), so one of them over the three networks is three optimizers of the same settings:
Algorithm 1, through the same `fit`, run folder, resume, callbacks and scoring as every family.
`tests/test_vae_gan.py` checks that each term moves only its own network. The discriminator is part of the
model (its weights are in `model.weights.h5`); `decoder.h5` is the plain decoder, as every family's.
"""

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from models.base import batches, first, to_numpy
from models.registry import register_family
from models.settings import NON_NEGATIVE, POSITIVE_INT, setting
from models.VAE import VAEObjective, VariationalAutoencoder

EPSILON = 1e-7  # as Keras's binary cross-entropy clips probabilities
DIS_WON = 0.01  # nats: a discriminator loss below this has won the game outright


@dataclass(frozen=True)
class VAEGANObjective(VAEObjective):
    """The VAE-GAN's loss settings: γ, the discriminator's size, and a weight per term (1: the paper's)."""

    gamma: float = setting(1.0, "vae-gan: weight of the decoder's feature term against fooling the "
                                "discriminator (the paper's γ)", check=NON_NEGATIVE)
    dis_filters: tuple = setting((32, 64, 128), "vae-gan: the discriminator's conv filters (stride 2 each)",
                                 check=POSITIVE_INT)
    feature_weight: float = setting(1.0, "vae-gan: weight of the encoder's feature term", check=NON_NEGATIVE)
    gan_weight: float = setting(1.0, "vae-gan: weight of the decoder's term for fooling the discriminator",
                                check=NON_NEGATIVE)
    dis_weight: float = setting(1.0, "vae-gan: weight of the discriminator's loss", check=NON_NEGATIVE)

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        return ("encoder: KL + ½‖Dis_l(x) − Dis_l(x̃)‖²; decoder: "
                f"{self.gamma:g} × ½‖Dis_l(x) − Dis_l(x̃)‖² − log Dis(x̃) − log Dis(x_p); "
                "discriminator: −log Dis(x) − log(1 − Dis(x̃)) − log(1 − Dis(x_p))")


def stopped(model):
    """`model`'s trainable weights as tensors that no gradient flows back through."""
    return [ops.stop_gradient(ops.convert_to_tensor(v)) for v in model.trainable_variables]


def run_frozen(model, inputs, training):
    """`model(inputs)` with its weights held: gradients reach `inputs` only."""
    outputs, _ = model.stateless_call(stopped(model), [v.value for v in model.non_trainable_variables], inputs,
                                      training=training)
    return outputs


@register_family("vae_gan")
@keras.saving.register_keras_serializable(package="vae")
class VAEGAN(VariationalAutoencoder):
    """A VAE whose reconstruction is judged in a discriminator's hidden layer, the discriminator trained beside it."""

    Objective = VAEGANObjective

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config.objective.warmup_epochs or config.objective.warmup_fraction:
            raise ValueError("the VAE-GAN's discriminator has no use for a KL warm-up: drop it")

    def build_networks(self):
        super().build_networks()
        self.discriminator = self.build_discriminator()
        self.prior_draws = keras.random.SeedGenerator(None)

    def build_discriminator(self):
        """image -> (Dis_l: the last conv layer's output, the logit of 'real'); strided convs, LeakyReLU 0.2."""
        images = keras.Input(shape=self.config.architecture.input_shape, name="dis_input")
        x = images
        for i, filters in enumerate(self.config.objective.dis_filters):
            x = layers.Conv2D(filters, 5, strides=2, padding="same", name=f"dis_conv_{i}")(x)
            x = layers.LeakyReLU(0.2, name=f"dis_act_{i}")(x)
        logit = layers.Dense(1, name="dis_logit")(layers.Flatten(name="dis_flatten")(x))
        return keras.Model(images, [x, logit], name="discriminator")

    def forward(self, images, training=False):
        mean, log_var, z = self.encoder(images, training=training)
        z_prior = keras.random.normal(ops.shape(z), seed=self.prior_draws)
        return {"mean": mean, "log_var": log_var, "z": z, "z_prior": z_prior,
                "outputs": self.decoder(z, training=training)}

    def loss_terms(self, images, outputs):
        objective, training = self.config.objective, False
        x = ops.cast(images, "float32")
        z, z_prior = outputs["z"], outputs["z_prior"]
        # The encoder's terms: gradients through z only (decoder and discriminator held).
        rebuilt_for_encoder = first(run_frozen(self.decoder, z, training))
        real_features, _ = run_frozen(self.discriminator, x, training)
        encoder_features, _ = run_frozen(self.discriminator, rebuilt_for_encoder, training)
        # The decoder's terms: its own weights only (z held, the discriminator held).
        rebuilt = first(self.decoder(ops.stop_gradient(z), training=training))
        sampled = first(self.decoder(ops.stop_gradient(z_prior), training=training))
        decoder_features, fake_logit = run_frozen(self.discriminator, rebuilt, training)
        _, sample_logit = run_frozen(self.discriminator, sampled, training)
        # The discriminator's term: its own weights only (every image held).
        _, real = self.discriminator(x, training=training)
        _, fake = self.discriminator(ops.stop_gradient(rebuilt), training=training)
        _, prior = self.discriminator(ops.stop_gradient(sampled), training=training)
        held = ops.stop_gradient(real_features)
        return {
            "kl_loss": (self.prior_kl(outputs["mean"], outputs["log_var"]), self.kl_beta),
            "feature_loss": (feature_distance(held, encoder_features), objective.feature_weight),
            "decoder_feature_loss": (feature_distance(held, decoder_features), objective.gamma),
            "gan_loss": (-log_sigmoid(fake_logit) - log_sigmoid(sample_logit), objective.gan_weight),
            "dis_loss": (-log_sigmoid(real) - log_sigmoid(-fake) - log_sigmoid(-prior), objective.dis_weight),
            **self.decoder_penalty(ops.sum(fake_logit, axis=-1)),
        }

    def first_comparable_epoch(self, epochs):
        """The last epoch: the sum of three networks' opposed losses picks no best epoch, so the run keeps its
        final weights."""
        return epochs

    def latent_summary(self, images):
        """The VAE's figures, and how the game ended: the discriminator's mean loss on these images, their
        reconstructions and prior samples, and whether it won outright (`DIS_WON`, where its opponents have
        no gradient left to learn from)."""
        return {**super().latent_summary(images), **self.game(images)}

    def game(self, images, batch_size=500):
        """{discriminator_loss, discriminator_won} on `images` (in batches)."""
        losses = [to_numpy(self.per_sample_losses(batch)[1]["dis_loss"]) for batch in batches(images, batch_size)]
        dis_loss = float(np.mean(np.concatenate(losses)))
        return {"discriminator_loss": dis_loss, "discriminator_won": bool(dis_loss < DIS_WON)}

    def training_report(self, images):
        """A line where the discriminator won outright or the samples collapsed (their spread below a tenth of
        the images')."""
        lines = []
        if self.game(images)["discriminator_won"]:
            lines.append(f"the discriminator won outright (its loss below {DIS_WON} nats): the encoder and decoder "
                         "learn nothing more from it")
        samples = self.sample(256, seed=0).reshape(256, -1)
        real = np.asarray(images[:256], dtype="float32").reshape(min(256, len(images)), -1)
        if spread(samples) < 0.1 * spread(real):
            lines.append(f"the samples collapsed: their spread is {spread(samples) / spread(real):.3f} of the images'")
        return lines


def spread(flat):
    """The mean per-pixel standard deviation over a set of images (n, pixels)."""
    return float(np.mean(np.std(flat, axis=0)))


def feature_distance(a, b):
    """½ Σ (a − b)² per image over a feature map."""
    a, b = ops.cast(a, "float32"), ops.cast(b, "float32")
    return 0.5 * ops.sum(ops.square(a - b), axis=tuple(range(1, len(a.shape))))


def log_sigmoid(logit):
    """log σ(logit) per image, clipped as Keras clips a probability (at most 1e-7 from 0 or 1)."""
    logit = ops.cast(ops.squeeze(logit, axis=-1), "float32")
    return ops.maximum(ops.log_sigmoid(logit), math.log(EPSILON))
