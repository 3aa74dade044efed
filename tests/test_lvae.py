"""The Ladder VAE and the deep VAE (models/LVAE.py): the precision-weighted merge and each layer's KL by hand, a
one-layer hierarchy against the VAE on the same weights, the importance-sampled bound against the ELBO,
samples drawn top-down, and the family through the commands: trained, killed and resumed, scored, sampled,
exported and loaded in a fresh process; bad settings end in one line each."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

import evaluate
import generate
import train as train_command
from conftest import REPO, kill_after_first_epoch, last_line, numpy_of, run_main, train
from models import LadderVAE, SoftplusLogVariance, VariationalAutoencoder, build_model, model_config, penalties
from models.gaussian import precision_weighted
from models.vae_parts import KLWarmup
from utils.analysis.metrics import likelihood_figures
from models.presets import preset_config
from utils.runs.loading import load_model

SMALL = ["--dataset", "mnist_5k", "--limit", "300", "--batch-size", "100"]
RNG = np.random.default_rng(0)
X = (RNG.random((6, 28, 28, 1)) > 0.6).astype("float32")


def small_lvae(inference="ladder", **settings):
    return build_model(model_config("lvae", latent_sizes=settings.pop("latent_sizes", [4, 3]),
                                    block_widths=settings.pop("block_widths", [16, 8]), inference=inference,
                                    **settings))


def test_precision_weighted_merge_by_hand():
    mean_a, var_a, mean_b, var_b = 1.0, 4.0, -2.0, 1.0
    var = 1 / (1 / var_a + 1 / var_b)  # 0.8
    mean = (mean_a / var_a + mean_b / var_b) * var  # (0.25 - 2) * 0.8 = -1.4
    got_mean, got_log_var = precision_weighted(*(np.array([v], "float32") for v in (mean_a, math.log(var_a), mean_b,
                                                                                      math.log(var_b))))
    np.testing.assert_allclose(numpy_of(got_mean), [mean], rtol=1e-6)
    np.testing.assert_allclose(numpy_of(got_log_var), [math.log(var)], rtol=1e-6)
    wide, _ = precision_weighted(*(np.array([v], "float32") for v in (3.0, 40.0, -1.0, -40.0)))  # one far sharper
    np.testing.assert_allclose(numpy_of(wide), [-1.0], atol=1e-6)


def test_a_hierarchys_variances_are_the_papers_softplus_with_a_floor():
    h = np.array([[-100.0, 0.0, 100.0]], "float32")
    log_var = numpy_of(SoftplusLogVariance()(h))
    np.testing.assert_allclose(log_var, np.log([[1e-4, np.log(2) + 1e-4, 100 + 1e-4]]), rtol=1e-5)
    deep = build_model(model_config("lvae", latent_sizes=[3, 2], block_widths=[8, 8], inference="bottom-up"))
    deep.build_all()
    assert any(isinstance(layer, SoftplusLogVariance) for layer in deep.down[0].layers)
    single = build_model(model_config("lvae", latent_sizes=[3], block_widths=[8]))
    single.build_all()
    assert not any(isinstance(layer, SoftplusLogVariance) for layer in single.up[0].layers)  # the VAE's head


def test_each_layers_kl_is_the_closed_form_for_given_means_and_variances():
    mq, lq, mp, lp = (RNG.normal(size=(3, 5)).astype("float32") for _ in range(4))
    by_hand = 0.5 * (lp - lq + (np.exp(lq) + (mq - mp) ** 2) / np.exp(lp) - 1).sum(axis=1)
    np.testing.assert_allclose(numpy_of(penalties.gaussian_kl_between(mq, lq, mp, lp)), by_hand, rtol=1e-5)
    model = small_lvae()
    inferred = model.infer(X)
    kls = model.layer_kls(inferred)
    q = {k: [numpy_of(t) for t in inferred[k]] for k in ("q_mean", "q_log_var", "p_mean", "p_log_var")}
    bottom = 0.5 * (q["p_log_var"][0] - q["q_log_var"][0] + (np.exp(q["q_log_var"][0])
                    + (q["q_mean"][0] - q["p_mean"][0]) ** 2) / np.exp(q["p_log_var"][0]) - 1).sum(axis=1)
    top = -0.5 * (1 + q["q_log_var"][1] - q["q_mean"][1] ** 2 - np.exp(q["q_log_var"][1])).sum(axis=1)
    np.testing.assert_allclose(numpy_of(kls[0]), bottom, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(numpy_of(kls[1]), top, rtol=1e-4, atol=1e-5)
    assert model.term_names() == ("r_loss", "kl_1", "kl_2")


def test_below_its_top_the_deep_vaes_kl_is_log_q_minus_log_p_at_the_drawn_sample():
    """z_2 is drawn from q(z_2 | z_1) of the very z_1 that p(z_1 | z_2) scores, so no closed form given z_2 is the
    ELBO's expectation (tests/test_elbo.py); the top's KL against N(0, I) stays in closed form."""
    model = small_lvae("bottom-up")
    inferred = model.infer(X)
    kls = model.layer_kls(inferred)
    q = {k: [numpy_of(t) for t in inferred[k]] for k in ("z", "q_mean", "q_log_var", "p_mean", "p_log_var")}

    def log_normal(z, mean, log_var):
        return (-0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var))).sum(axis=1)

    bottom = (log_normal(q["z"][0], q["q_mean"][0], q["q_log_var"][0])
              - log_normal(q["z"][0], q["p_mean"][0], q["p_log_var"][0]))
    top = -0.5 * (1 + q["q_log_var"][1] - q["q_mean"][1] ** 2 - np.exp(q["q_log_var"][1])).sum(axis=1)
    np.testing.assert_allclose(numpy_of(kls[0]), bottom, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(numpy_of(kls[1]), top, rtol=1e-4, atol=1e-5)


def test_units_active_by_kl_are_those_spending_more_than_a_hundredth_of_a_nat():
    """Per layer and in all, the units whose mean KL exceeds 0.01 nats, counted by hand from `kl_per_unit`; a unit
    whose posterior is its prior (a top unit at N(0, 1), a VAE dimension at N(0, 1)) spends none."""
    model = small_lvae(latent_sizes=[5, 3, 2], block_widths=[16, 8, 8])
    unit_variance = math.log(math.expm1(1 - SoftplusLogVariance.FLOOR))  # softplus(h) + 1e-4 = 1
    for head, bias in (("up_3_mean", 0.0), ("up_3_log_var", unit_variance)):
        kernel, biases = model.up[2].get_layer(head).get_weights()
        kernel[:, 0], biases[0] = 0.0, bias
        model.up[2].get_layer(head).set_weights([kernel, biases])
    summary = model.latent_summary(X)
    by_hand = [sum(kl > 0.01 for kl in layer) for layer in summary["kl_per_unit"]]
    assert abs(summary["kl_per_unit"][2][0]) < 1e-5 and by_hand[2] == 1
    assert [summary[f"active_units_kl_layer{i}"] for i in (1, 2, 3)] == by_hand
    assert summary["active_units_kl"] == sum(by_hand)
    vae = build_model(model_config("vae", "dense", encoder_widths=[8], decoder_widths=[8], z_dim=3))
    for head in ("mu", "log_var"):
        kernel, biases = vae.encoder.get_layer(head).get_weights()
        kernel[:, 1], biases[1] = 0.0, 0.0
        vae.encoder.get_layer(head).set_weights([kernel, biases])
    summary = vae.latent_summary(X)
    assert summary["kl_per_dimension"][1] == 0.0
    assert summary["active_units_kl"] == sum(kl > 0.01 for kl in summary["kl_per_dimension"]) == 2


def test_a_one_layer_hierarchy_is_the_vae_on_the_same_weights():
    """The same loss terms (for the same z) and the same ELBO and NLL (for the same draws) as the dense VAE."""
    lvae = build_model(model_config("lvae", latent_sizes=[3], block_widths=[16], leaky_slope=0.3))
    vae = build_model(model_config("vae", "dense", encoder_widths=[16, 16], decoder_widths=[16, 16], z_dim=3,
                                   norm="batch", norm_pos="before", loss="bce", warmup_epochs=0))
    for model in (lvae, vae):
        model.build_all()
    vae.encoder.set_weights(lvae.up[0].get_weights())  # dense, batch norm, dense, batch norm, mean, log-variance
    vae.decoder.set_weights(lvae.decoder.get_weights())
    outputs = vae(X)
    mean, log_var, z = (numpy_of(outputs[k]) for k in ("mean", "log_var", "z"))
    inferred = lvae.infer(X, noise=[(z - mean) / np.exp(0.5 * log_var)])  # the VAE's draw
    np.testing.assert_allclose(numpy_of(inferred["z"][0]), z, rtol=1e-5, atol=1e-6)
    vae_terms = vae.loss_terms(X, outputs)
    lvae_terms = lvae.loss_terms(X, {**inferred, "outputs": lvae.decoder(inferred["z"][0])})
    np.testing.assert_allclose(numpy_of(lvae_terms["r_loss"][0]), numpy_of(vae_terms["r_loss"][0]), rtol=1e-5)
    np.testing.assert_allclose(numpy_of(lvae_terms["kl_1"][0]), numpy_of(vae_terms["kl_loss"][0]), rtol=1e-5)
    for samples in (1, 20):
        ours, theirs = (likelihood_figures(m, X, samples=samples, seed=4) for m in (lvae, vae))
        assert ours["nll"] == pytest.approx(theirs["nll"], rel=1e-5)
        assert ours["elbo"] == pytest.approx(theirs["elbo"], rel=1e-5)


@pytest.mark.parametrize("inference", ["ladder", "bottom-up"])
def test_the_importance_sampled_bound_is_never_looser_than_the_elbo(inference):
    model = small_lvae(inference)
    for samples in (1, 7, 50):
        figures = likelihood_figures(model, X, samples=samples, seed=samples)
        assert figures["log_likelihood"] >= figures["elbo"] - 1e-4
        if samples == 1:
            assert figures["log_likelihood"] == pytest.approx(figures["elbo"], rel=1e-6)
        log_w = model.log_importance_weights(X, samples, np.random.default_rng(0))
        assert log_w.shape == (samples, len(X)) and np.isfinite(log_w).all()


def test_samples_are_drawn_top_down_and_encoded_layer_by_layer():
    model = small_lvae(latent_sizes=[5, 3, 2], block_widths=[16, 8, 8])
    codes = model.sample_codes(7, np.random.default_rng(1))
    assert codes.shape == (7, 5) and model.sample(7, seed=1).shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(model.sample(7, seed=1), model.sample(7, seed=1))
    encoded = model.encode(X)
    assert {k: v.shape for k, v in encoded.items()} == {
        "mean_1": (6, 5), "log_var_1": (6, 5), "mean_2": (6, 3), "log_var_2": (6, 3), "mean_3": (6, 2),
        "log_var_3": (6, 2)}
    np.testing.assert_array_equal(model.latent_means(X), encoded["mean_1"])
    summary = model.latent_summary(X)
    assert summary["active_units"] == sum(summary[f"active_units_layer{i}"] for i in (1, 2, 3))
    assert [len(k) for k in summary["kl_per_unit"]] == [5, 3, 2]


def test_the_paper_model_and_its_baselines_are_presets():
    lvae, deep, single = (preset_config(p).architecture for p in ("lvae_mnist", "deep_vae_mnist", "vae_mlp_mnist"))
    assert lvae.latent_sizes == (64, 32, 16, 8, 4) and lvae.block_widths == (512, 256, 128, 64, 32)
    assert (lvae.inference, deep.inference) == ("ladder", "bottom-up") and deep.latent_sizes == lvae.latent_sizes
    assert single.latent_sizes == (64,) and single.block_widths == (512,)
    assert lvae.norm == "batch" and lvae.leaky_slope == 0.01
    for preset in ("lvae_mnist", "deep_vae_mnist", "vae_mlp_mnist", "lvae_small"):  # half the run warms up, half not
        assert preset_config(preset).for_run(200).objective.warmup_length(200) == 100


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["lvae_mnist", "deep_vae_mnist", "vae_mlp_mnist"])
def test_the_paper_sized_presets_fit_a_step(preset):
    """The suite's presets build and take training steps with a finite loss and a KL per layer (lvae_small
    goes through every command below; these share its code)."""
    config = preset_config(preset).for_images((28, 28, 1))
    model = build_model(config)
    model.compile(optimizer="adam")
    logs = model.fit(X, batch_size=8, epochs=1, verbose=0).history
    layers = len(config.architecture.latent_sizes)
    assert layers == (1 if preset == "vae_mlp_mnist" else 5)
    assert [f"kl_{i}" for i in range(1, layers + 1)] == [k for k in logs if k.startswith("kl_")]
    assert all(math.isfinite(v[0]) for v in logs.values())


def test_the_suite_figure_of_layers_shows_each_variants_mean_per_layer():
    import pandas as pd
    from types import SimpleNamespace
    from utils.experiments.report import layer_figures, plot_layer_bars

    frame = pd.DataFrame({"variant": ["ladder"] * 3 + ["deep"] * 3, "seed": [0, 1, 2] * 2,
                          "test_active_units_layer1": [10, 12, 14, 9, 9, 9], "test_active_units_layer2": [4, 5, 6, 0, 0, 0],
                          "test_kl_layer1": [20.0, 22, 24, 30, 30, 30], "test_kl_layer2": [3.0, 3, 3, None, None, None],
                          "active_units": [14, 17, 20, 9, 9, 9]})
    assert layer_figures(frame) == {"active_units": {1: "test_active_units_layer1", 2: "test_active_units_layer2"},
                                    "kl": {1: "test_kl_layer1", 2: "test_kl_layer2"}}
    fig = plot_layer_bars(frame, SimpleNamespace(variants=["ladder", "deep"]), "hierarchy")
    heights = [[round(bar.get_height(), 6) for bar in ax.patches] for ax in fig.axes]
    assert heights == [[12, 5, 9, 0], [22, 3, 30]]  # ladder's bars, then deep's; deep has no KL figure for z_2
    assert plot_layer_bars(frame[["variant", "seed", "active_units"]], SimpleNamespace(variants=["ladder"]), "x") is None


@pytest.mark.parametrize("flags, words", [
    (["--latent-sizes", "8,4,2"], "latent_sizes and block_widths need one entry per stochastic layer; got 3 and 2"),
    (["--latent-sizes", "8,0"], "--latent-sizes: must be comma-separated values, each a positive integer"),
    (["--inference", "sideways"], "argument --inference: invalid choice: 'sideways'"),
    (["--family", "vae", "--arch", "hierarchy"], "it is the lvae family's: train it with --family lvae"),
])
def test_bad_settings_end_in_one_line(flags, words, tmp_path):
    preset = [] if "--family" in flags else ["--preset", "lvae_small"]
    code, _, err = run_main(train_command.main, *preset, *flags, "--epochs", 1, "--run-root", tmp_path / "runs",
                            *SMALL)
    assert code != 0 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


FRESH = """
import sys, numpy as np, keras
decoder = keras.models.load_model(sys.argv[1] + "/decoder.h5", compile=False)  # plain Keras
import models  # the precision merge of the ladder's encoder
encoder = keras.models.load_model(sys.argv[1] + "/encoder.h5", compile=False)
x = np.zeros((2, 28, 28, 1), "float32")
outputs = encoder(x)
np.save(sys.argv[2], keras.ops.convert_to_numpy(decoder(outputs[0])))
print(len(outputs))
"""


@pytest.mark.slow
def test_lvae_small_trains_resumes_after_a_kill_scores_samples_and_loads_in_a_fresh_process(tmp_path):
    run_dir = kill_after_first_epoch("lvae_small", tmp_path, "0001_mnist_5k_lvae_small", *SMALL)
    assert train("--resume", run_dir, "--eval-samples", 20) == run_dir
    params = json.loads((run_dir / "params.json").read_text())
    assert params["status"] == "finished" and params["resumes"][0]["from_epoch"] >= 1
    assert params["training"]["binarize"] == "dynamic" and params["model"]["family"] == "lvae"
    entry = json.loads((run_dir / "eval.json").read_text())["k20_n100"]
    assert entry["nll"] <= -entry["elbo"] + 1e-3 and entry["active_units"] >= 0 and len(entry["kl_per_unit"]) == 2
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 5, "--limit", 50)
    assert code == 0 and "bits/dim" in out and "bernoulli" in out and "4K moves it" in out, err
    code, out, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / "g.png", "--bernoulli")
    assert code == 0 and "z_L ~ N(0, I)" in out, err
    assert (run_dir / "viz" / "units_per_layer.png").is_file()
    fresh = subprocess.run([sys.executable, "-c", FRESH, str(run_dir / "models"), str(tmp_path / "x.npy")],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0 and last_line(fresh.stdout) == "4", fresh.stderr[-2000:]
    model = load_model(run_dir)
    z = model.latent_means(np.zeros((2, 28, 28, 1), "float32"))
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), model.decode(z), atol=1e-5)
    assert isinstance(model, LadderVAE) and not isinstance(build_model(model_config()), LadderVAE)
    assert not issubclass(LadderVAE, VariationalAutoencoder) and issubclass(LadderVAE, KLWarmup)  # siblings
    keras.config.set_dtype_policy("float32")


@pytest.mark.slow
def test_evaluate_scores_the_deep_vae_in_bits_per_dimension(tmp_path):
    run_dir = train("--preset", "lvae_small", "--inference", "bottom-up", "--epochs", 1, "--seed", 0,
                    "--run-root", tmp_path, *SMALL)
    code, out, err = run_main(evaluate.main, run_dir, "--samples", 5, "--limit", 50)
    assert code == 0 and "bits/dim" in out and "bernoulli" in out and "4K moves it" in out, err
    entry = json.loads((run_dir / "eval.json").read_text())["k5_n50"]
    assert entry["bpd"] == pytest.approx(entry["nll"] / (784 * math.log(2))) and entry["likelihood"] == "bernoulli"
    keras.config.set_dtype_policy("float32")


def test_a_warm_up_in_epochs_replaces_the_familys_default_fraction():
    assert model_config(family="lvae").objective.warmup_fraction == 0.5
    given = model_config(family="lvae", warmup_epochs=10).objective
    assert (given.warmup_epochs, given.warmup_fraction, given.warmup_length(200)) == (10, 0.0, 10)
    with pytest.raises(ValueError, match="not both"):
        model_config(family="lvae", warmup_epochs=10, warmup_fraction=0.25)
