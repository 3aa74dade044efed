"""How a run is trained (not what): `TrainSettings`, one `setting` field per flag, and what a run folder
records of them. Imports no framework, so every layer can read a run's settings."""

import dataclasses
import math
from dataclasses import dataclass

from models.settings import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, RATE, Check, check_fields, setting

BINARIZE = ("none", "static", "dynamic")
SHARE = Check("a share between 0 and 1", lambda v: 0 < v < 1)


@dataclass
class TrainSettings:
    """Data, epochs, optimizer, seed and speed switches; the defaults are the study's."""

    dataset: str = setting("mnist", "mnist, mnist_5k, fashion_mnist, cifar10, or a path (.npz, .npy, a folder "
                                    "of images)")
    epochs: int = setting(200, "epochs in all", check=POSITIVE_INT)
    steps: int | None = setting(None, "a budget of optimizer steps instead of --epochs: the fewest whole epochs "
                                      "that make at least N steps on the training images (recorded beside the "
                                      "budget), so runs on more or fewer images can take the same number of steps",
                                check=POSITIVE_INT)
    batch_size: int = setting(32, "images per training step", check=POSITIVE_INT)
    lr: float = setting(0.0005, "Adam's learning rate", check=POSITIVE)
    lr_decay: float = setting(0.0, "Keras 2's decay: the learning rate at step t is lr / (1 + decay * t)",
                              check=NON_NEGATIVE)
    seed: int | None = setting(None, "seeds Python, NumPy and the backend (default: drawn and recorded)",
                               check=NON_NEGATIVE_INT)
    limit: int | None = setting(None, "keep the first N training images (N/6 test, at least 100)", check=POSITIVE_INT)
    plot_every: int | None = setting(None, "redraw viz/ every N epochs (default: at the end)", check=POSITIVE_INT)
    jit: bool | None = setting(None, "XLA-compile the whole training step (default: on GPU, and always on JAX)")
    mixed_precision: bool = setting(False, "mixed_float16 on GPU, mixed_bfloat16 on CPU")
    steps_per_execution: int | None = setting(None, "training steps per compiled call (default 16; 1 on PyTorch)",
                                              check=POSITIVE_INT)
    image_size: str | None = setting(None, "image folders: resize to N or HxW (default: the images' own size)")
    color: str | None = setting(None, "image folders: gray or rgb (default: gray if every image is)",
                                choices=("gray", "rgb"))
    test_share: float | None = setting(None, "image folders and .npy files: share held out for testing "
                                              "(default 0.1)", check=SHARE)
    val_fraction: float = setting(0.1, "share of the training images held out for validation (the best epoch is "
                                       "chosen on them; the same images for every run on the same data and --limit); "
                                       "0: validate on the test images, as runs made before the split did",
                                  check=RATE)
    binarize: str = setting("none", "static: pixels > 0.5; dynamic: Bernoulli samples each time an image is seen",
                            choices=BINARIZE)
    tensorboard: bool = setting(False, "write TensorBoard logs into the run folder (needs TensorFlow)")
    eval_samples: int = setting(0, "when training ends, score the run on its test images as evaluate.py does, "
                                   "with K importance samples (0: not)", check=NON_NEGATIVE_INT)

    def __post_init__(self):
        check_fields(self)


# What a setting meant in run folders made before it existed: they validated on the test images.
LEGACY_DEFAULTS = {"val_fraction": 0.0}


def recorded_settings(params):
    """The `TrainSettings` a run folder's `params.json` records, with older folders' missing settings read as
    what those runs did (`LEGACY_DEFAULTS`)."""
    return TrainSettings(**{**LEGACY_DEFAULTS, **params["training"]})


def steps_per_epoch(n_images, batch_size):
    """Optimizer steps in one epoch over `n_images` (the last batch may be short)."""
    return math.ceil(n_images / batch_size)


def epochs_for_steps(steps, n_images, batch_size):
    """The fewest whole epochs over `n_images` that make at least `steps` optimizer steps."""
    return math.ceil(steps / steps_per_epoch(n_images, batch_size))


def with_step_budget(settings, n_images):
    """`settings` with `epochs` computed from its step budget on `n_images` training images (unchanged
    without a budget)."""
    if settings.steps is None:
        return settings
    return dataclasses.replace(settings, epochs=epochs_for_steps(settings.steps, n_images, settings.batch_size))
