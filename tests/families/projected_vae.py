"""A family kept outside the project with a resource of its own, to test that a family resolves what it needs:
the study's VAE plus a term that compares a frozen linear network's projections of an image and of its
reconstruction, the network being the first principal components of the training images, computed once per
dataset and cached. Load it with `VAE_FAMILY_MODULES=projected_vae` and this folder on PYTHONPATH."""

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from models import register_family
from models.base import first
from models.settings import POSITIVE, POSITIVE_INT, setting
from models.VAE import VAEObjective, VariationalAutoencoder


@dataclass(frozen=True)
class ProjectedObjective(VAEObjective):
    """The VAE's loss plus `projection_weight` · ½‖P x − P x̂‖², P the data's top principal components."""

    projection: str = setting("auto", "projected: the components file (auto: the data's own, computed once)")
    projection_dims: int = setting(8, "projected: principal components in the frozen projection", check=POSITIVE_INT)
    projection_weight: float = setting(1.0, "projected: the projection term's weight", check=POSITIVE)

    def describe(self):
        return f"{super().describe()} + {self.projection_weight:g} × ½‖P x − P x̂‖² (P: {self.projection_dims} PCs)"


@register_family("projected_vae")
@keras.saving.register_keras_serializable(package="plugins")
class ProjectedVAE(VariationalAutoencoder):
    """The study's VAE with a frozen principal-component projection in its loss."""

    Objective = ProjectedObjective

    @classmethod
    def with_resources(cls, config, resources):
        """The data's principal components, computed from its training images the first time and cached."""
        objective = config.objective
        if objective.projection != "auto":
            return config
        images = resources.data.x_train[:2000]
        images = images.reshape(len(images), -1)
        key = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:12]
        path = Path(resources.cache) / f"pca_{key}_{objective.projection_dims}.npy"
        if not path.is_file():
            centred = images - images.mean(axis=0)
            components = np.linalg.svd(centred, full_matrices=False)[2][:objective.projection_dims]
            np.save(path, components.T.astype("float32"))
            resources.log(f"principal components of {len(images)} training images cached in {path}")
        return dataclasses.replace(config, objective=dataclasses.replace(objective, projection=str(path)))

    def build_networks(self):
        super().build_networks()
        pixels = int(np.prod(self.config.architecture.input_shape))
        self.projection = layers.Dense(self.config.objective.projection_dims, use_bias=False, trainable=False,
                                       name="projection")
        self.projection.build((None, pixels))
        if Path(self.config.objective.projection).is_file():  # a new run; a saved one's weights hold it
            self.projection.kernel.assign(np.load(self.config.objective.projection))

    def loss_terms(self, images, outputs):
        flat = ops.reshape(ops.cast(images, "float32"), (ops.shape(images)[0], -1))
        rebuilt = ops.reshape(ops.cast(first(outputs["outputs"]), "float32"), (ops.shape(images)[0], -1))
        gap = 0.5 * ops.sum(ops.square(self.projection(flat) - self.projection(rebuilt)), axis=-1)
        return {**super().loss_terms(images, outputs), "projection_loss": (gap, self.config.objective.projection_weight)}
