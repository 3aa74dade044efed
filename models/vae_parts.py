"""What the families with Gaussian latents share (the VAE and its kin, the Ladder and deep VAEs): a KL weight
that can warm up, the likelihood they are scored with, and the thresholds of an active unit. Mixins, so that
each family is a sibling that takes these parts, not a child that undoes its parent.
"""

import math

import keras
import numpy as np

from models import likelihoods
from models.base import batches, first, no_gradients, to_numpy

# Importance samples decoded at once (draws x images per call): a conv decoder ran 1.4x faster with 2,500 a call
# than with 10,000, whose activations do not stay in the CPU caches (docs/benchmarks.md).
DECODES_PER_CALL = 2_500
ACTIVE_UNIT_THRESHOLD = 0.01  # a latent dimension whose posterior mean varies more than this is active
ACTIVE_KL_THRESHOLD = 0.01  # nats: a latent dimension whose mean KL exceeds this is active by KL


class KLWarmup:
    """A KL weight `kl_beta` (`beta`, or warming up from 0 over the objective's `warmup_length`) and the first
    epoch whose val_loss counts, for a model whose objective is a `VAEObjective`."""

    def add_kl_weight(self):
        """Create `kl_beta`, a variable, so a warm-up can change it without retracing."""
        self.kl_beta = self.add_weight(name="kl_beta", shape=(), trainable=False,
                                       initializer=keras.initializers.Constant(self.config.objective.beta))

    def on_epoch_start(self, epoch, epochs):
        """beta * min(1, epoch / L), epochs counted from 0: a warm-up of L epochs (0 .. L-1) raises beta from 0,
        and from epoch L on beta is full and stays so."""
        length = self.config.objective.warmup_length(epochs)
        if length:
            self.kl_beta.assign(self.config.objective.beta * min(1.0, epoch / length))

    def first_comparable_epoch(self, epochs):
        """The first epoch (from 1) with beta at its full value: a val_loss during the warm-up weighs the KL
        less, so it would look best early."""
        return math.ceil(self.config.objective.warmup_length(epochs)) + 1


class ScoredByLikelihood:
    """The likelihood a model of `loss`/`sigma` trains on and the one it is scored with."""

    def scoring_likelihood(self, binary, validation_images):
        """Bernoulli on binary data; on grey data a discretized Gaussian with the model's own sigma, or (mse, rmse,
        bce) one sigma fitted on the validation images: the root mean squared error of their reconstructions
        from one posterior draw each, the sigma that maximises a Gaussian decoder's expected log-likelihood."""
        objective = self.config.objective

        def fitted():
            with no_gradients():
                errors = [np.mean(np.square(b - to_numpy(first(self.forward(b)["outputs"]))))
                          for b in batches(validation_images, 1000)]
            sizes = [len(b) for b in batches(validation_images, 1000)]
            return float(np.sqrt(np.average(errors, weights=sizes))), f"fitted on {len(validation_images)} validation images"

        return likelihoods.scoring_likelihood(objective.loss, binary, objective.sigma, fitted)

    def training_likelihood(self):
        """The `Likelihood` the loss maximises (a ValueError for mse/rmse)."""
        return likelihoods.training_likelihood(self.config.objective.loss, self.config.objective.sigma)
