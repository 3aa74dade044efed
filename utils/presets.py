"""Named variants of the study and the suites that group them: where `gelu_full_bn_before` is decided.

A preset is a set of `VAEConfig` fields on top of the defaults (the study's LeakyReLU base model).
"""

PRESETS = {
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

SUITES = {
    "activations": ["base_lrelu", "gelu_encoder", "gelu_decoder", "gelu_full"],
    "dropout": ["base_lrelu", "gelu_full", "gelu_full_dropout"],
    "batchnorm": ["gelu_full", "gelu_full_bn_after", "gelu_full_bn_before"],
    "layernorm": ["gelu_full", "gelu_full_ln_after", "gelu_full_ln_before"],
}
SUITES["all"] = list(PRESETS)


def preset_settings(name):
    """The `VAEConfig` fields of preset `name`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def activation_settings(act, where):
    """`encoder_act`/`decoder_act` for `--act ACT --where encoder|decoder|both`; LeakyReLU elsewhere."""
    return {"encoder_act": act if where in ("encoder", "both") else "lrelu",
            "decoder_act": act if where in ("decoder", "both") else "lrelu"}


def variant_label(config):
    """A short folder-name label for a config, e.g. `lrelu`, `gelu_both`, `gelu_both_bn_before_do0.25`."""
    enc, dec = config.encoder_act, config.decoder_act
    if enc == dec:
        label = enc if enc == "lrelu" else f"{enc}_both"
    elif dec == "lrelu":
        label = f"{enc}_encoder"
    elif enc == "lrelu":
        label = f"{dec}_decoder"
    else:
        label = f"{enc}_{dec}"
    if config.norm != "none":
        label += f"_{'bn' if config.norm == 'batch' else 'ln'}_{config.norm_pos}"
    if config.dropout:
        label += f"_do{config.dropout:g}"
    if config.loss != "mse":
        label += f"_{config.loss}"
    if config.z_dim != 2:
        label += f"_z{config.z_dim}"
    return label
