"""The model: shapes for every pair of options, the loss terms by hand, the loss Keras's own steps see,
config and weight round trips."""

import itertools

import keras
import numpy as np
import pytest

from conftest import numpy_of
from models import VariationalAutoencoder, model_config
from models.activations import ACTIVATIONS, LRELU_SLOPE
from models.architectures import ConvArchitecture

FACTORS = (ACTIVATIONS, ("none", "batch", "layer"), ("before", "after"), (0.0, 0.25))


def pairwise(factors):
    """Option tuples in which every pair of values of any two factors appears at least once (21 here, not the
    product's 84): the two largest factors crossed, the others cycled through."""
    rows = []
    for i, (a, b) in enumerate(itertools.product(factors[0], factors[1])):
        rows.append((a, b) + tuple(f[(i + i // len(f) * k) % len(f)] for k, f in enumerate(factors[2:])))
    return rows


OPTIONS = pairwise(FACTORS)


def test_the_options_cover_every_pair():
    for (i, fi), (j, fj) in itertools.combinations(enumerate(FACTORS), 2):
        assert {(row[i], row[j]) for row in OPTIONS} == set(itertools.product(fi, fj)), (i, j)


@pytest.mark.parametrize("act,norm,norm_pos,dropout", OPTIONS)
def test_shapes_for_every_pair_of_options(act, norm, norm_pos, dropout):
    config = model_config(encoder_act=act, decoder_act="lrelu" if act == "gelu" else act, norm=norm,
                          norm_pos=norm_pos, dropout=dropout, z_dim=3)
    model = VariationalAutoencoder(config)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype="float32")
    encoded = model.encode(x)
    assert {k: v.shape for k, v in encoded.items()} == {"mean": (4, 3), "log_var": (4, 3), "z": (4, 3)}
    assert model.reconstruct(x).shape == (4, 28, 28, 1) and model(x)["outputs"].shape == (4, 28, 28, 1)
    names = [layer.name for layer in model.encoder.layers]
    assert ("encoder_bn_0" in names) == (norm == "batch") and ("encoder_ln_0" in names) == (norm == "layer")
    assert ("encoder_dropout_0" in names) == (dropout > 0)
    if norm != "none":  # conv -> [norm] -> act -> [norm]: the order follows norm_pos
        act_at, norm_at = names.index("encoder_act_0"), names.index(f"encoder_{norm[0]}n_0")
        assert (norm_at < act_at) == (norm_pos == "before")


def test_colour_images_and_the_study_architecture():
    rgb = model_config().for_images((32, 32, 3))
    model = VariationalAutoencoder(rgb)
    assert model.reconstruct(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 32, 32, 3)
    base = VariationalAutoencoder(model_config())
    convs = [layer for layer in base.encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 64, 64] and [c.strides[0] for c in convs] == [1, 2, 2, 1]
    assert [layer.output.shape[1] for layer in convs] == [28, 14, 14 // 2, 7]
    lrelu = base.encoder.get_layer("encoder_act_0")
    assert isinstance(lrelu, keras.layers.LeakyReLU) and lrelu.negative_slope == pytest.approx(LRELU_SLOPE)


def test_bad_configs_are_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="z_dim must be a positive integer; got 0"):
        model_config(z_dim=0)
    with pytest.raises(ValueError, match="encoder_act"):
        model_config(encoder_act="softsign")
    with pytest.raises(ValueError, match="decoder produces"):
        ConvArchitecture(input_shape=(30, 30, 1)).decoder()
    with pytest.raises(ValueError, match="noise: not a setting of a conv vae"):
        model_config(noise="gaussian:0.3")


def _hand_losses(x, x_hat, mu, log_var, r_loss_factor):
    mse = ((x - x_hat) ** 2).reshape(len(x), -1).mean(axis=1)
    bce = -(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)).reshape(len(x), -1).sum(axis=1)
    kl = -0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(axis=1)
    return {"mse": r_loss_factor * mse, "rmse": r_loss_factor * np.sqrt(mse), "bce": bce}, kl


@pytest.mark.parametrize("loss", ["mse", "rmse", "bce"])
def test_loss_terms_match_a_hand_computation(loss):
    """Per-sample losses of a real forward pass, recomputed in NumPy from the same mu, log_var, z."""
    model = VariationalAutoencoder(model_config(loss=loss, r_loss_factor=1000.0, z_dim=2))
    x = np.random.default_rng(1).random((3, 28, 28, 1)).astype("float32")
    outputs = model(x)
    mu, log_var, z = (numpy_of(outputs[k]) for k in ("mean", "log_var", "z"))
    terms = model.loss_terms(x, outputs)
    r_loss, kl_loss = (numpy_of(terms[k][0]) for k in ("r_loss", "kl_loss"))
    x_hat = numpy_of(model.decoder(z))
    expected_r, expected_kl = _hand_losses(x, x_hat, mu, log_var, 1000.0)
    np.testing.assert_allclose(r_loss, expected_r[loss], rtol=2e-5)
    np.testing.assert_allclose(kl_loss, expected_kl, rtol=1e-5, atol=1e-6)
    # What Keras's own train and test steps minimise: the batch mean of the weighted sum.
    loss_value = model.compute_loss(x, None, outputs, training=False)
    np.testing.assert_allclose(numpy_of(loss_value), np.mean(expected_r[loss] + expected_kl), rtol=2e-5)
    assert float(model.r_loss_tracker.result()) == pytest.approx(float(np.mean(r_loss)), rel=1e-6)


def test_beta_weights_kl_in_the_total():
    model = VariationalAutoencoder(model_config(beta=0.0))
    total, terms = model.per_sample_losses(np.full((2, 28, 28, 1), 0.5, "float32"))
    np.testing.assert_allclose(numpy_of(total), numpy_of(terms["r_loss"]))


def test_validation_loss_is_a_mean_over_every_image():
    """The Mean trackers weight a short last batch by its size: evaluate() equals the per-image mean."""
    model = VariationalAutoencoder(model_config(dropout=0.25))
    model.compile(optimizer="adam", jit_compile=False)
    x = np.random.default_rng(2).random((70, 28, 28, 1)).astype("float32")
    kl_only = model.evaluate(x, batch_size=32, return_dict=True, verbose=0)["kl_loss"]
    encoded = model.encode(x)
    np.testing.assert_allclose(kl_only, _hand_losses(x, x, encoded["mean"], encoded["log_var"], 1.0)[1].mean(),
                               rtol=1e-5)


def test_config_and_weights_round_trip(tmp_path):
    config = model_config(encoder_act="gelu", norm="batch", norm_pos="before", dropout=0.1, z_dim=4)
    assert type(config).from_dict(config.to_dict()) == config
    model = VariationalAutoencoder(config)
    model.build_all()
    model.save_weights(tmp_path / "m.weights.h5")
    again = VariationalAutoencoder.from_config(model.get_config())
    again.build_all()
    again.load_weights(tmp_path / "m.weights.h5")
    z = np.random.default_rng(3).standard_normal((5, 4)).astype("float32")
    np.testing.assert_array_equal(numpy_of(model.decoder(z)), numpy_of(again.decoder(z)))


def test_exported_models_use_stock_layers_and_the_same_weights():
    model = VariationalAutoencoder(model_config(encoder_act="gelu", decoder_act="gelu"))
    encoder, decoder = model.export_models()
    assert all(type(layer).__module__.startswith("keras") for layer in decoder.layers)
    assert decoder.get_layer("decoder_act_0").get_config()["activation"] == "gelu"
    z = np.random.default_rng(4).standard_normal((8, 2)).astype("float32")
    np.testing.assert_allclose(numpy_of(decoder(z)), model.decode(z), atol=1e-5)
    assert len(model.encoder.weights) == len(encoder.weights)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_fused_batch_norm_trains_like_keras_batch_norm():
    from models.normalization import FusedBatchNormalization

    x = np.random.default_rng(5).normal(2.0, 3.0, (16, 7, 7, 8)).astype("float32")
    fused, stock = FusedBatchNormalization(), keras.layers.BatchNormalization()
    for layer in (fused, stock):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 8))
        layer.beta.assign(np.linspace(-1, 1, 8))
    np.testing.assert_allclose(numpy_of(fused(x, training=True)), numpy_of(stock(x, training=True)), atol=2e-5)
    np.testing.assert_allclose(numpy_of(fused.moving_mean), numpy_of(stock.moving_mean), rtol=1e-6)
    np.testing.assert_allclose(numpy_of(fused.moving_variance), numpy_of(stock.moving_variance), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(fused(x, training=False)), numpy_of(stock(x, training=False)), atol=2e-5)


def test_first_non_finite_batch_is_recorded_inside_the_compiled_step():
    model = VariationalAutoencoder(model_config())
    steps = 1 if keras.backend.backend() == "torch" else 4  # Keras on PyTorch runs one step per call
    model.compile(optimizer="adam", jit_compile=False, steps_per_execution=steps)
    x = np.random.default_rng(6).random((32, 28, 28, 1)).astype("float32")
    x[20] = np.nan  # the third batch of 8: 16 images came before it
    model.fit(x, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(numpy_of(model.first_nonfinite_step)) == 16
