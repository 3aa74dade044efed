"""The base of every autoencoder family: train/test steps, loss trackers, export and the NaN step.

A family subclasses `AutoencoderModel` and supplies three things: `build_encoder()` (the
architecture's body plus its own head), `term_names()` and `loss_terms()` (its loss, declared in one
place as named per-image terms and their weights). Everything else here, and everything in `utils/`,
works for every family: trackers are named after the terms, so an AE logs `r_loss` and no `kl_loss`.
"""

import keras
import tensorflow as tf
from keras import ops

from models import likelihoods
from models.layers import export_model


class AutoencoderModel(keras.Model):
    """An encoder, a decoder and a loss made of named per-image terms; `config` is a `ModelConfig`."""

    def __init__(self, config, **kwargs):
        kwargs.setdefault("name", config.family)
        super().__init__(**kwargs)
        self.config = config
        self.encoder = self.build_encoder()
        self.decoder = config.architecture.decoder(likelihoods.decoder_outputs(config.objective.loss))
        self.build_state()
        # The optimizer step at which the loss first turned NaN/inf (-1: never), recorded inside the
        # compiled step, so the exact batch is known even with many steps per execution.
        self.first_nonfinite_step = self.add_weight(name="first_nonfinite_step", shape=(), dtype="int64",
                                                    trainable=False, initializer="zeros")
        self.first_nonfinite_step.assign(-1)
        for name in ("loss",) + self.term_names():
            setattr(self, f"{name}_tracker", keras.metrics.Mean(name=name))

    # --- what a family supplies -------------------------------------------------------------------
    def build_encoder(self):
        """The encoder model: image -> code (an AE) or [mu, log_var, z] (a VAE)."""
        raise NotImplementedError

    def build_state(self):
        """Variables and layers of the objective's own (e.g. the VAE's KL weight); none by default."""

    def term_names(self):
        """Names of the loss terms, in the order `loss_terms` returns them (the first is `r_loss`)."""
        raise NotImplementedError

    def loss_terms(self, images, training):
        """{name: (per-image value, weight)}; the loss is the weighted sum, averaged over the batch."""
        raise NotImplementedError

    def on_epoch_start(self, epoch, epochs):
        """Called before each epoch (from 0) of a run of `epochs`, e.g. for a KL warm-up."""

    def figures(self, images):
        """{file name: Figure} of the family's own figures for some test `images`; none by default."""
        return {}

    has_prior = False  # whether codes can be sampled from N(0, I) (a VAE) or need a fitted Gaussian

    # --- shared by every family -------------------------------------------------------------------
    @property
    def metrics(self):
        return [getattr(self, f"{name}_tracker") for name in ("loss",) + self.term_names()]

    def reconstruct(self, images, training=False):
        """The decoder's outputs for the codes of `images` (sampled z for a VAE)."""
        outputs = self.encoder(images, training=training)
        return self.decoder(outputs[-1] if isinstance(outputs, (list, tuple)) else outputs, training=training)

    def call(self, inputs, training=False):
        outputs = self.reconstruct(inputs, training=training)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def per_sample_losses(self, images, training=False):
        """(total, {term: value}) per image; total = sum of weight * term."""
        terms = self.loss_terms(images, training)
        total = None
        for value, weight in terms.values():
            weighted = value if weight is None else ops.cast(weight, "float32") * value
            total = weighted if total is None else total + weighted
        return total, {name: value for name, (value, _) in terms.items()}

    def train_step(self, data):
        images = _images(data)
        with tf.GradientTape() as tape:
            total, terms = self.per_sample_losses(images, training=True)
            scaled = self.optimizer.scale_loss(ops.mean(total))  # loss scaling under mixed_float16
        step = ops.cast(self.optimizer.iterations, "int64")
        first_bad = (self.first_nonfinite_step < 0) & ~ops.isfinite(ops.mean(total))
        self.first_nonfinite_step.assign(ops.where(first_bad, step, self.first_nonfinite_step))
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(total, terms)

    def test_step(self, data):
        return self._track(*self.per_sample_losses(_images(data), training=False))

    def _track(self, total, terms):
        # Per-image values, so an epoch's figure is the mean over every image, a short last batch included.
        self.loss_tracker.update_state(total)
        for name, value in terms.items():
            getattr(self, f"{name}_tracker").update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def build_all(self):
        """Create every weight by running one dummy batch through the model."""
        self(ops.zeros((1,) + self.config.architecture.input_shape))

    def export_models(self):
        """Encoder and decoder with stock Keras layers (plus `Sampling`) and this model's weights."""
        return export_model(self.encoder), export_model(self.decoder)

    def get_config(self):
        return {"name": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        from models.families import ModelConfig

        return cls(ModelConfig.from_dict(config["config"]), name=config.get("name"))

    @classmethod
    def load(cls, run_dir):
        """The model of a run folder, at its best epoch (`utils.runs.load_model`)."""
        from utils.runs import load_model

        return load_model(run_dir)


def _images(data):
    """The images of a batch, whether `fit` hands over `x` or `(x,)`."""
    return data[0] if isinstance(data, (tuple, list)) else data
