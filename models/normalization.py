"""Normalization layers by name: where `--norm none|batch|layer` becomes a layer.

Batch norm trains as `FusedBatchNormalization` (one kernel on TensorFlow, Keras's own layer on the other
backends); saved `.h5` models get the stock `BatchNormalization` with the same weights, so they load in
plain Keras.
"""

import keras
from keras import layers

NORMS = ("none", "batch", "layer")


@keras.saving.register_keras_serializable(package="vae")
class FusedBatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose training pass is TensorFlow's one-kernel FusedBatchNormV3 (NHWC).

    Why by hand: Keras 3 builds batch norm from separate small ops, ~17 ms of a 35 ms training step
    of gelu_full_bn_before at batch 32 on CPU; this layer made that variant ~20 % faster
    (docs/benchmarks.md). Inference, other backends, and any input that is not 4-D channels-last use
    Keras's path.
    """

    def call(self, inputs, training=None, mask=None):
        if (keras.backend.backend() != "tensorflow" or not (training and self.trainable) or len(inputs.shape) != 4
                or self.axis not in (-1, 3, [3], [-1])):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only where TensorFlow is the backend

        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"), epsilon=self.epsilon,
            is_training=True, exponential_avg_factor=1.0)
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
        variance = variance * (n - 1) / n  # the op applies Bessel's correction; Keras keeps the biased one
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y


def normalization_layer(norm, name):
    """The layer for `norm` ("batch" or "layer"); exports swap the fused one for the stock layer."""
    if norm == "batch":
        return FusedBatchNormalization(name=name)
    if norm == "layer":
        return layers.LayerNormalization(name=name)
    raise ValueError(f"norm must be batch or layer here; got {norm!r}")
