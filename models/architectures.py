"""Architectures: where the layers of an encoder body and a decoder are decided, apart from any objective.

`ConvArchitecture` builds GDL_code's stacks from filter/kernel/stride lists (the study's model);
`DenseArchitecture` builds MLPs from width lists. Each gives an encoder *body* (image -> flat
features; the family adds its head: mu/log_var for a VAE, a code for an AE) and a decoder
(z -> image, or [mean, log-variance] for a likelihood with a learned variance).
"""

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from models.activations import ACTIVATIONS, DEFAULT_ACTIVATION, activation_layer
from models.normalization import NORMS, normalization_layer
from models.settings import POSITIVE_INT, RATE, check_choice, check_fields, from_fields, plain, setting

NORM_POSITIONS = ("before", "after")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")
ARCHITECTURES = {}


def register_architecture(cls):
    """Class decorator: make an architecture available as `--arch <cls.kind>` and in params.json."""
    ARCHITECTURES[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Architecture:
    """Settings every architecture has; `kind` names the subclass in `params.json`."""

    kind = "base"
    input_shape: tuple = setting((28, 28, 1), "(height, width, channels), set from the data", flag=False)
    z_dim: int = setting(2, "latent (code) dimensions", check=POSITIVE_INT)
    encoder_act: str = setting(DEFAULT_ACTIVATION, "the encoder's activation", choices=ACTIVATIONS)
    decoder_act: str = setting(DEFAULT_ACTIVATION, "the decoder's activation", choices=ACTIVATIONS)
    norm: str = setting("none", "normalization in every block", choices=NORMS)
    norm_pos: str = setting("after", "normalization before or after the activation", choices=NORM_POSITIONS)
    dropout: float = setting(0.0, "dropout rate after every activation", check=RATE)
    output_activation: str = setting("sigmoid", "the decoder's (mean) output", choices=OUTPUT_ACTIVATIONS)
    encoder_head: str = setting("dense", "dense: a Dense layer gives the code; none: the body's output is the code "
                                         "(an AE's, e.g. the lecture notes' pooled conv)", choices=("dense", "none"))

    def __post_init__(self):
        check_fields(self)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels); got {self.input_shape}")

    def for_images(self, image_shape):
        """This architecture for images of `image_shape` (H, W, C)."""
        return dataclasses.replace(self, input_shape=tuple(image_shape))

    def to_dict(self):
        """Plain JSON-ready values, with `kind`."""
        return {"kind": self.kind, **plain(self)}

    def activation(self, act, name):
        """The activation layer for `act` (models/activations.py; an architecture may refine one, e.g. a slope)."""
        return activation_layer(act, name)

    def block(self, x, layer, act, prefix, i):
        """layer -> [norm] -> act -> [norm] -> [dropout], as `norm_pos` and `dropout` say."""
        x = layer(x)
        norm_name = f"{prefix}_{'bn' if self.norm == 'batch' else 'ln'}_{i}"
        if self.norm != "none" and self.norm_pos == "before":
            x = normalization_layer(self.norm, norm_name)(x)
        x = self.activation(act, f"{prefix}_act_{i}")(x)
        if self.norm != "none" and self.norm_pos == "after":
            x = normalization_layer(self.norm, norm_name)(x)
        if self.dropout > 0:
            x = layers.Dropout(self.dropout, name=f"{prefix}_dropout_{i}")(x)
        return x

    def decoder(self, n_outputs=1):
        """Decoder model: z -> image (mean in [0, 1] with a sigmoid output), plus a per-pixel
        log-variance image when `n_outputs` is 2."""
        z = keras.Input(shape=(self.z_dim,), name="decoder_input")
        x = self.decoder_trunk(z)
        mean = self.output_layer("decoder_output", self.output_activation)
        outputs = mean(x)
        if n_outputs == 2:
            outputs = [outputs, self.output_layer("decoder_log_var", None)(x)]
        decoder = keras.Model(z, outputs, name="decoder")
        shape = decoder.output_shape[0] if n_outputs == 2 else decoder.output_shape
        if tuple(shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"the decoder produces {shape[1:]} images but the input is {self.input_shape}; "
                             "choose strides/widths so the decoder undoes the encoder")
        return decoder


def check_encoder_body(architecture, family):
    """A ValueError for an architecture with no encoder body for a family's code head to go on (the hierarchy,
    whose layers are its family's own)."""
    if not hasattr(architecture, "encoder_body"):
        raise ValueError(f"the {architecture.kind} architecture has no encoder body for a {family}'s code head; it "
                         f"is the {architecture.made_for} family's: train it with --family {architecture.made_for}")


@register_architecture
@dataclass(frozen=True)
class ConvArchitecture(Architecture):
    """GDL_code's conv stacks; the defaults are the study's (28, 14, 7, 2, 7, 14, 28)."""

    kind = "conv"
    encoder_conv_filters: tuple = setting((32, 64, 64, 64), "conv: encoder filters, e.g. 32,64,64,64",
                                          check=POSITIVE_INT)
    encoder_conv_kernel_size: tuple = setting((3, 3, 3, 3), "conv: encoder kernel sizes", check=POSITIVE_INT)
    encoder_conv_strides: tuple = setting((1, 2, 2, 1), "conv: encoder strides", check=POSITIVE_INT)
    decoder_conv_t_filters: tuple = setting((64, 64, 32, 1), "conv: decoder filters (the last is set to the "
                                            "image's channels)", check=POSITIVE_INT)
    decoder_conv_t_kernel_size: tuple = setting((3, 3, 3, 3), "conv: decoder kernel sizes", check=POSITIVE_INT)
    decoder_conv_t_strides: tuple = setting((1, 2, 2, 1), "conv: decoder strides", check=POSITIVE_INT)
    encoder_pool: tuple = setting((), "conv: max-pool size after each encoder conv (1: none; default: no pooling)",
                                  check=POSITIVE_INT)
    encoder_global_pool: bool = setting(False, "conv: average the last feature map over its positions (global "
                                               "average pooling) instead of flattening it")
    decoder_dense_shape: tuple = setting((), "conv: the shape the decoder's Dense layer is reshaped to, e.g. 3,3,16 "
                                              "(default: the encoder's last feature map)", check=POSITIVE_INT)
    decoder_conv_t_padding: tuple[str, ...] = setting((), "conv: same or valid for each decoder conv (default: "
                                                          "all same)")

    def __post_init__(self):
        super().__post_init__()
        for part in ("encoder_conv", "decoder_conv_t"):
            sizes = {len(getattr(self, f"{part}_{k}")) for k in ("filters", "kernel_size", "strides")}
            if len(sizes) != 1 or 0 in sizes:
                raise ValueError(f"{part}_filters, _kernel_size and _strides must be non-empty and of equal lengths")
        for name, values, count in (("encoder_pool", self.encoder_pool, len(self.encoder_conv_filters)),
                                    ("decoder_conv_t_padding", self.decoder_conv_t_padding,
                                     len(self.decoder_conv_t_filters))):
            if values and len(values) != count:
                raise ValueError(f"{name} needs one value per conv layer ({count}); got {len(values)}")
        if any(p not in ("same", "valid") for p in self.decoder_conv_t_padding):
            raise ValueError(f"decoder_conv_t_padding must be same or valid for each layer; got {self.decoder_conv_t_padding}")
        if self.decoder_dense_shape and len(self.decoder_dense_shape) != 3:
            raise ValueError(f"decoder_dense_shape must be height,width,channels; got {self.decoder_dense_shape}")

    def for_images(self, image_shape):
        filters = self.decoder_conv_t_filters[:-1] + (int(image_shape[-1]),)
        return dataclasses.replace(self, input_shape=tuple(image_shape), decoder_conv_t_filters=filters)

    def encoder_body(self, images):
        """Conv blocks (each followed by its max-pooling, where there is one), then Flatten or the global average."""
        x = images
        for i, (filters, kernel, stride) in enumerate(zip(
                self.encoder_conv_filters, self.encoder_conv_kernel_size, self.encoder_conv_strides)):
            conv = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"encoder_conv_{i}")
            x = self.block(x, conv, self.encoder_act, "encoder", i)
            if self.encoder_pool and self.encoder_pool[i] > 1:
                x = layers.MaxPooling2D(self.encoder_pool[i], name=f"encoder_pool_{i}")(x)
        if self.encoder_global_pool:
            return layers.GlobalAveragePooling2D(name="encoder_global_pool")(x)
        return layers.Flatten(name="encoder_flatten")(x)

    def feature_shape(self):
        """Shape of the last encoder feature map, which the decoder's first Dense layer mirrors (or
        `decoder_dense_shape` where given)."""
        if self.decoder_dense_shape:
            return self.decoder_dense_shape
        height, width = self.input_shape[:2]
        pools = self.encoder_pool or (1,) * len(self.encoder_conv_strides)
        for stride, pool in zip(self.encoder_conv_strides, pools):  # "same" padding: ceil(size / stride)
            height, width = -(-height // stride) // pool, -(-width // stride) // pool
        return height, width, self.encoder_conv_filters[-1]

    def padding(self, i):
        """The padding of decoder conv `i`."""
        return self.decoder_conv_t_padding[i] if self.decoder_conv_t_padding else "same"

    def decoder_trunk(self, z):
        """Dense -> Reshape -> every transposed-conv block but the last."""
        shape = self.feature_shape()
        x = layers.Dense(int(np.prod(shape)), name="decoder_dense")(z)
        x = layers.Reshape(shape, name="decoder_reshape")(x)
        for i, (filters, kernel, stride) in enumerate(zip(
                self.decoder_conv_t_filters[:-1], self.decoder_conv_t_kernel_size, self.decoder_conv_t_strides)):
            conv = layers.Conv2DTranspose(filters, kernel, strides=stride, padding=self.padding(i),
                                          name=f"decoder_conv_t_{i}")
            x = self.block(x, conv, self.decoder_act, "decoder", i)
        return x

    def output_layer(self, name, activation):
        """The last transposed conv, to the image's channels. The mean head keeps the name
        `decoder_conv_t_<last>` that run folders made before the dense architecture use."""
        last = len(self.decoder_conv_t_filters) - 1
        return layers.Conv2DTranspose(
            self.decoder_conv_t_filters[-1], self.decoder_conv_t_kernel_size[-1],
            strides=self.decoder_conv_t_strides[-1], padding=self.padding(last), activation=activation,
            name=f"decoder_conv_t_{last}" if name == "decoder_output" else name)


@register_architecture
@dataclass(frozen=True)
class DenseArchitecture(Architecture):
    """MLP stacks from width lists, e.g. encoder 420-210-105 and decoder 200-400-800 (ReLU)."""

    kind = "dense"
    encoder_widths: tuple = setting((420, 210, 105), "dense: encoder widths, e.g. 420,210,105", check=POSITIVE_INT)
    decoder_widths: tuple = setting((200, 400, 800), "dense: decoder widths, e.g. 200,400,800", check=POSITIVE_INT)

    def __post_init__(self):
        super().__post_init__()
        if not self.encoder_widths or not self.decoder_widths:
            raise ValueError("encoder_widths and decoder_widths must be non-empty lists of positive widths")

    def encoder_body(self, images):
        """Flatten, then Dense blocks."""
        x = layers.Flatten(name="encoder_flatten")(images)
        for i, width in enumerate(self.encoder_widths):
            x = self.block(x, layers.Dense(width, name=f"encoder_dense_{i}"), self.encoder_act, "encoder", i)
        return x

    def decoder_trunk(self, z):
        """Dense blocks."""
        x = z
        for i, width in enumerate(self.decoder_widths):
            x = self.block(x, layers.Dense(width, name=f"decoder_dense_{i}"), self.decoder_act, "decoder", i)
        return x

    def output_layer(self, name, activation):
        """Dense to every pixel, reshaped to the image."""
        dense = layers.Dense(int(np.prod(self.input_shape)), activation=activation, name=f"{name}_dense")
        reshape = layers.Reshape(self.input_shape, name=name)
        return lambda x: reshape(dense(x))


def architecture_from_dict(values):
    """The architecture of `to_dict`'s output; unknown keys are an error, missing ones take defaults."""
    values = dict(values)
    kind = values.pop("kind", "conv")
    check_choice("architecture", kind, tuple(ARCHITECTURES))
    return from_fields(ARCHITECTURES[kind], values, f"{kind} architecture")
