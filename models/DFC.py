"""The feature-consistent VAE (DFC-VAE; Hou, Shen, Sun and Qiu, 2017): a VAE whose reconstruction term
compares a frozen classifier's hidden activations of the image and of its reconstruction instead of (or
beside) the pixels, for sharper images.

    loss = feature_weight · Σ_l ½ ||φ_l(x) − φ_l(x̂)||²  +  beta · KL  [+ pixel_weight · the pixel term]

with the paper's weights (the KL's alpha = 1, the feature term's beta = 0.5). The paper's φ_l are VGG-19's
relu1_1, relu2_1, relu3_1 on ImageNet; here they are the ReLU outputs of the three conv layers of the
dataset's own feature network (models/classifier.py: `feature_conv_1..3`), frozen. `feature_network`
names the classifier's weights file; `auto` lets the training run take the data's cached feature network
(utils/analysis/features.py). The classifier's layers are part of the model, so its saved weights hold them.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import ops

from models import likelihoods
from models.base import first
from models.classifier import CONV_LAYERS, build_classifier, layer_outputs
from models.registry import register_family
from models.settings import NON_NEGATIVE, setting
from models.VAE import VAEObjective, VariationalAutoencoder


@dataclass(frozen=True)
class DFCObjective(VAEObjective):
    """The DFC-VAE's loss settings: the paper's weights on the study's VAE."""

    feature_network: str = setting("auto", "DFC: the feature network's weights file (auto: the cached one of the data)")
    feature_layers: tuple[str, ...] = setting(CONV_LAYERS, "DFC: the feature network's layers the loss compares")
    feature_weight: float = setting(0.5, "DFC: the feature term's weight (the paper's beta)", check=NON_NEGATIVE)
    pixel_weight: float = setting(0.0, "DFC: the pixel term's weight beside it (0: the feature term alone)",
                                  check=NON_NEGATIVE)
    feature_classes: int = setting(10, "DFC: the feature network's classes", flag=False)

    def describe(self):
        """The loss in words, for summaries (params.json's `loss_formula`)."""
        pixel = (f" + {self.pixel_weight:g} × {likelihoods.describe(self.loss, self.r_loss_factor, self.sigma)}"
                 if self.pixel_weight else "")
        beta = "" if self.beta == 1 else f"{self.beta:g} × "
        return (f"{self.feature_weight:g} × Σ ½‖φ(x) − φ(x̂)‖² over {', '.join(self.feature_layers)}{pixel} + "
                f"{beta}KL" + (" (KL weight warming up)" if self.warmup_epochs or self.warmup_fraction else ""))


@register_family("dfc")
@keras.saving.register_keras_serializable(package="vae")
class FeatureConsistentVAE(VariationalAutoencoder):
    """A VAE trained on a frozen feature network's activations (the DFC-VAE)."""

    Objective = DFCObjective

    def build_networks(self):
        super().build_networks()
        objective = self.config.objective
        classifier = build_classifier(self.config.architecture.input_shape, objective.feature_classes)
        if objective.feature_network != "auto" and Path(objective.feature_network).is_file():
            classifier.load_weights(objective.feature_network)  # a new run; a saved one's weights hold it
        self.features = layer_outputs(classifier, list(objective.feature_layers))
        self.features.trainable = False

    @classmethod
    def with_resources(cls, config, resources):
        """The data's feature network for `feature_network: auto`; a ValueError for a file that is not there."""
        objective = config.objective
        if objective.feature_network != "auto":
            if not Path(objective.feature_network).is_file():
                raise ValueError(f"feature network {objective.feature_network} does not exist; pass auto (the "
                                 "data's own, trained once) or a classifier.weights.h5 made by utils/analysis/features.py")
            return config
        weights, classes = resources.feature_network()
        return dataclasses.replace(config, objective=dataclasses.replace(objective, feature_network=weights,
                                                                         feature_classes=classes))

    def feature_loss(self, images, reconstructions):
        """Σ_l ½ ||φ_l(x) − φ_l(x̂)||² per image, the feature network frozen."""
        real, rebuilt = self.features(images, training=False), self.features(reconstructions, training=False)
        real, rebuilt = (real, rebuilt) if isinstance(real, (list, tuple)) else ([real], [rebuilt])
        return sum(0.5 * ops.sum(ops.square(ops.cast(a, "float32") - ops.cast(b, "float32")),
                                 axis=tuple(range(1, len(a.shape)))) for a, b in zip(real, rebuilt))

    def loss_terms(self, images, outputs):
        objective = self.config.objective
        kl = self.prior_kl(outputs["mean"], outputs["log_var"])
        terms = {"feature_loss": (self.feature_loss(images, first(outputs["outputs"])), objective.feature_weight),
                 "kl_loss": (kl, self.kl_beta)}
        if objective.pixel_weight:
            terms["r_loss"] = (self.pixel_loss(images, outputs), objective.pixel_weight)
        return {**terms, **self.decoder_penalty(kl)}
