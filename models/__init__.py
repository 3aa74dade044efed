"""Model families. Importing the package registers their custom layers with `keras.saving`."""

from models.activations import FusedGELU
from models.AE import Autoencoder
from models.families import FAMILIES, ModelConfig, build_model, model_config
from models.layers import Sampling
from models.normalization import FusedBatchNormalization
from models.VAE import VariationalAutoencoder

__all__ = ["FAMILIES", "Autoencoder", "FusedBatchNormalization", "FusedGELU", "ModelConfig", "Sampling",
           "VariationalAutoencoder", "build_model", "model_config"]
