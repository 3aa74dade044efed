"""Every objective with a likelihood is its ELBO: at beta = 1 the mean training loss (`per_sample_losses`) equals
the mean of -log w (`log_importance_weights` at K = 1), within the Monte-Carlo error of many draws. The deep VAE
is also checked where a closed-form KL of its lower layers goes most wrong: a z_2 that copies z_1, and a prior
that predicts z_1 from it.

Left out, each for a reason: the DFC-VAE's loss compares a classifier's features of the image and of its
reconstruction, so it bounds no likelihood of the pixels; `mse`/`rmse` are scaled errors with no noise model
(`training_likelihood` refuses them). Neither has an ELBO to equal."""

import math

import keras
import numpy as np
import pytest

from conftest import numpy_of
from models import build_model, model_config

DRAWS = 200  # passes of each image through the loss, and K = 1 bounds of each: the error falls as 1/sqrt(DRAWS)
RNG = np.random.default_rng(0)
BINARY = (RNG.random((24, 28, 28, 1)) > 0.6).astype("float32")
GREY = RNG.random((24, 28, 28, 1)).astype("float32")
DENSE = {"encoder_widths": [32], "decoder_widths": [32], "z_dim": 3}
HIERARCHY = {"latent_sizes": [4, 3, 2], "block_widths": [16, 8, 8], "warmup_fraction": 0.0}
FAMILIES = {
    "vae_bce": (lambda: model_config("vae", "dense", loss="bce", **DENSE), BINARY),
    "vae_gaussian": (lambda: model_config("vae", "dense", loss="gaussian", sigma=0.3, **DENSE), GREY),
    "vae_gaussian_learned": (lambda: model_config("vae", "dense", loss="gaussian_learned", **DENSE), GREY),
    "lvae_ladder": (lambda: model_config("lvae", inference="ladder", **HIERARCHY), BINARY),
    "deep_vae": (lambda: model_config("lvae", inference="bottom-up", **HIERARCHY), BINARY),
}


def loss_minus_bound(model, images, draws=DRAWS):
    """(mean loss, mean -log w, the difference's standard error): per image, the mean over `draws` passes of
    the training loss and over `draws` K = 1 bounds, drawn independently; the error is over images."""
    total, _ = model.per_sample_losses(np.concatenate([images] * draws))
    loss = numpy_of(total).reshape(draws, len(images)).mean(axis=0)
    bound = -model.log_importance_weights(images, draws, np.random.default_rng(1)).mean(axis=0)
    gap = loss - bound
    return float(loss.mean()), float(bound.mean()), float(gap.std(ddof=1) / math.sqrt(len(gap)))


def assert_loss_is_the_elbo(model, images):
    assert float(numpy_of(model.kl_beta)) == 1.0
    loss, bound, error = loss_minus_bound(model, images)
    print(f"loss {loss:.3f}, -mean log w {bound:.3f}, difference {loss - bound:+.3f} ± {error:.3f}")
    assert abs(loss - bound) < 4 * error, (loss, bound, error)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_training_loss_is_the_negative_elbo(family):
    config, images = FAMILIES[family]
    keras.utils.set_random_seed(0)
    assert_loss_is_the_elbo(build_model(config()), images)


def copy_input(block, variance, slope):
    """Set a one-layer Gaussian block of n units in and out (width 2n) to mean = its input, variance fixed:
    [x, -x] through the leaky ReLU, then l(x) - l(-x) = (1 + slope) x."""
    n = block.input_shape[-1]
    eye = np.eye(n, dtype="float32")
    block.get_layer(f"{block.name}_dense_0").set_weights([np.hstack([eye, -eye]), np.zeros(2 * n, "float32")])
    block.get_layer(f"{block.name}_mean").set_weights([np.vstack([eye, -eye]) / (1 + slope), np.zeros(n, "float32")])
    softplus_inverse = math.log(math.expm1(variance - 1e-4))  # the variance is softplus(h) + 1e-4
    block.get_layer(f"{block.name}_log_var").set_weights([np.zeros((2 * n, n), "float32"),
                                                          np.full(n, softplus_inverse, "float32")])


def test_the_deep_vaes_loss_is_its_elbo_where_z2_copies_z1():
    """q(z_2 | z_1) = N(z_1, 0.05) and p(z_1 | z_2) = N(z_2, 0.2): the prior predicts the very z_1 it scores. A
    closed-form KL of layer 1, which takes z_1 independent of z_2, overstates it by var_q(z_1) / 0.2 per unit."""
    keras.utils.set_random_seed(0)
    model = build_model(model_config("lvae", inference="bottom-up", latent_sizes=[4, 4], block_widths=[8, 8],
                                     block_depth=1, norm="none", warmup_fraction=0.0))
    slope = model.config.architecture.leaky_slope
    copy_input(model.up[1], 0.05, slope)
    copy_input(model.down[0], 0.2, slope)
    inferred = model.infer(BINARY)
    np.testing.assert_allclose(numpy_of(model.down[0](inferred["z"][1])[1]), numpy_of(inferred["z"][1]), atol=1e-5)
    assert_loss_is_the_elbo(model, BINARY)
