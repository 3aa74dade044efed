"""The base of every family: its loss reaches Keras through `compute_loss`, and it answers the contract the
rest of the project uses. Nothing outside `models/` asks which family it holds.

The contract, what a family supplies, may override and is given, is told once, in the table of
docs/families.md, which tests/test_contract.py checks against this class.

Keras's own train and test steps call `compute_loss`, on every backend. Trackers are named after the
loss terms and fed per-image values, so an epoch's figure is the mean over every image (a short last
batch included); Keras's own tracker gives the total `loss`.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from models.config import ModelConfig
from models.layers import export_model


class AutoencoderModel(keras.Model):
    """An encoder, a decoder and a loss made of named per-image terms; `config` is a `ModelConfig`."""

    Objective = None
    default_architecture = "conv"
    encoder_outputs = ("code",)  # the encoder's outputs, by name, in order
    code_name = "code"  # the output that places an image in latent space: what `decode` takes
    has_likelihood = False  # whether it has `log_importance_weights`: set for each family by __init_subclass__
    sampling_note = "codes ~ the model's own code distribution"  # how `sample_codes` draws, in words

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.has_likelihood = cls.log_importance_weights is not AutoencoderModel.log_importance_weights

    def __init__(self, config, **kwargs):
        kwargs.setdefault("name", config.family)
        super().__init__(**kwargs)
        self.config = config
        self.build_networks()
        # How many images of the epoch came before the first batch whose loss was NaN/inf (-1: none),
        # recorded inside the compiled step, so the batch is known even with many steps per execution.
        self.first_nonfinite_step = self.add_weight(name="first_nonfinite_step", shape=(), dtype="int32",
                                                    trainable=False, initializer="zeros")
        self.first_nonfinite_step.assign(-1)
        self._term_names = self._loss_term_names()
        for name in self._term_names:
            setattr(self, f"{name}_tracker", keras.metrics.Mean(name=name))

    def _loss_term_names(self):
        # The keys of `loss_terms` are the terms' one declaration: read off a pass of one blank image, in a
        # stateless scope so that no random draw advances a seed generator (training draws what it drew before).
        images = ops.zeros((1,) + tuple(self.config.architecture.input_shape))
        with keras.StatelessScope(), no_gradients():
            return tuple(self.loss_terms(images, self.forward(images)))

    # --- what a family supplies ----------------------------------------------------------------------
    @classmethod
    def check_config(cls, config):
        """Raise a ValueError for settings this family cannot train (its objective checks its own fields)."""

    @classmethod
    def with_resources(cls, config, resources):
        """`config` with what the family needs beyond its settings filled in, before a new run builds it (e.g. a
        frozen network's weights file), from `resources` (utils/training/resources.py: the run's `data`, a
        `cache` folder, `log`, the data's `feature_network()`); a ValueError for one it cannot have. The
        filled-in config is what the run records, so a resumed or loaded run needs nothing more."""
        return config

    def build_networks(self):
        """Set `self.encoder`, `self.decoder` and the family's own layers and variables."""
        raise NotImplementedError

    def forward(self, images, training=False):
        """{name: tensor}: everything `loss_terms` needs, with the decoder's outputs under "outputs"."""
        raise NotImplementedError


    def loss_terms(self, images, outputs):
        """{name: (per-image value, weight or None)} for a batch and its `forward` outputs."""
        raise NotImplementedError

    def sample_codes(self, n, rng):
        """`n` codes to decode into new images, drawn with the NumPy generator `rng`."""
        raise NotImplementedError

    def log_importance_weights(self, images, samples, rng, likelihood=None):
        """(samples, images) array of log p(x, z_k) - log q(z_k | x) for `samples` draws from q, in nats, with
        p(x | z) the `models.likelihoods.Likelihood` given (None: the one the model trains on)."""
        raise NotImplementedError(f"a {self.config.family} has no likelihood to estimate")

    def scoring_likelihood(self, binary, validation_images):
        """The `models.likelihoods.Likelihood` that scores this model on data that are `binary` or 8-bit grey
        (anything it fits, it fits on `validation_images`); None without a likelihood."""
        return None

    def latent_summary(self, images):
        """Figures of the latent space for eval.json (e.g. active units, KL per dimension); none by default."""
        return {}

    def diagnostics(self, images):
        """{figure file: (kind, data)}: the data of the family's own figures, drawn by utils/analysis/plots.py."""
        return {}

    def training_report(self, images):
        """Lines a reader of the run's log must see when training ends (e.g. a VAE-GAN whose discriminator won
        outright), from `images` (validation images); none by default."""
        return []

    def fit_code_distribution(self, images):
        """After training: fit what codes are sampled from, where there is no prior (an AE's Gaussian)."""

    def restore_legacy_state(self, state):
        """Adopt state that older run folders kept outside the weights file (e.g. `code_gaussian`)."""

    def on_epoch_start(self, epoch, epochs):
        """Called before each epoch (from 0) of a run of `epochs`, e.g. for a KL warm-up."""

    def first_comparable_epoch(self, epochs):
        """The first epoch (from 1) of a run of `epochs` whose val_loss is the final objective's (after any
        warm-up); the best weights are chosen from there on."""
        return 1

    def latent_grid(self, n):
        """An n x n grid of 2-D codes spanning the code distribution, for the manifold figure; None if the
        codes are not 2-D."""
        return None

    def term_names(self):
        """Names of the loss terms, in the order `loss_terms` gives them (read off its keys, not declared)."""
        return self._term_names

    # --- Keras ----------------------------------------------------------------------------------------
    def call(self, inputs, training=False):
        return self.forward(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The batch mean of the weighted sum of the loss terms; feeds the term trackers."""
        terms = self.loss_terms(x, y_pred)
        loss = ops.mean(weighted_total(terms))
        if training:
            self._record_nonfinite(loss)
        for name, (value, _) in terms.items():
            getattr(self, f"{name}_tracker").update_state(value)
        return loss

    def _record_nonfinite(self, loss):
        # The first tracker's count is the number of images this epoch has seen before this batch.
        seen = ops.cast(ops.convert_to_tensor(getattr(self, f"{self.term_names()[0]}_tracker").count), "int32")
        before = ops.convert_to_tensor(self.first_nonfinite_step)
        self.first_nonfinite_step.assign(ops.where((before < 0) & ~ops.isfinite(loss), seen, before))

    def per_sample_losses(self, images, training=False):
        """(total, {term: value}) per image for `images` in one pass; total = sum of weight * term."""
        terms = self.loss_terms(images, self.forward(images, training=training))
        return weighted_total(terms), {name: value for name, (value, _) in terms.items()}

    def build_all(self):
        """Create every weight by running one dummy batch through the model."""
        self(ops.zeros((1,) + self.config.architecture.input_shape))

    def get_config(self):
        return {"name": self.name, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config["config"]), name=config.get("name"))

    # --- the contract: NumPy in and out, in batches ------------------------------------------------
    def encode(self, images, batch_size=1000):
        """{output name: array}: the encoder's outputs for `images` (a VAE's mean, log_var and z)."""
        parts = {name: [] for name in self.encoder_outputs}
        for batch in batches(images, batch_size):
            with no_gradients():
                outputs = self.encoder(batch, training=False)
            for name, value in zip(self.encoder_outputs, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                parts[name].append(to_numpy(value))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def latent_means(self, images, batch_size=1000):
        """Where `images` sit in latent space (a VAE's posterior means, an AE's codes): `decode`'s input."""
        return self.encode(images, batch_size)[self.code_name]

    def decode(self, codes, batch_size=1000):
        """The decoded images (the mean image, for a decoder that also outputs a variance)."""
        with no_gradients():
            return np.concatenate([to_numpy(first(self.decoder(batch, training=False)))
                                   for batch in batches(codes, batch_size)])

    def reconstruct(self, images, batch_size=1000):
        """Images decoded from the latent means of `images`."""
        return self.decode(self.latent_means(images, batch_size), batch_size)

    def sample(self, n, seed=None):
        """`n` new images (means), decoded from `sample_codes`."""
        return self.decode(self.sample_codes(n, np.random.default_rng(seed)))

    def export_models(self):
        """Encoder and decoder with stock Keras layers (plus `Sampling`) and this model's weights."""
        return export_model(self.encoder), export_model(self.decoder)


def no_gradients():
    """A context in which calls record nothing for gradients: PyTorch otherwise keeps a graph of every call
    (and refuses to mix its tensors with NumPy); the other backends record nothing outside training anyway."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def weighted_total(terms):
    """sum of weight * value over {name: (per-image value, weight or None)}, per image."""
    total = None
    for value, weight in terms.values():
        weighted = value if weight is None else ops.cast(weight, "float32") * value
        total = weighted if total is None else total + weighted
    return total


def batches(array, batch_size):
    """Float32 slices of `array` of at most `batch_size` rows."""
    for start in range(0, len(array), batch_size):
        yield np.asarray(array[start:start + batch_size], dtype="float32")


def first(outputs):
    """The first of a model's outputs (the mean image of a decoder that also gives a variance)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def to_numpy(tensor):
    """A backend tensor as a float32 NumPy array."""
    return np.asarray(ops.convert_to_numpy(tensor), dtype="float32")
