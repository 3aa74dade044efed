"""The importance-weighted autoencoder (IWAE; Burda, Grosse and Salakhutdinov, 2016): the VAE's encoder and
decoder trained on the k-sample bound

    L_k = E[ log (1/k) Σ_i w_i ],   w_i = p(x, z_i) / q(z_i | x),   z_1 .. z_k ~ q(z | x),

which is tighter than the ELBO as k grows (L_1 is the ELBO) and keeps more latent units active. With
`bound: elbo` the same k draws give the ELBO averaged over them, (1/k) Σ_i log w_i: the paper's control, a
VAE trained with k samples. Both estimate log w_i by Monte Carlo (log p(x | z_i) + log p(z_i) − log q(z_i | x)),
so the two objectives differ only in how they pool the same draws; at k = 1 both are the VAE's ELBO with its
KL estimated at the draw (the VAE's closed form is its expectation). Scoring (evaluate.py) is the VAE's:
the importance-sampled NLL with K draws, active units by the posterior means' variance.
"""

import math
from dataclasses import dataclass

import keras
from keras import ops

from models import likelihoods
from models.gaussian import log_normal
from models.registry import register_family
from models.settings import POSITIVE_INT, setting
from models.VAE import VAEObjective, VariationalAutoencoder

BOUNDS = ("iwae", "elbo")


@dataclass(frozen=True)
class IWAEObjective(VAEObjective):
    """The IWAE's loss settings: k importance samples per image, pooled as the IWAE bound or as the ELBO."""

    loss: str = setting("bce", "reconstruction term, a likelihood (models/likelihoods.py)",
                        choices=likelihoods.LIKELIHOODS)
    k: int = setting(5, "iwae: draws from q(z | x) per image in the training bound", check=POSITIVE_INT)
    bound: str = setting("iwae", "iwae: log (1/k) Σ w_i, tighter than the ELBO; elbo: (1/k) Σ log w_i, the VAE "
                                 "trained with k samples", choices=BOUNDS)

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        pooled = "log (1/k) Σ w_i" if self.bound == "iwae" else "(1/k) Σ log w_i"
        return f"−{pooled}, k = {self.k}, w_i = p(x, z_i) / q(z_i | x), p(x | z) {self.loss}"


@register_family("iwae")
@keras.saving.register_keras_serializable(package="vae")
class ImportanceWeightedAutoencoder(VariationalAutoencoder):
    """The VAE's networks trained on the k-sample importance-weighted bound (or, `bound: elbo`, its ELBO)."""

    Objective = IWAEObjective

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        objective = config.objective
        if objective.beta != 1 or objective.warmup_epochs or objective.warmup_fraction:
            raise ValueError("the importance-weighted bound weighs p(z) and q(z | x) inside each weight, so it has "
                             "no KL weight to change: drop --beta and the warm-up")

    def build_networks(self):
        super().build_networks()
        self.draws = keras.random.SeedGenerator(None)

    def forward(self, images, training=False):
        """The posterior, k draws from it per image (`eps`, k x batch x z_dim) and the decoder's outputs for
        every draw (`all_outputs`, draw-major); `outputs` is the first draw's, as the VAE's `forward` gives one."""
        mean, log_var, _ = self.encoder(images, training=training)
        k, z_dim = self.config.objective.k, self.config.z_dim
        eps = keras.random.normal((k, ops.shape(mean)[0], z_dim), seed=self.draws)
        z = mean[None] + ops.exp(0.5 * log_var)[None] * ops.cast(eps, mean.dtype)
        decoded = self.decoder(ops.reshape(z, (-1, z_dim)), training=training)
        first = decoded[0] if isinstance(decoded, (list, tuple)) else decoded
        return {"mean": mean, "log_var": log_var, "z": z, "all_outputs": decoded,
                "outputs": first[: ops.shape(mean)[0]]}

    def log_weights(self, images, outputs):
        """log w_i = log p(x | z_i) + log p(z_i) − log q(z_i | x), a (k, batch) tensor, in nats."""
        k = self.config.objective.k
        z, mean, log_var = outputs["z"], outputs["mean"], outputs["log_var"]
        repeated = ops.reshape(ops.repeat(images[None], k, axis=0), (-1,) + tuple(images.shape[1:]))
        log_px_z = likelihoods.log_likelihood(self.config.objective.loss, repeated, outputs["all_outputs"],
                                              self.config.objective.sigma)
        return (ops.reshape(log_px_z, (k, -1)) + self.log_prior(z)
                - log_normal(z, ops.cast(mean, "float32")[None], ops.cast(log_var, "float32")[None]))

    def loss_terms(self, images, outputs):
        objective = self.config.objective
        log_w = self.log_weights(images, outputs)
        if objective.bound == "iwae":
            bound = ops.logsumexp(log_w, axis=0) - math.log(objective.k)
        else:
            bound = ops.mean(log_w, axis=0)
        return {f"{objective.bound}_loss": (-bound, None), **self.decoder_penalty(bound)}
