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

from models.activations import ACTIVATIONS, activation_layer
from models.normalization import NORMS, normalization_layer

NORM_POSITIONS = ("before", "after")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")
_TUPLE_FIELDS = ("input_shape", "encoder_conv_filters", "encoder_conv_kernel_size", "encoder_conv_strides",
                 "decoder_conv_t_filters", "decoder_conv_t_kernel_size", "decoder_conv_t_strides",
                 "encoder_widths", "decoder_widths")


def check_choice(name, value, allowed):
    """A ValueError naming the setting and its allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class Architecture:
    """Settings every architecture has; `kind` names the subclass in `params.json`."""

    kind = "base"
    input_shape: tuple = (28, 28, 1)
    z_dim: int = 2
    encoder_act: str = "lrelu"
    decoder_act: str = "lrelu"
    norm: str = "none"
    norm_pos: str = "after"
    dropout: float = 0.0
    output_activation: str = "sigmoid"  # of the decoder's (mean) output

    def __post_init__(self):
        for name in _TUPLE_FIELDS:
            if hasattr(self, name):
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        check_choice("encoder_act", self.encoder_act, ACTIVATIONS)
        check_choice("decoder_act", self.decoder_act, ACTIVATIONS)
        check_choice("norm", self.norm, NORMS)
        check_choice("norm_pos", self.norm_pos, NORM_POSITIONS)
        check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels); got {self.input_shape}")
        if self.z_dim < 1:
            raise ValueError(f"z_dim must be at least 1; got {self.z_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")

    def for_images(self, image_shape):
        """This architecture for images of `image_shape` (H, W, C)."""
        return dataclasses.replace(self, input_shape=tuple(image_shape))

    def to_dict(self):
        """Plain JSON-ready values, with `kind`."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {"kind": self.kind, **values}

    def block(self, x, layer, act, prefix, i):
        """layer -> [norm] -> act -> [norm] -> [dropout], as `norm_pos` and `dropout` say."""
        x = layer(x)
        norm_name = f"{prefix}_{'bn' if self.norm == 'batch' else 'ln'}_{i}"
        if self.norm != "none" and self.norm_pos == "before":
            x = normalization_layer(self.norm, norm_name)(x)
        x = activation_layer(act, f"{prefix}_act_{i}")(x)
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


@dataclass(frozen=True)
class ConvArchitecture(Architecture):
    """GDL_code's conv stacks; the defaults are the study's (28, 14, 7, 2, 7, 14, 28)."""

    kind = "conv"
    encoder_conv_filters: tuple = (32, 64, 64, 64)
    encoder_conv_kernel_size: tuple = (3, 3, 3, 3)
    encoder_conv_strides: tuple = (1, 2, 2, 1)
    decoder_conv_t_filters: tuple = (64, 64, 32, 1)  # the last one is set to the image's channels
    decoder_conv_t_kernel_size: tuple = (3, 3, 3, 3)
    decoder_conv_t_strides: tuple = (1, 2, 2, 1)

    def __post_init__(self):
        super().__post_init__()
        for part in ("encoder_conv", "decoder_conv_t"):
            sizes = {len(getattr(self, f"{part}_{k}")) for k in ("filters", "kernel_size", "strides")}
            if len(sizes) != 1 or 0 in sizes:
                raise ValueError(f"{part}_filters, _kernel_size and _strides must be non-empty and of equal lengths")

    def for_images(self, image_shape):
        filters = self.decoder_conv_t_filters[:-1] + (int(image_shape[-1]),)
        return dataclasses.replace(self, input_shape=tuple(image_shape), decoder_conv_t_filters=filters)

    def encoder_body(self, images):
        """Conv blocks, then Flatten."""
        x = images
        for i, (filters, kernel, stride) in enumerate(zip(
                self.encoder_conv_filters, self.encoder_conv_kernel_size, self.encoder_conv_strides)):
            conv = layers.Conv2D(filters, kernel, strides=stride, padding="same", name=f"encoder_conv_{i}")
            x = self.block(x, conv, self.encoder_act, "encoder", i)
        return layers.Flatten(name="encoder_flatten")(x)

    def feature_shape(self):
        """Shape of the last encoder feature map, which the decoder's first Dense layer mirrors."""
        height, width = self.input_shape[:2]
        for stride in self.encoder_conv_strides:  # "same" padding: ceil(size / stride)
            height, width = -(-height // stride), -(-width // stride)
        return height, width, self.encoder_conv_filters[-1]

    def decoder_trunk(self, z):
        """Dense -> Reshape -> every transposed-conv block but the last."""
        shape = self.feature_shape()
        x = layers.Dense(int(np.prod(shape)), name="decoder_dense")(z)
        x = layers.Reshape(shape, name="decoder_reshape")(x)
        for i, (filters, kernel, stride) in enumerate(zip(
                self.decoder_conv_t_filters[:-1], self.decoder_conv_t_kernel_size, self.decoder_conv_t_strides)):
            conv = layers.Conv2DTranspose(filters, kernel, strides=stride, padding="same", name=f"decoder_conv_t_{i}")
            x = self.block(x, conv, self.decoder_act, "decoder", i)
        return x

    def output_layer(self, name, activation):
        """The last transposed conv, to the image's channels. The mean head keeps the name
        `decoder_conv_t_<last>` that run folders made before the dense architecture use."""
        last = len(self.decoder_conv_t_filters) - 1
        return layers.Conv2DTranspose(
            self.decoder_conv_t_filters[-1], self.decoder_conv_t_kernel_size[-1],
            strides=self.decoder_conv_t_strides[-1], padding="same", activation=activation,
            name=f"decoder_conv_t_{last}" if name == "decoder_output" else name)


@dataclass(frozen=True)
class DenseArchitecture(Architecture):
    """MLP stacks from width lists, e.g. encoder 420-210-105 and decoder 200-400-800 (ReLU)."""

    kind = "dense"
    encoder_widths: tuple = (420, 210, 105)
    decoder_widths: tuple = (200, 400, 800)

    def __post_init__(self):
        super().__post_init__()
        if not self.encoder_widths or not self.decoder_widths or min(self.encoder_widths + self.decoder_widths) < 1:
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


ARCHITECTURES = {cls.kind: cls for cls in (ConvArchitecture, DenseArchitecture)}


def architecture_from_dict(values):
    """The architecture of `to_dict`'s output; unknown keys are an error, missing ones take defaults."""
    values = dict(values)
    kind = values.pop("kind", "conv")
    check_choice("architecture", kind, tuple(ARCHITECTURES))
    cls = ARCHITECTURES[kind]
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {kind} architecture settings: {', '.join(sorted(unknown))}")
    return cls(**values)
