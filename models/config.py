"""`ModelConfig`: a family name, an architecture (models/architectures.py) and that family's objective.

It is written to `params.json` as `{"family", "family_module", "architecture": {"kind", ...},
"objective": {...}}`. Run folders made before the families existed hold a flat dict of conv-VAE
settings, which `ModelConfig.from_dict` still reads.
"""

import dataclasses
import importlib
from dataclasses import dataclass

from models.architectures import ARCHITECTURES, architecture_from_dict
from models.registry import family_class
from models.settings import check_choice, from_fields, plain


@dataclass(frozen=True)
class ModelConfig:
    """Every setting of a model: the family, its architecture and its objective."""

    family: str
    architecture: object
    objective: object

    def __post_init__(self):
        expected = family_class(self.family).Objective
        if not isinstance(self.objective, expected):
            raise ValueError(f"family {self.family} needs a {expected.__name__}, not {type(self.objective).__name__}")
        family_class(self.family).check_config(self)

    @property
    def z_dim(self):
        return self.architecture.z_dim

    def for_images(self, image_shape):
        """This config with the data's image shape (and a matching number of output channels)."""
        return dataclasses.replace(self, architecture=self.architecture.for_images(image_shape))

    def for_run(self, epochs):
        """This config as a new run of `epochs` records it: an objective's settings relative to the run's length
        (a warm-up's fraction) fixed in epochs by its optional `for_run`, so resuming or extending keeps them."""
        fixed = getattr(self.objective, "for_run", None)
        return dataclasses.replace(self, objective=fixed(epochs)) if fixed else self

    def to_dict(self):
        """Plain JSON-ready values; `family_module` lets a process that has not imported the family find it."""
        return {"family": self.family, "family_module": family_class(self.family).__module__,
                "architecture": self.architecture.to_dict(), "objective": plain(self.objective)}

    @classmethod
    def from_dict(cls, values):
        """The config of `to_dict`'s output, or of a flat conv-VAE dict from an older run folder."""
        if "architecture" not in values:
            return model_config(**values)
        if values.get("family_module"):
            try:
                importlib.import_module(values["family_module"])
            except ImportError:
                pass  # family_class names the family and how to register it
        family = values.get("family", "vae")
        objective = from_fields(family_class(family).Objective, values.get("objective", {}), f"{family} objective")
        return cls(family, architecture_from_dict(values["architecture"]), objective)


def model_config(family="vae", architecture=None, **settings):
    """A `ModelConfig` from flat settings (as flags and presets give them), each sent to the architecture
    or the objective that has it; a setting neither has is an error that names it. The architecture
    defaults to the family's own (`default_architecture`)."""
    model = family_class(family)
    architecture = architecture or model.default_architecture
    check_choice("architecture", architecture, tuple(ARCHITECTURES))
    arch_class, objective_class = ARCHITECTURES[architecture], model.Objective
    arch_fields = {f.name for f in dataclasses.fields(arch_class)}
    objective_fields = {f.name for f in dataclasses.fields(objective_class)}
    unknown = set(settings) - arch_fields - objective_fields
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))}: not a setting of a {architecture} {family}")
    return ModelConfig(family,
                       arch_class(**{k: v for k, v in settings.items() if k in arch_fields}),
                       objective_class(**{k: v for k, v in settings.items() if k in objective_fields}))
