"""Model families. Importing the package registers their custom layers with `keras.saving`."""

from models.activations import FusedGELU
from models.VAE import Sampling, VAEConfig, VariationalAutoencoder

__all__ = ["FusedGELU", "Sampling", "VAEConfig", "VariationalAutoencoder"]
