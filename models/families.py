"""Model families by name, and their settings: where `--family ae|dae|sae|vae` becomes a model class.

A `ModelConfig` is a family name, an architecture (models/architectures.py) and that family's
objective (its loss settings). It is written to `params.json` as
`{"family": ..., "architecture": {"kind": ..., ...}, "objective": {...}}`; run folders made before
the families existed hold a flat dict of conv-VAE settings, which `ModelConfig.from_dict` still reads.
"""

import dataclasses
from dataclasses import dataclass, field

from models.AE import AEObjective, Autoencoder
from models.architectures import ARCHITECTURES, ConvArchitecture, architecture_from_dict, check_choice
from models.VAE import VAEObjective, VariationalAutoencoder

FAMILIES = {"vae": VariationalAutoencoder, "ae": Autoencoder, "dae": Autoencoder, "sae": Autoencoder}


@dataclass(frozen=True)
class ModelConfig:
    """Every setting of a model: the family, its architecture and its objective."""

    family: str = "vae"
    architecture: object = field(default_factory=ConvArchitecture)
    objective: object = field(default_factory=VAEObjective)

    def __post_init__(self):
        check_choice("family", self.family, tuple(FAMILIES))
        expected = FAMILIES[self.family].Objective
        if not isinstance(self.objective, expected):
            raise ValueError(f"family {self.family} needs a {expected.__name__}, not {type(self.objective).__name__}")
        if self.family == "dae" and self.objective.noise == "none":
            raise ValueError("a denoising autoencoder needs input noise: --noise gaussian:0.3 or dropout:0.5")
        if self.family == "sae" and self.objective.sparsity == "none":
            raise ValueError("a sparse autoencoder needs a penalty: --sparsity l1:1e-4 or kl:0.05:1.0")

    @property
    def z_dim(self):
        return self.architecture.z_dim

    def for_images(self, image_shape):
        """This config with the data's image shape (and a matching number of output channels)."""
        return dataclasses.replace(self, architecture=self.architecture.for_images(image_shape))

    def to_dict(self):
        """Plain JSON-ready values."""
        return {"family": self.family, "architecture": self.architecture.to_dict(),
                "objective": self.objective.to_dict()}

    @classmethod
    def from_dict(cls, values):
        """The config of `to_dict`'s output, or of a flat conv-VAE dict from an older run folder."""
        if "architecture" not in values:
            return model_config(**values)
        family = values.get("family", "vae")
        check_choice("family", family, tuple(FAMILIES))
        objective_class = FAMILIES[family].Objective
        return cls(family, architecture_from_dict(values["architecture"]),
                   _from_fields(objective_class, values.get("objective", {}), f"{family} objective"))


def model_config(family="vae", architecture="conv", **settings):
    """A `ModelConfig` from flat settings (as flags and presets give them), each sent to the
    architecture or the objective that has it; a setting neither has is an error that names it."""
    check_choice("family", family, tuple(FAMILIES))
    check_choice("architecture", architecture, tuple(ARCHITECTURES))
    arch_class, objective_class = ARCHITECTURES[architecture], FAMILIES[family].Objective
    arch_fields = {f.name for f in dataclasses.fields(arch_class)}
    objective_fields = {f.name for f in dataclasses.fields(objective_class)}
    unknown = set(settings) - arch_fields - objective_fields
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))}: not a setting of a {architecture} {family}")
    return ModelConfig(family,
                       arch_class(**{k: v for k, v in settings.items() if k in arch_fields}),
                       objective_class(**{k: v for k, v in settings.items() if k in objective_fields}))


def _from_fields(cls, values, what):
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} settings: {', '.join(sorted(unknown))}")
    return cls(**values)


def build_model(config):
    """The Keras model of a `ModelConfig`."""
    return FAMILIES[config.family](config)
