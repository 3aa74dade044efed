"""A plain-Keras conv VAE to time our model against: the study's architecture and loss, stock layers only.

Deliberately imports nothing from this project, so it is what anyone would write from the paper's
table: GDL_code's digits VAE with LeakyReLU(0.3), `1000 * MSE + KL`, Adam, and its loss in
`compute_loss`, the form Keras 3 runs on every backend (TensorFlow, JAX, PyTorch).
"""

import keras
from keras import layers, ops

ENCODER_FILTERS, ENCODER_STRIDES = (32, 64, 64, 64), (1, 2, 2, 1)
DECODER_FILTERS, DECODER_STRIDES = (64, 64, 32), (1, 2, 2)  # then one conv-transpose to the image
Z_DIM, SLOPE, R_LOSS_FACTOR = 2, 0.3, 1000.0


def reference_parts(image_shape=(28, 28, 1)):
    """Encoder (image -> mu, log_var) and decoder (z -> image), as in the study's table."""
    images = x = keras.Input(image_shape)
    for filters, stride in zip(ENCODER_FILTERS, ENCODER_STRIDES):
        x = layers.LeakyReLU(SLOPE)(layers.Conv2D(filters, 3, strides=stride, padding="same")(x))
    feature_shape = tuple(int(s) for s in x.shape[1:])
    x = layers.Flatten()(x)
    encoder = keras.Model(images, [layers.Dense(Z_DIM)(x), layers.Dense(Z_DIM)(x)], name="ref_encoder")
    z = keras.Input((Z_DIM,))
    x = layers.Reshape(feature_shape)(layers.Dense(feature_shape[0] * feature_shape[1] * feature_shape[2])(z))
    for filters, stride in zip(DECODER_FILTERS, DECODER_STRIDES):
        x = layers.LeakyReLU(SLOPE)(layers.Conv2DTranspose(filters, 3, strides=stride, padding="same")(x))
    x = layers.Conv2DTranspose(image_shape[-1], 3, padding="same", activation="sigmoid")(x)
    return encoder, keras.Model(z, x, name="ref_decoder")


class ReferenceVAE(keras.Model):
    """The minimal VAE of the Keras guides: `call` samples z and decodes it, `compute_loss` holds the loss."""

    def __init__(self, image_shape=(28, 28, 1), **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = reference_parts(image_shape)
        self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, images, training=False):
        mu, log_var = self.encoder(images, training=training)
        z = mu + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        return self.decoder(z, training=training), mu, log_var

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstructions, mu, log_var = y_pred
        r_loss = R_LOSS_FACTOR * ops.mean(ops.square(x - reconstructions), axis=(1, 2, 3))
        kl_loss = -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.exp(log_var), axis=1)
        return ops.mean(r_loss + kl_loss)


def build_reference(image_shape=(28, 28, 1), lr=0.0005):
    """The reference VAE, built and compiled with Keras's defaults for the backend."""
    model = ReferenceVAE(image_shape, name="reference_vae")
    model(ops.zeros((1,) + tuple(image_shape)))
    model.compile(optimizer=keras.optimizers.Adam(lr))
    return model
