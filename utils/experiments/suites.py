"""Suites: named lists of presets (models/presets.py) trained together and compared, seed by seed. A family
kept outside the project can add a suite of its presets from its module (`register_suite`)."""

from models.presets import STUDY_PRESETS

SUITES = {
    "activations": ["base_lrelu", "gelu_encoder", "gelu_decoder", "gelu_full"],
    "dropout": ["base_lrelu", "gelu_full", "gelu_full_dropout"],
    "batchnorm": ["gelu_full", "gelu_full_bn_after", "gelu_full_bn_before"],
    "layernorm": ["gelu_full", "gelu_full_ln_after", "gelu_full_ln_before"],
    "all": list(STUDY_PRESETS),
    "autoencoders": ["conv_vae", "conv_ae", "conv_dae", "conv_sae"],
    "hierarchy": ["lvae_mnist", "deep_vae_mnist", "vae_mlp_mnist"],
    "sharpness": ["conv_vae", "conv_vae_bce", "dfc_vae", "vae_gan"],
    "iwae": ["vae_mnist", "vae_k_mnist", "iwae_mnist", "iwae_k50_mnist"],
}


def register_suite(name, variants):
    """Add a suite of presets."""
    SUITES[name] = list(variants)
