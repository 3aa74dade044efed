"""Binarized images: thresholded once (`static`), or drawn as Bernoulli pixels each time an image is seen
(`dynamic`, the literature's "dynamically binarized MNIST"), the test images then drawn once with a fixed seed.

`load_data(settings)` gives the dataset a run trains on; `training_input` what `fit` gets. Dynamic
binarization is a `keras.utils.PyDataset`, so it runs on every backend: batch b of epoch e is drawn from
a NumPy generator seeded with (seed, e, b), and the epoch's order from (seed, e), so a resumed run sees the
same images as an uninterrupted one. The validation images are binarized like the test images, once.
"""

import math

import keras
import numpy as np

from utils.data.loaders import load_dataset, with_validation

TEST_SEED = 0  # the test images of a dynamically binarized run are drawn once with this seed
VALIDATION_DRAW = 1  # ... and its validation images with the seed (TEST_SEED, VALIDATION_DRAW)


def load_raw(settings):
    """The dataset `settings` name as it is, not binarized."""
    return load_dataset(settings.dataset, settings.limit, image_size=settings.image_size, color=settings.color,
                        test_share=settings.test_share)


def load_data(settings):
    """The dataset `settings` name with its validation split (`val_fraction`), binarized statically or (the
    validation and test images, once) dynamically."""
    data = load_raw(settings)
    data = with_validation(data, settings.val_fraction)
    if settings.binarize == "static":
        data.x_train, data.x_val, data.x_test = ((x > 0.5).astype("float32")
                                                 for x in (data.x_train, data.x_val, data.x_test))
    elif settings.binarize == "dynamic":  # fixed samples, so every epoch's validation is comparable
        data.x_test = _drawn(data.x_test, TEST_SEED)
        data.x_val = _drawn(data.x_val, [TEST_SEED, VALIDATION_DRAW])
    if not settings.val_fraction:  # validated on the test images, as runs made before the split were
        data.x_val = data.x_test
    return data


def _drawn(images, seed):
    """Bernoulli pixels of `images`' intensities, drawn once with `seed`."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype="float32") < images).astype("float32")


class DynamicBinarization(keras.utils.PyDataset):
    """Training images in shuffled batches whose pixels are drawn from Bernoulli(intensity) every epoch."""

    def __init__(self, images, batch_size, seed):
        super().__init__()
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.epoch = 0
        self._order = None

    def set_epoch(self, epoch):
        """Draw the batches of `epoch` (from 0) next; called before each epoch."""
        if epoch != self.epoch:
            self.epoch, self._order = epoch, None

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        if self._order is None:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))
        batch = self.images[self._order[index * self.batch_size:(index + 1) * self.batch_size]]
        uniform = np.random.default_rng([self.seed, self.epoch, index]).random(batch.shape, dtype="float32")
        return ((uniform < batch).astype("float32"),)


def training_input(x, settings):
    """(input, fit's batching arguments, per-epoch listeners (epoch, epochs)): the images, shuffled in
    batches by `fit`; or, for dynamic binarization, a `DynamicBinarization` (which does its own batching
    and shuffling, and needs to know each epoch before it starts)."""
    if settings.binarize != "dynamic":
        return x, {"batch_size": settings.batch_size, "shuffle": True}, []
    dataset = DynamicBinarization(x, settings.batch_size, settings.seed)
    return dataset, {}, [lambda epoch, _: dataset.set_epoch(epoch)]
