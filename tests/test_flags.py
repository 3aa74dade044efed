"""Flags come from the settings dataclasses (one place per setting), and every bad input ends in one clear
line on stderr, a non-zero exit, no traceback and no run folder: checked in this process, and twice through
a real process."""

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import pytest

import evaluate
import generate
import run_experiments
import train
from conftest import TINY, last_line, run_main, run_script
from models import family_class, family_names, model_config
from models.architectures import ARCHITECTURES
from models.settings import POSITIVE, check_fields, setting
from models.VAE import VAEObjective
from utils import cli
from utils.errors import UserError
from utils.experiments.suite import PASSED_ON, SuiteRequest
from utils.runs.settings import TrainSettings


def flags_of(parser):
    return {a.dest for a in parser._actions}


def test_every_setting_of_every_dataclass_is_a_flag():
    p = train.build_parser()
    for cls in [TrainSettings, VAEObjective, *ARCHITECTURES.values()]:
        missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("flag", True) and f.name not in flags_of(p)]
        assert missing == [], cls.__name__
    assert "input_shape" not in flags_of(p)  # flag=False: the data decide it
    assert "family" not in flags_of(train.build_parser(family="vae"))  # train_vae.py: the VAE only


def test_no_setting_is_declared_in_two_namespaces():
    # A suite's training settings are TrainSettings' own fields (passed on to every run), not a copy of them; the
    # model's settings (every architecture and family objective, one flag per name) are a third namespace.
    objectives = {family_class(name).Objective for name in family_names()}
    namespaces = {"TrainSettings": [TrainSettings], "SuiteRequest": [SuiteRequest],
                  "model": [*ARCHITECTURES.values(), *objectives]}
    names = {space: {f.name for cls in classes for f in dataclasses.fields(cls)} for space, classes in namespaces.items()}
    for a, b in itertools.combinations(names, 2):
        assert not names[a] & names[b], f"declared in {a} and in {b}: {sorted(names[a] & names[b])}"
    p = run_experiments.build_parser()
    assert set(PASSED_ON) <= flags_of(p) and "batch_size" not in flags_of(p)  # the rest is each preset's own


def test_act_and_where_set_only_the_side_they_name():
    p = train.build_parser()
    args = p.parse_args(["--preset", "dae_gaussian", "--act", "gelu", "--where", "decoder"])
    settings = train.model_settings(args, p.model_flags)
    assert (settings["encoder_act"], settings["decoder_act"]) == ("relu", "gelu")  # the preset's ReLU encoder kept
    args = p.parse_args(["--act", "gelu", "--where", "encoder"])
    config = model_config(**train.model_settings(args, p.model_flags))
    assert (config.architecture.encoder_act, config.architecture.decoder_act) == ("gelu", "lrelu")  # the default
    with pytest.raises(UserError, match="--where decoder needs --act"):
        train.model_settings(p.parse_args(["--where", "decoder"]), p.model_flags)


def test_a_suite_refuses_a_training_setting_it_does_not_pass_on():
    with pytest.raises(UserError, match="--batch-size: each preset trains with its own"):
        SuiteRequest("activations", 1, {"batch_size": 64})
    with pytest.raises(UserError, match="epochs must be a positive integer"):
        SuiteRequest("activations", 1, {"epochs": 0})


def test_a_new_setting_is_one_line():
    @dataclass(frozen=True)
    class Objective:
        prior_scale: float = setting(1.0, "the prior's scale", check=POSITIVE)
        kinds: tuple[str, ...] = setting(("a",), "names")

        def __post_init__(self):
            check_fields(self)

    p = cli.OneLineParser()
    assert cli.add_setting_flags(p, [Objective]) == ["prior_scale", "kinds"]
    args = p.parse_args(["--prior-scale", "3/4", "--kinds", "a,b"])
    assert Objective(**cli.given(args, ["prior_scale", "kinds"])) == Objective(0.75, ("a", "b"))
    assert "the prior's scale (default 1.0)" in p.format_help()
    with pytest.raises(ValueError, match="prior_scale must be a positive number; got -1"):
        Objective(-1.0)  # the dataclass says the same as the flag


def test_flags_parse_to_their_fields_types():
    p = train.build_parser()
    args = p.parse_args(["--encoder-widths", "420,210", "--warmup-fraction", "3/7", "--no-jit", "--seed", "3",
                         "--mixed-precision"])
    given = cli.given(args, p.model_flags + p.train_flags)
    assert given == {"encoder_widths": (420, 210), "warmup_fraction": pytest.approx(3 / 7), "jit": False, "seed": 3,
                     "mixed_precision": True}
    assert cli.given(p.parse_args([]), p.model_flags + p.train_flags) == {}  # nothing given, nothing set


def _npz_without_x_train(tmp_path):
    np.savez(tmp_path / "no_x.npz", x_test=np.zeros((4, 8, 8), np.uint8))
    return tmp_path / "no_x.npz"


def _npz_with_flat_images(tmp_path):
    np.savez(tmp_path / "flat.npz", x_train=np.zeros(64, np.uint8), x_test=np.zeros(64, np.uint8))
    return tmp_path / "flat.npz"


def _npz_with_nan(tmp_path):
    x = np.full((8, 8, 8), 0.5, "float32")
    x[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=x, x_test=x)
    return tmp_path / "nan.npz"


def _not_hdf5(tmp_path):
    (tmp_path / "notes.h5").write_text("hello")
    return tmp_path / "notes.h5"


# (command, arguments (callables get tmp_path), words the error line must contain)
CASES = [
    ("train_vae", ["--epochs", "0"], "--epochs: must be a positive integer"),
    ("train_vae", ["--batch-size", "0"], "--batch-size: must be a positive integer"),
    ("train_vae", ["--lr", "-1"], "--lr: must be a positive number"),
    ("train_vae", ["--dropout", "1.5"], "--dropout: must be a rate in [0, 1)"),
    ("train_vae", ["--z-dim", "0"], "--z-dim: must be a positive integer"),
    ("train_vae", ["--act", "foo"], "invalid choice: 'foo'"),
    ("train_vae", ["--where", "middle"], "invalid choice: 'middle'"),
    ("train_vae", ["--norm-pos", "sideways"], "invalid choice: 'sideways'"),
    ("train_vae", ["--preset", "nope"], "invalid choice: 'nope'"),
    ("train_vae", ["--dataset", "missing.npz"], "missing.npz does not exist"),
    ("train_vae", ["--dataset", _npz_without_x_train], "has no x_train"),
    ("train_vae", ["--dataset", _npz_with_flat_images], "images must be N x H x W"),
    ("train_vae", ["--resume", "."], "not a run folder"),
    ("train_vae", ["--preset", "sae_l1"], "is a sae, not a VAE; train it with train.py"),
    ("train", ["--family", "dae"], "a denoising autoencoder needs input noise"),
    ("train", ["--family", "sae"], "a sparse autoencoder needs a penalty"),
    ("train", ["--family", "dae", "--noise", "salt:0.1"], "noise must be none, gaussian:SIGMA"),
    ("train", ["--family", "sae", "--sparsity", "kl:2:1", "--code-activation", "sigmoid"], "sparsity must be none"),
    ("train", ["--family", "sae", "--sparsity", "kl:0.05:1"], "set code_activation to sigmoid"),
    ("train", ["--noise", "gaussian:0.3"], "noise: not a setting of a conv vae"),
    ("train", ["--family", "ae", "--beta", "2"], "beta: not a setting of a conv ae"),
    ("train", ["--warmup-fraction", "3/2"], "--warmup-fraction: must be a fraction in [0, 1]"),
    ("train", ["--warmup-epochs", "2", "--warmup-fraction", "0.5"], "in epochs or as a fraction of the run, not both"),
    ("train", ["--arch", "dense", "--encoder-widths", "0,4"], "--encoder-widths: must be comma-separated values, each a positive integer"),
    ("train", ["--binarize", "sometimes"], "invalid choice: 'sometimes'"),
    ("train", ["--test-share", "1.5"], "--test-share: must be a share between 0 and 1"),
    ("train", ["--dataset", "weights.pkl"], "pickle"),
    ("train", ["--dataset", _npz_with_nan], "NaN or infinite"),
    ("generate", ["missing/decoder.h5"], "does not exist"),
    ("generate", [_not_hdf5], "is not an HDF5 model file"),
    ("generate", ["ENCODER"], "is not a decoder"),
    ("evaluate", ["."], "not a run folder"),
]
MAINS = {"train": train.main, "train_vae": lambda argv: train.main(argv, family="vae"), "generate": generate.main,
         "evaluate": evaluate.main}


def case_id(command, args):
    """A test id that names a file-making argument by its function (ids must match across xdist workers)."""
    return f"{command}:{' '.join(a.__name__ if callable(a) else str(a) for a in args)[:30]}"


@pytest.mark.parametrize("command,args,words", CASES, ids=[case_id(c, a) for c, a, _ in CASES])
def test_bad_input_is_one_clear_line(command, args, words, tmp_path, trained_run):
    args = [trained_run / "models" / "encoder.h5" if a == "ENCODER" else a(tmp_path) if callable(a) else a
            for a in args]
    root = tmp_path / "runs"
    extra = []  # keep any run a bad input wrongly started short, and inside tmp_path
    if command.startswith("train") and "--resume" not in args:
        extra = (["--run-root", root] + ([] if "--epochs" in args else ["--epochs", "1"])
                 + ([] if "--dataset" in args else TINY))
    elif command == "generate":
        extra = ["--out", tmp_path / "o.png"]
    code, _, err = run_main(MAINS[command], *args, *extra)
    assert code != 0 and len(err.strip().splitlines()) == 1, err[-1500:]
    assert words in err, err[-1500:]
    assert not root.exists() or not any(root.iterdir())
    assert not (tmp_path / "o.png").exists()


def test_resume_refuses_other_flags(trained_run):
    code, _, err = run_main(train.main, "--resume", trained_run, "--lr", "0.1")
    assert code == 1 and "drop --lr" in err


@pytest.mark.parametrize("flags, code, words", [
    (["--suite", "nope"], 2, "invalid choice"),
    (["--seeds", "0"], 2, "--seeds: must be a positive integer"),
    (["--seeds", "two"], 2, "--seeds: must be a positive integer, got 'two'"),
    (["--jobs", "0"], 2, "--jobs: must be a positive integer"),
    (["--epochs", "-1"], 2, "--epochs: must be a positive integer"),
    (["--eval-samples", "-1"], 2, "--eval-samples: must be an integer >= 0"),
    (["--suite", "dropout", "--variants", "gelu_encoder"], 1, "not in suite 'dropout'"),
    (["--dataset", "nope"], 1, "unknown dataset 'nope'"),
    (["--backend", "nope"], 2, "argument --backend: invalid choice: 'nope'"),
    (["--backend", "ray", "--gpus-per-run", "0"], 2, "--gpus-per-run: must be a positive number"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], 1, "a fraction up to 1 or a whole"),
    (["--backend", "ray", "--cpus-per-run", "0"], 2, "--cpus-per-run: must be a positive number"),
    (["--backend", "ray", "--jobs", "2"], 1, "--jobs is for the local backend"),
    (["--gpus-per-run", "0.5"], 1, "--gpus-per-run is for --backend ray"),
    (["--backend", "ray", "--ray-address", "127.0.0.1:9", *TINY], 1,
     "cannot reach a Ray cluster at --ray-address 127.0.0.1:9"),
])
def test_bad_suite_input(tmp_path, flags, code, words):
    suite = [] if "--suite" in flags else ["--suite", "activations"]
    got, _, err = run_main(run_experiments.main, *suite, *flags, "--out", tmp_path / "suite")
    assert got == code and words in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []  # neither the suite folder nor the pool


@pytest.mark.slow
@pytest.mark.parametrize("script, args, words", [
    ("train_vae.py", ["--epochs", "0"], "--epochs: must be a positive integer"),
    ("train.py", ["--family", "sae", *TINY], "a sparse autoencoder needs a penalty"),
])
def test_bad_input_through_a_real_process(script, args, words, tmp_path):
    result = run_script(script, *args, "--run-root", tmp_path / "runs")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert words in last_line(result.stderr) and not (tmp_path / "runs").exists()
