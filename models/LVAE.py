"""The Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby and Winther, 2016) and the deep VAE it is compared with:
L stochastic layers z_1 (next to the data) ... z_L (the top), on dense blocks given by width lists.

Generative model, top-down: p(z_L) = N(0, I), p(z_i | z_{i+1}) = N(mu_p, sigma_p^2) from a block of z_{i+1},
p(x | z_1) Bernoulli (by default) from a block of z_1. Inference, `inference` setting:
- `ladder`: a deterministic bottom-up pass d_i = block_i(d_{i-1}) gives each layer a Gaussian (mu_hat,
  sigma_hat^2); top-down, each layer's posterior merges it with that layer's generative prior, computed
  from the sampled z_{i+1}, by precision weighting (`gaussian.precision_weighted`); q(z_L) is the top's own.
- `bottom-up`: the plain deep VAE, each layer inferred from the sample of the one below,
  q(z_i | z_{i-1}) = N from block_i(z_{i-1}).
The loss is the reconstruction term plus one KL term per layer, `kl_1` ... `kl_L` (`unit_kl`: in closed form
where that is the ELBO's expectation, else by Monte Carlo at the drawn samples), weighted by beta warming up
from 0 over the first half of the run (the official code: over 200 epochs, then trained far longer). With two layers
or more every variance is the paper's softplus(linear) (plus a floor of 1e-4, `SoftplusLogVariance`):
bounded growth keeps the deep VAE's KLs, whose prior and posterior are not tied as the ladder's are, from
overflowing (with the VAE's exp(linear) they reached 1e12 in its first epoch). A one-layer hierarchy keeps
the project's log-variance head, so it is exactly the VAE. Batch norm on every hidden layer and a leaky
ReLU of slope 0.01 (Lasagne's default, which the official code used) by default.
"""

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from models import likelihoods, penalties
from models.architectures import Architecture, register_architecture
from models.base import AutoencoderModel, batches, no_gradients, to_numpy
from models.gaussian import log_normal, log_standard_normal, precision_weighted
from models.registry import register_family
from models.settings import FRACTION, NON_NEGATIVE_INT, POSITIVE_INT, RATE, setting
from models.vae_parts import (ACTIVE_KL_THRESHOLD, ACTIVE_UNIT_THRESHOLD, DECODES_PER_CALL, KLWarmup,
                              ScoredByLikelihood)
from models.VAE import VAEObjective

INFERENCE = ("ladder", "bottom-up")


@register_architecture
@dataclass(frozen=True)
class HierarchyArchitecture(Architecture):
    """L stochastic layers on dense blocks; the defaults are the paper's MNIST model."""

    kind = "hierarchy"
    made_for = "lvae"  # its layers are the family's own: it has no encoder body for another family's head
    z_dim: int = setting(0, "hierarchy: set from latent_sizes (the size of z_1)", flag=False)
    norm: str = setting("batch", "normalization in every block", choices=("none", "batch", "layer"))
    norm_pos: str = setting("before", "normalization before or after the activation", choices=("before", "after"))
    latent_sizes: tuple = setting((64, 32, 16, 8, 4), "hierarchy: latent units of each stochastic layer, bottom "
                                                      "first", check=POSITIVE_INT)
    block_widths: tuple = setting((512, 256, 128, 64, 32), "hierarchy: width of each layer's deterministic block",
                                  check=POSITIVE_INT)
    block_depth: int = setting(2, "hierarchy: dense layers in a block", check=POSITIVE_INT)
    inference: str = setting("ladder", "hierarchy: ladder (precision-weighted merge top-down) or bottom-up (the "
                                       "deep VAE)", choices=INFERENCE)
    leaky_slope: float = setting(0.01, "hierarchy: the leaky ReLU's negative slope", check=RATE)

    def __post_init__(self):
        super().__post_init__()
        if len(self.latent_sizes) != len(self.block_widths) or not self.latent_sizes:
            raise ValueError(f"latent_sizes and block_widths need one entry per stochastic layer; got "
                             f"{len(self.latent_sizes)} and {len(self.block_widths)}")
        object.__setattr__(self, "z_dim", self.latent_sizes[0])

    @property
    def depth(self):
        """The number of stochastic layers, L."""
        return len(self.latent_sizes)

    def activation(self, act, name):
        if act == "lrelu":
            return layers.LeakyReLU(negative_slope=self.leaky_slope, name=name)
        return super().activation(act, name)

    def dense_block(self, x, width, prefix, act):
        """`block_depth` dense layers of `width`, each with the norm, activation and dropout settings."""
        for j in range(self.block_depth):
            x = self.block(x, layers.Dense(width, name=f"{prefix}_dense_{j}"), act, prefix, j)
        return x

    def gaussian_block(self, input_size, width, latent, name, act):
        """A model: input -> dense block -> (block output, mean, log-variance) of `latent` units."""
        inputs = keras.Input(shape=(input_size,), name=f"{name}_input")
        hidden = self.dense_block(inputs, width, name, act)
        mean = layers.Dense(latent, name=f"{name}_mean")(hidden)
        log_var = layers.Dense(latent, name=f"{name}_log_var")(hidden)
        if self.depth > 1:
            log_var = SoftplusLogVariance(name=f"{name}_softplus_variance")(log_var)
        return keras.Model(inputs, [hidden, mean, log_var], name=name)

    def decoder_trunk(self, z):
        """p(x | z_1)'s block."""
        return self.dense_block(z, self.block_widths[0], "decoder", self.decoder_act)

    def output_layer(self, name, activation):
        """Dense to every pixel, reshaped to the image."""
        dense = layers.Dense(int(np.prod(self.input_shape)), activation=activation, name=f"{name}_dense")
        reshape = layers.Reshape(self.input_shape, name=name)
        return lambda x: reshape(dense(x))


@keras.saving.register_keras_serializable(package="vae")
class SoftplusLogVariance(layers.Layer):
    """h -> log(softplus(h) + 1e-4): the log of the paper's variance softplus(h), floored."""

    FLOOR = 1e-4

    def call(self, inputs):
        return ops.log(ops.softplus(inputs) + self.FLOOR)


@keras.saving.register_keras_serializable(package="vae")
class PrecisionMerge(layers.Layer):
    """[mean_a, log_var_a, mean_b, log_var_b] -> [mean, log_var] of the normalised product of two Gaussians."""

    def call(self, inputs):
        return list(precision_weighted(*inputs))

    def compute_output_shape(self, input_shape):
        return [input_shape[0], input_shape[1]]


def log_density_ratio(z, mean_q, log_var_q, mean_p, log_var_p):
    """log N(z; mean_q, var_q) - log N(z; mean_p, var_p) per unit: a one-sample Monte-Carlo KL(q || p)."""
    z, mean_q, log_var_q, mean_p, log_var_p = (ops.cast(t, "float32")
                                               for t in (z, mean_q, log_var_q, mean_p, log_var_p))
    return 0.5 * (log_var_p - log_var_q + ops.square(z - mean_p) / ops.exp(log_var_p)
                  - ops.square(z - mean_q) / ops.exp(log_var_q))


@dataclass(frozen=True)
class LVAEObjective(VAEObjective):
    """The hierarchy's loss settings: Bernoulli pixels, as the paper, and beta warming up over the first half of
    the run, so every run trains at full beta at least as long as it warmed up (the paper's 200 epochs of warm-up
    were followed by far longer training; docs/training.md)."""

    loss: str = setting("bce", "reconstruction term (models/likelihoods.py)", choices=likelihoods.LOSSES)
    warmup_epochs: int = setting(0, "raise beta linearly from 0 over N epochs", check=NON_NEGATIVE_INT)
    warmup_fraction: float | None = setting(None, "... or over this share of the run's epochs (e.g. 3/7; default: "
                                                  "half the run, unless --warmup-epochs is given)", check=FRACTION)

    def __post_init__(self):
        if self.warmup_fraction is None:  # the family's default yields to a warm-up given in epochs
            object.__setattr__(self, "warmup_fraction", 0.0 if self.warmup_epochs else 0.5)
        super().__post_init__()


@register_family("lvae")
@keras.saving.register_keras_serializable(package="vae")
class LadderVAE(KLWarmup, ScoredByLikelihood, AutoencoderModel):
    """A hierarchy of Gaussian latent layers, inferred by the ladder or bottom-up (the deep VAE)."""

    Objective = LVAEObjective
    default_architecture = "hierarchy"
    code_name = "mean_1"  # encode() gives each layer's posterior, every z at its mean: mean_1, log_var_1, ...
    sampling_note = "z_L ~ N(0, I), then each layer from p(z_i | z_(i+1)) down to z_1, decoded"

    @classmethod
    def check_config(cls, config):
        if not isinstance(config.architecture, HierarchyArchitecture):
            raise ValueError("the lvae family needs the hierarchy architecture: drop --arch or pass --arch hierarchy")

    # --- networks -------------------------------------------------------------------------------------
    def build_networks(self):
        arch = self.config.architecture
        sizes, widths, pixels = arch.latent_sizes, arch.block_widths, int(np.prod(arch.input_shape))
        ladder = arch.inference == "ladder"
        self.flatten = layers.Flatten(name="flatten")
        # Bottom-up blocks: layer i reads the data (i = 0), the block below (ladder) or its sample (deep VAE).
        self.up = [arch.gaussian_block(pixels if i == 0 else (widths[i - 1] if ladder else sizes[i - 1]),
                                       widths[i], sizes[i], f"up_{i + 1}", arch.encoder_act)
                   for i in range(arch.depth)]
        # Top-down generative blocks: p(z_i | z_{i+1}) from a block as wide as layer i+1's.
        self.down = [arch.gaussian_block(sizes[i + 1], widths[i + 1], sizes[i], f"down_{i + 1}", arch.decoder_act)
                     for i in range(arch.depth - 1)]
        self.merge = PrecisionMerge(name="precision_merge") if ladder and arch.depth > 1 else None
        self.decoder = arch.decoder(likelihoods.decoder_outputs(self.config.objective.loss))
        self.seed_generator = keras.random.SeedGenerator(None)
        self.add_kl_weight()
        images = keras.Input(shape=arch.input_shape, name="encoder_input")
        means = self.infer(images, mean_path=True)
        self.encoder = keras.Model(images, [t for pair in zip(means["q_mean"], means["q_log_var"]) for t in pair],
                                   name="encoder")

    @property
    def encoder_outputs(self):
        return tuple(f"{name}_{i + 1}" for i in range(self.config.architecture.depth) for name in ("mean", "log_var"))

    def infer(self, images, training=False, noise=None, mean_path=False):
        """The inference pass: per layer (bottom first) the posterior's mean and log-variance, the sample z,
        and below the top the generative prior's mean and log-variance given the sampled z above. `noise`
        (one array per layer) replaces the random draws; `mean_path` takes every z at its mean (no draws)."""
        arch = self.config.architecture
        depth = arch.depth
        q_mean, q_log_var, z = [None] * depth, [None] * depth, [None] * depth
        p_mean, p_log_var = [None] * (depth - 1), [None] * (depth - 1)

        def draw(i, mean, log_var):
            if mean_path:
                return mean
            eps = noise[i] if noise is not None else keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            return mean + ops.exp(0.5 * log_var) * ops.cast(eps, mean.dtype)

        inputs = self.flatten(images)
        if arch.inference == "bottom-up":
            for i in range(depth):
                _, q_mean[i], q_log_var[i] = self.up[i](inputs, training=training)
                z[i] = inputs = draw(i, q_mean[i], q_log_var[i])
            for i in range(depth - 1):
                _, p_mean[i], p_log_var[i] = self.down[i](z[i + 1], training=training)
        else:
            up_mean, up_log_var = [None] * depth, [None] * depth
            for i in range(depth):
                inputs, up_mean[i], up_log_var[i] = self.up[i](inputs, training=training)
            q_mean[-1], q_log_var[-1] = up_mean[-1], up_log_var[-1]
            z[-1] = draw(depth - 1, q_mean[-1], q_log_var[-1])
            for i in reversed(range(depth - 1)):
                _, p_mean[i], p_log_var[i] = self.down[i](z[i + 1], training=training)
                q_mean[i], q_log_var[i] = self.merge([up_mean[i], up_log_var[i], p_mean[i], p_log_var[i]])
                z[i] = draw(i, q_mean[i], q_log_var[i])
        return {"q_mean": q_mean, "q_log_var": q_log_var, "z": z, "p_mean": p_mean, "p_log_var": p_log_var}

    def forward(self, images, training=False):
        inferred = self.infer(images, training=training)
        return {**inferred, "outputs": self.decoder(inferred["z"][0], training=training)}

    # --- the loss -------------------------------------------------------------------------------------
    def layer_kls(self, inferred):
        """Per layer, per image: the ELBO's KL term of q(z_i | .) against p(z_i | z_{i+1}), the top's against
        N(0, I) (`unit_kl`, summed over the layer's units)."""
        return [ops.sum(self.unit_kl(inferred, i), axis=-1) for i in range(self.config.architecture.depth)]

    def loss_terms(self, images, outputs):
        objective = self.config.objective
        r_loss = likelihoods.reconstruction_loss(objective.loss, images, outputs["outputs"],
                                                 objective.r_loss_factor, objective.sigma)
        terms = {"r_loss": (r_loss, None)}
        terms.update({f"kl_{i + 1}": (kl, self.kl_beta) for i, kl in enumerate(self.layer_kls(outputs))})
        if objective.decoder_l2:
            terms["l2_loss"] = (penalties.l2_weights(self.decoder.trainable_weights, r_loss), objective.decoder_l2)
        return terms

    # --- the contract ----------------------------------------------------------------------------------
    def sample_codes(self, n, rng):
        """z_1 of an ancestral pass: z_L ~ N(0, I), then z_i ~ p(z_i | z_{i+1})."""
        sizes = self.config.architecture.latent_sizes
        z = rng.standard_normal((n, sizes[-1])).astype("float32")
        with no_gradients():
            for i in reversed(range(len(sizes) - 1)):
                _, mean, log_var = self.down[i](z, training=False)
                z = to_numpy(mean + ops.exp(0.5 * log_var) * rng.standard_normal((n, sizes[i])).astype("float32"))
        return z

    def log_importance_weights(self, images, samples, rng, likelihood=None):
        """log p(x | z_1) + sum_i log p(z_i | z_{i+1}) + log p(z_L) - sum_i log q(z_i | .) for each of the
        `samples` draws of the whole hierarchy."""
        likelihood, sizes = likelihood or self.training_likelihood(), self.config.architecture.latent_sizes
        x = np.asarray(images, dtype="float32")
        noise = [rng.standard_normal((samples, len(x), size)).astype("float32") for size in sizes]
        per_call = max(1, DECODES_PER_CALL // len(x))
        chunks = []
        with no_gradients():
            for start in range(0, samples, per_call):
                k = min(per_call, samples - start)
                x_rep = np.broadcast_to(x[None], (k,) + x.shape).reshape((-1,) + x.shape[1:])
                eps = [ops.convert_to_tensor(n[start:start + k].reshape(-1, n.shape[-1])) for n in noise]
                inferred = self.infer(x_rep, noise=eps)
                log_w = log_standard_normal(inferred["z"][-1])
                for i in range(len(sizes)):
                    log_w -= log_normal(inferred["z"][i], inferred["q_mean"][i], inferred["q_log_var"][i])
                    if i < len(sizes) - 1:
                        log_w += log_normal(inferred["z"][i], inferred["p_mean"][i], inferred["p_log_var"][i])
                log_px_z = likelihood.log_prob(x_rep, self.decoder(inferred["z"][0], training=False))
                chunks.append(log_px_z.reshape(k, len(x)) + to_numpy(ops.reshape(log_w, (k, len(x)))))
        return np.concatenate(chunks)

    def latent_summary(self, images, batch_size=500):
        """Per layer: active units (posterior means, every z at its mean, varying over the images by more than
        0.01, the rule of the study's VAE), the KL spent per unit (`unit_kl`, mean over images of one sampled
        pass) and the units active by KL (more than 0.01 nats): a ladder's posterior mean contains its prior's,
        so a unit that copies its prior varies with the image yet spends no KL."""
        means = self.encode(images)
        depth = self.config.architecture.depth
        active = [int(np.sum(np.var(means[f"mean_{i + 1}"], axis=0) > ACTIVE_UNIT_THRESHOLD)) for i in range(depth)]
        sums = [0.0] * depth
        with no_gradients():
            for batch in batches(images, batch_size):
                inferred = self.infer(batch)
                for i in range(depth):
                    sums[i] = sums[i] + to_numpy(self.unit_kl(inferred, i)).sum(axis=0)
        per_unit = [(s / len(images)).tolist() for s in sums]
        by_kl = [int(np.sum(np.asarray(u) > ACTIVE_KL_THRESHOLD)) for u in per_unit]
        return {"active_units": sum(active), **{f"active_units_layer{i + 1}": a for i, a in enumerate(active)},
                "active_units_kl": sum(by_kl), **{f"active_units_kl_layer{i + 1}": a for i, a in enumerate(by_kl)},
                **{f"kl_layer{i + 1}": float(np.sum(u)) for i, u in enumerate(per_unit)}, "kl_per_unit": per_unit}

    def unit_kl(self, inferred, i):
        """Layer i's KL term per image and unit: KL(q(z_i | .) || p(z_i | z_{i+1})) in closed form, the top's
        against N(0, I), except below the deep VAE's top, where it is log q - log p at the drawn z_i."""
        mean_q, log_var_q = inferred["q_mean"][i], inferred["q_log_var"][i]
        if i == self.config.architecture.depth - 1:
            return penalties.gaussian_kl_between(mean_q, log_var_q, ops.zeros_like(mean_q), ops.zeros_like(log_var_q),
                                                 axis=None)
        mean_p, log_var_p = inferred["p_mean"][i], inferred["p_log_var"][i]
        if self.config.architecture.inference == "bottom-up":
            # z_{i+1} was drawn from q(z_{i+1} | z_i) of this very z_i, so the closed form, which averages over z_i
            # with z_{i+1} held fixed, is not the ELBO's expectation (it overstated the deep VAE's loss by ~3
            # nats); the ladder draws z_i after z_{i+1}, given it, so its closed form is exact.
            return log_density_ratio(inferred["z"][i], mean_q, log_var_q, mean_p, log_var_p)
        return penalties.gaussian_kl_between(mean_q, log_var_q, mean_p, log_var_p, axis=None)

    def diagnostics(self, images):
        """A bar chart per layer of the KL each unit spends, units active by KL highlighted: which layers collapse."""
        summary = self.latent_summary(images)
        panels = [{"title": f"z_{i + 1}: {summary[f'active_units_layer{i + 1}']} of {len(kl)} active, "
                            f"{summary[f'active_units_kl_layer{i + 1}']} by KL", "values": kl,
                   "ylabel": "KL per unit (nats)", "highlight": [v > ACTIVE_KL_THRESHOLD for v in kl]}
                  for i, kl in enumerate(summary["kl_per_unit"])]
        return {"units_per_layer.png": ("bars", {"panels": panels,
                                                 "title": f"{self.config.architecture.inference} inference"})}
