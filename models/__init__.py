"""Model families. Importing the package registers the project's families (`--family`) and their custom
layers with `keras.saving`."""

from models.activations import FusedGELU
from models.AE import Autoencoder, CodeGaussian
from models.config import ModelConfig, model_config
from models.DFC import FeatureConsistentVAE
from models.IWAE import ImportanceWeightedAutoencoder
from models.layers import Sampling
from models.LVAE import HierarchyArchitecture, LadderVAE, PrecisionMerge, SoftplusLogVariance
from models.normalization import FusedBatchNormalization
from models.registry import FAMILIES, family_class, family_names, register_family
from models.VAE import VariationalAutoencoder
from models.VAEGAN import VAEGAN


def build_model(config):
    """The Keras model of a `ModelConfig`."""
    return family_class(config.family)(config)


__all__ = ["FAMILIES", "Autoencoder", "CodeGaussian", "FeatureConsistentVAE", "FusedBatchNormalization", "FusedGELU",
           "HierarchyArchitecture", "ImportanceWeightedAutoencoder",
           "LadderVAE", "ModelConfig", "PrecisionMerge", "Sampling", "SoftplusLogVariance", "VAEGAN", "VariationalAutoencoder", "build_model",
           "family_class", "family_names", "model_config", "register_family"]
