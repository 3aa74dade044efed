"""The convolutional VAE of GDL_code's digits model, with the study's activation/normalization switches.

`VAEConfig` holds every setting (written to a run's `params.json`); `build_encoder` and
`build_decoder` turn it into Keras functional models; `VariationalAutoencoder` trains them with a
`train_step`/`test_step` pair that tracks `loss`, `r_loss` and `kl_loss`.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from models.activations import ACTIVATIONS, activation_layer
from models.losses import RECONSTRUCTION_LOSSES, kl_divergence, reconstruction_loss
from models.normalization import NORMS, normalization_layer

NORM_POSITIONS = ("before", "after")


@dataclass(frozen=True)
class VAEConfig:
    """Every setting of a conv VAE; defaults are the study's base model (GDL_code's digits VAE)."""

    input_shape: tuple = (28, 28, 1)
    encoder_conv_filters: tuple = (32, 64, 64, 64)
    encoder_conv_kernel_size: tuple = (3, 3, 3, 3)
    encoder_conv_strides: tuple = (1, 2, 2, 1)
    decoder_conv_t_filters: tuple = (64, 64, 32, 1)  # the last one is set to the image's channels
    decoder_conv_t_kernel_size: tuple = (3, 3, 3, 3)
    decoder_conv_t_strides: tuple = (1, 2, 2, 1)
    z_dim: int = 2
    encoder_act: str = "lrelu"
    decoder_act: str = "lrelu"
    norm: str = "none"
    norm_pos: str = "after"
    dropout: float = 0.0
    loss: str = "mse"
    r_loss_factor: float = 1000.0
    beta: float = 1.0
    warmup_epochs: int = 0

    def __post_init__(self):
        for name in ("input_shape", "encoder_conv_filters", "encoder_conv_kernel_size",
                     "encoder_conv_strides", "decoder_conv_t_filters",
                     "decoder_conv_t_kernel_size", "decoder_conv_t_strides"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        _check_choice("encoder_act", self.encoder_act, ACTIVATIONS)
        _check_choice("decoder_act", self.decoder_act, ACTIVATIONS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("norm_pos", self.norm_pos, NORM_POSITIONS)
        _check_choice("loss", self.loss, RECONSTRUCTION_LOSSES)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels); got {self.input_shape}")
        if self.z_dim < 1:
            raise ValueError(f"z_dim must be at least 1; got {self.z_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.r_loss_factor <= 0 or self.beta < 0 or self.warmup_epochs < 0:
            raise ValueError("r_loss_factor must be > 0, beta >= 0 and warmup_epochs >= 0")
        for part in ("encoder_conv", "decoder_conv_t"):
            sizes = {len(getattr(self, f"{part}_{k}")) for k in ("filters", "kernel_size", "strides")}
            if len(sizes) != 1:
                raise ValueError(f"{part}_filters, _kernel_size and _strides must have equal lengths")

    def for_images(self, image_shape):
        """This config with the input shape of the data and a matching number of output channels."""
        filters = self.decoder_conv_t_filters[:-1] + (int(image_shape[-1]),)
        return dataclasses.replace(self, input_shape=tuple(image_shape), decoder_conv_t_filters=filters)

    def to_dict(self):
        """Plain JSON-ready values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        """The config from `to_dict`'s output; unknown keys are an error, missing ones take defaults."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown VAE settings: {', '.join(sorted(unknown))}")
        return cls(**values)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@keras.saving.register_keras_serializable(package="vae")
class Sampling(layers.Layer):
    """Draws z = mu + exp(log_var / 2) * eps with eps ~ N(0, I): the reparameterization trick."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mu, log_var = inputs
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.seed_generator)
        return mu + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _conv_block(x, conv, act, config, prefix, i, for_export):
    """conv -> [norm] -> act -> [norm] -> [dropout], as `config.norm_pos` and `config.dropout` say."""
    x = conv(x)
    norm_name = f"{prefix}_{'bn' if config.norm == 'batch' else 'ln'}_{i}"
    if config.norm != "none" and config.norm_pos == "before":
        x = normalization_layer(config.norm, norm_name, for_export)(x)
    x = activation_layer(act, f"{prefix}_act_{i}", for_export)(x)
    if config.norm != "none" and config.norm_pos == "after":
        x = normalization_layer(config.norm, norm_name, for_export)(x)
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name=f"{prefix}_dropout_{i}")(x)
    return x


def build_encoder(config, for_export=False):
    """Encoder model: image -> [mu, log_var, z]."""
    images = keras.Input(shape=config.input_shape, name="encoder_input")
    x = images
    for i, (filters, kernel, stride) in enumerate(zip(
            config.encoder_conv_filters, config.encoder_conv_kernel_size, config.encoder_conv_strides)):
        conv = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"encoder_conv_{i}")
        x = _conv_block(x, conv, config.encoder_act, config, "encoder", i, for_export)
    x = layers.Flatten(name="encoder_flatten")(x)
    mu = layers.Dense(config.z_dim, name="mu")(x)
    log_var = layers.Dense(config.z_dim, name="log_var")(x)
    z = Sampling(name="z")([mu, log_var])
    return keras.Model(images, [mu, log_var, z], name="encoder")


def encoder_feature_shape(config):
    """Shape of the last encoder feature map, which the decoder's first Dense layer mirrors."""
    height, width = config.input_shape[:2]
    for stride in config.encoder_conv_strides:  # "same" padding: ceil(size / stride)
        height, width = -(-height // stride), -(-width // stride)
    return height, width, config.encoder_conv_filters[-1]


def build_decoder(config, for_export=False):
    """Decoder model: z -> image in [0, 1]; built-in layers only, so the saved file loads anywhere."""
    feature_shape = encoder_feature_shape(config)
    z = keras.Input(shape=(config.z_dim,), name="decoder_input")
    x = layers.Dense(int(np.prod(feature_shape)), name="decoder_dense")(z)
    x = layers.Reshape(feature_shape, name="decoder_reshape")(x)
    n_layers = len(config.decoder_conv_t_filters)
    for i, (filters, kernel, stride) in enumerate(zip(
            config.decoder_conv_t_filters, config.decoder_conv_t_kernel_size,
            config.decoder_conv_t_strides)):
        last = i == n_layers - 1
        conv = layers.Conv2DTranspose(filters, kernel, strides=stride, padding="same",
                                      activation="sigmoid" if last else None,
                                      name=f"decoder_conv_t_{i}")
        x = conv(x) if last else _conv_block(x, conv, config.decoder_act, config, "decoder", i, for_export)
    decoder = keras.Model(z, x, name="decoder")
    if tuple(decoder.output_shape[1:]) != tuple(config.input_shape):
        raise ValueError(
            f"the decoder produces {decoder.output_shape[1:]} images but the input is "
            f"{config.input_shape}; choose strides so the decoder undoes the encoder")
    return decoder


@keras.saving.register_keras_serializable(package="vae")
class VariationalAutoencoder(keras.Model):
    """A conv VAE: `config` (a `VAEConfig`) decides the architecture, the activations and the loss."""

    def __init__(self, config=None, **kwargs):
        kwargs.setdefault("name", "vae")
        super().__init__(**kwargs)
        self.config = config if config is not None else VAEConfig()
        self.encoder = build_encoder(self.config)
        self.decoder = build_decoder(self.config)
        # The KL weight lives in a variable so a warm-up callback can change it without retracing.
        self.kl_beta = self.add_weight(name="kl_beta", shape=(), trainable=False,
                                       initializer=keras.initializers.Constant(self.config.beta))
        # The optimizer step at which the loss first turned NaN/inf (-1: never), recorded inside the
        # compiled step, so the exact batch is known even with many steps per execution.
        self.first_nonfinite_step = self.add_weight(name="first_nonfinite_step", shape=(), dtype="int64",
                                                    trainable=False, initializer="zeros")
        self.first_nonfinite_step.assign(-1)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.r_loss_tracker = keras.metrics.Mean(name="r_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.r_loss_tracker, self.kl_loss_tracker]

    def call(self, inputs, training=False):
        _, _, z = self.encoder(inputs, training=training)
        return self.decoder(z, training=training)

    def per_sample_losses(self, images, training=False):
        """Per-image (total, reconstruction, KL); total = reconstruction + beta * KL."""
        mu, log_var, z = self.encoder(images, training=training)
        reconstructions = self.decoder(z, training=training)
        r_loss = reconstruction_loss(self.config.loss, images, reconstructions, self.config.r_loss_factor)
        kl_loss = kl_divergence(mu, log_var)
        return r_loss + ops.cast(self.kl_beta, "float32") * kl_loss, r_loss, kl_loss

    def train_step(self, data):
        images = _images(data)
        with tf.GradientTape() as tape:
            total, r_loss, kl_loss = self.per_sample_losses(images, training=True)
            scaled = self.optimizer.scale_loss(ops.mean(total))  # loss scaling under mixed_float16
        step = ops.cast(self.optimizer.iterations, "int64")
        first_bad = (self.first_nonfinite_step < 0) & ~ops.isfinite(ops.mean(total))
        self.first_nonfinite_step.assign(ops.where(first_bad, step, self.first_nonfinite_step))
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(total, r_loss, kl_loss)

    def test_step(self, data):
        return self._track(*self.per_sample_losses(_images(data), training=False))

    def _track(self, total, r_loss, kl_loss):
        # Per-image values, so an epoch's figure is the mean over every image, a short last batch included.
        self.loss_tracker.update_state(total)
        self.r_loss_tracker.update_state(r_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}

    def build_all(self):
        """Create every weight by running one dummy batch through the model."""
        self(ops.zeros((1,) + self.config.input_shape))

    def export_models(self):
        """Encoder and decoder rebuilt with stock Keras layers and this model's weights, for `.h5` files."""
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # saved files hold plain float32 models
        try:
            encoder = build_encoder(self.config, for_export=True)
            decoder = build_decoder(self.config, for_export=True)
        finally:
            keras.config.set_dtype_policy(policy)
        encoder.set_weights(self.encoder.get_weights())
        decoder.set_weights(self.decoder.get_weights())
        return encoder, decoder

    def get_config(self):
        return {"name": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(VAEConfig.from_dict(config["config"]), name=config.get("name", "vae"))

    @classmethod
    def load(cls, run_dir):
        """The model of a run folder: rebuilt from `params.json`, weights from `models/vae.weights.h5`."""
        run_dir = Path(run_dir)
        params = json.loads((run_dir / "params.json").read_text())
        model = cls(VAEConfig.from_dict(params["model"]))
        model.build_all()
        model.load_weights(run_dir / "models" / "vae.weights.h5")
        return model


def _images(data):
    """The images of a batch, whether `fit` hands over `x` or `(x,)`."""
    return data[0] if isinstance(data, (tuple, list)) else data
