"""Named variants: where `gelu_full_bn_before` or `sae_kl` is decided, beside the models they configure.

A preset is a set of flat model settings on top of the defaults (see `models.config.model_config`:
`family` and `architecture` pick the classes, every other key goes to the architecture or the
objective that has it), plus, under "training", the training settings its source used. The study's
nine variants are conv VAEs on top of its LeakyReLU base model. A family kept outside the project adds
its own presets from its module (`register_preset`); suites, which group presets, are the experiments'
(utils/experiments/suites.py).
"""

from models.activations import DEFAULT_ACTIVATION
from models.config import model_config

STUDY_PRESETS = {
    # 4.1: where GELU replaces LeakyReLU
    "base_lrelu": {},
    "gelu_encoder": {"encoder_act": "gelu"},
    "gelu_decoder": {"decoder_act": "gelu"},
    "gelu_full": {"encoder_act": "gelu", "decoder_act": "gelu"},
    # 4.2: dropout 0.25 after every activation
    "gelu_full_dropout": {"encoder_act": "gelu", "decoder_act": "gelu", "dropout": 0.25},
    # 4.3: batch norm after / before the activation (the study's notebook: conv -> BN -> GELU)
    "gelu_full_bn_after": {"encoder_act": "gelu", "decoder_act": "gelu", "norm": "batch", "norm_pos": "after"},
    "gelu_full_bn_before": {"encoder_act": "gelu", "decoder_act": "gelu", "norm": "batch", "norm_pos": "before"},
    # 4.4: layer norm after / before the activation, with dropout 0.1
    "gelu_full_ln_after": {"encoder_act": "gelu", "decoder_act": "gelu", "norm": "layer", "norm_pos": "after",
                           "dropout": 0.1},
    "gelu_full_ln_before": {"encoder_act": "gelu", "decoder_act": "gelu", "norm": "layer", "norm_pos": "before",
                            "dropout": 0.1},
}

_LECTURE_DENSE = {"architecture": "dense", "encoder_widths": [100], "decoder_widths": [100],
                  "encoder_act": "relu", "decoder_act": "relu"}
_SPARSE_CODE = {**_LECTURE_DENSE, "family": "sae", "z_dim": 300, "code_activation": "sigmoid"}

_HIERARCHY = {"family": "lvae", "architecture": "hierarchy", "latent_sizes": [64, 32, 16, 8, 4],
              "block_widths": [512, 256, 128, 64, 32], "training": {"batch_size": 256, "lr": 2e-4, "binarize": "dynamic"}}

_IWAE_NET = {"architecture": "dense", "encoder_widths": [200, 200], "decoder_widths": [200, 200],
             "encoder_act": "tanh", "decoder_act": "tanh", "z_dim": 50, "loss": "bce",
             "training": {"batch_size": 20, "lr": 1e-3, "binarize": "dynamic"}}

SYSTEM_PRESETS = {
    # The dense VAE framework: 420-210-105 / 200-400-800 ReLU, a Gaussian ("normal") reconstruction
    # term with a linear output, beta warming up over the first 3/7 of the epochs, batch 100. Its own
    # example (beta 100, lr 1e-5 with decay) is tuned to its neural data; on images beta 1 and Adam's
    # 1e-3 train (pass --beta 100 --lr 1e-5 for the example's values). --z-dim 16 for the larger latent.
    "dense_vae_small": {"family": "vae", "architecture": "dense", "encoder_widths": [420, 210, 105],
                        "decoder_widths": [200, 400, 800], "encoder_act": "relu", "decoder_act": "relu",
                        "output_activation": "linear", "loss": "gaussian", "sigma": 1.0,
                        "warmup_fraction": 3 / 7, "training": {"batch_size": 100, "lr": 1e-3}},
    # The small VAE on binarized MNIST: 784-500 tanh, z = 5, 500 tanh -> 784 sigmoid, Bernoulli
    # likelihood, 0.01 * sum(w^2) over the decoder, batch 100, Adam (1e-3), 10 epochs, pixels > 0.5.
    "dense_vae_binarized": {"family": "vae", "architecture": "dense", "encoder_widths": [500],
                            "decoder_widths": [500], "encoder_act": "tanh", "decoder_act": "tanh",
                            "z_dim": 5, "loss": "bce", "decoder_l2": 0.01,
                            "training": {"batch_size": 100, "lr": 1e-3, "epochs": 10, "binarize": "static"}},
    # GDL chapter 3's autoencoder: the study's conv architecture with a 2-D linear code, MSE.
    "conv_ae": {"family": "ae"},
    # Denoising (lecture notes): dense 100 -> 30 ReLU code, 100 ReLU -> 784; noise only while training.
    "dae_gaussian": {**_LECTURE_DENSE, "family": "dae", "z_dim": 30, "code_activation": "relu",
                     "noise": "gaussian:0.3"},
    "dae_dropout": {**_LECTURE_DENSE, "family": "dae", "z_dim": 30, "code_activation": "relu",
                    "noise": "dropout:0.5"},
    # Sparse (lecture notes): dense 100 ReLU -> 300 sigmoid code, 100 ReLU -> 784.
    "sae_l1": {**_SPARSE_CODE, "sparsity": "l1:1e-4"},
    "sae_kl": {**_SPARSE_CODE, "sparsity": "kl:0.05:1.0"},
    # The autoencoders suite: AE, denoising AE, sparse AE and VAE on the study's conv architecture.
    "conv_dae": {"family": "dae", "noise": "gaussian:0.3"},
    "conv_sae": {"family": "sae", "z_dim": 64, "code_activation": "sigmoid", "sparsity": "l1:1e-4"},
    "conv_vae": {},
    # The lecture notes' conv autoencoder: conv 16, 32, 64 (3x3, ReLU) each max-pooled by 2, conv 30, the
    # global average as a 30-d code; Dense 3*3*16 -> conv-transposes 32 (valid), 16, 1, each stride 2.
    "conv_ae_lecture": {"family": "ae", "encoder_conv_filters": [16, 32, 64, 30], "encoder_conv_kernel_size": [3, 3, 3, 3],
                        "encoder_conv_strides": [1, 1, 1, 1], "encoder_pool": [2, 2, 2, 1], "encoder_global_pool": True,
                        "encoder_head": "none", "z_dim": 30, "decoder_dense_shape": [3, 3, 16],
                        "decoder_conv_t_filters": [32, 16, 1], "decoder_conv_t_kernel_size": [3, 3, 3],
                        "decoder_conv_t_strides": [2, 2, 2], "decoder_conv_t_padding": ["valid", "same", "same"],
                        "encoder_act": "relu", "decoder_act": "relu", "code_activation": "relu"},
    # The study's VAE with a Bernoulli likelihood instead of 1000 x MSE.
    "conv_vae_bce": {"loss": "bce"},
    # The DFC-VAE (Hou et al. 2017) on the study's conv VAE: 0.5 x the feature term over the data's feature
    # network's three conv layers, + KL (alpha = 1); no pixel term.
    "dfc_vae": {"family": "dfc"},
    # The VAE-GAN (Larsen et al. 2016) on the study's conv VAE: the reconstruction compared in the last conv layer
    # of a discriminator of three strided convs (32, 64, 128), trained beside it; γ = 1; Adam at the paper's
    # rate of 3e-4 (the paper: RMSProp).
    "vae_gan": {"family": "vae_gan", "training": {"lr": 3e-4}},
    # The Ladder VAE's MNIST model (Sønderby et al. 2016): 5 stochastic layers of 64-32-16-8-4 units on blocks of
    # two dense layers of 512-256-128-64-32, leaky ReLU (0.01) and batch norm, Bernoulli pixels on dynamically
    # binarized images; batch 256 and Adam at 2e-4 (the official code). Beta warms up from 0 over the first half
    # of the run, the lvae family's default, so a run trains at full beta as long as it warmed up (the official
    # code warmed up for 200 epochs, then trained far longer; docs/training.md).
    "lvae_mnist": {**_HIERARCHY, "inference": "ladder"},
    # The same network inferred bottom-up: the deep VAE the paper compares with.
    "deep_vae_mnist": {**_HIERARCHY, "inference": "bottom-up"},
    # One latent layer of 64 on the same first block: a plain VAE of the hierarchy's kind.
    "vae_mlp_mnist": {**_HIERARCHY, "latent_sizes": [64], "block_widths": [512]},
    # Two layers: for quick tries.
    "lvae_small": {**_HIERARCHY, "latent_sizes": [32, 8], "block_widths": [256, 64]},
    # The IWAE paper's one-stochastic-layer MNIST model (Burda et al. 2016): 784-200-200 tanh to 50 Gaussian
    # units, 200-200 tanh to 784 Bernoulli pixels, on images binarized anew each time they are seen; Adam at
    # 1e-3, batch 20 (the paper then lowers the rate in eight stages over 3,280 epochs: not done here). The plain
    # VAE of that network, the VAE trained with k = 5 samples of the ELBO, and the IWAE at k = 5 and k = 50.
    "vae_mnist": {**_IWAE_NET, "family": "vae"},
    "vae_k_mnist": {**_IWAE_NET, "family": "iwae", "bound": "elbo", "k": 5},
    "iwae_mnist": {**_IWAE_NET, "family": "iwae", "k": 5},
    "iwae_k50_mnist": {**_IWAE_NET, "family": "iwae", "k": 50},
}

PRESETS = {**STUDY_PRESETS, **SYSTEM_PRESETS}

def register_preset(name, settings):
    """Add a preset (e.g. from a family kept outside the project, listed in VAE_FAMILY_MODULES)."""
    PRESETS[name] = settings


def preset_settings(name):
    """The flat model settings of preset `name` (with `family` and `architecture` when not a conv VAE)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return {k: v for k, v in PRESETS[name].items() if k != "training"}


def preset_config(name):
    """The `ModelConfig` of preset `name`."""
    return model_config(**preset_settings(name))


def preset_training(name):
    """The training settings preset `name` comes with (batch size, learning rate, ...); may be empty."""
    return dict(PRESETS.get(name, {}).get("training", {}))


def activation_settings(act, where="both"):
    """`encoder_act` and/or `decoder_act` for `--act ACT --where encoder|decoder|both`: only the side(s) named,
    so the other keeps the preset's activation (or the default)."""
    sides = ("encoder", "decoder") if where == "both" else (where,)
    return {f"{side}_act": act for side in sides}


def variant_label(config):
    """A short folder-name label for a `ModelConfig`, e.g. `lrelu`, `gelu_both_bn_before_do0.25`, `dae_dense_relu`."""
    arch, objective = config.architecture, config.objective
    enc, dec = arch.encoder_act, arch.decoder_act
    if enc == dec:
        label = enc if enc == DEFAULT_ACTIVATION else f"{enc}_both"
    elif dec == DEFAULT_ACTIVATION:
        label = f"{enc}_encoder"
    elif enc == DEFAULT_ACTIVATION:
        label = f"{dec}_decoder"
    else:
        label = f"{enc}_{dec}"
    if (config.family, arch.kind) != ("vae", "conv"):
        label = f"{config.family}_{arch.kind}_{label}"
    if arch.norm != "none":
        label += f"_{'bn' if arch.norm == 'batch' else 'ln'}_{arch.norm_pos}"
    if arch.dropout:
        label += f"_do{arch.dropout:g}"
    if objective.loss != "mse":
        label += f"_{objective.loss}"
    if arch.z_dim != 2:
        label += f"_z{arch.z_dim}"
    return label
