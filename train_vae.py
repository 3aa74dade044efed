"""Train one VAE variant into a new run folder (or resume one).

    python train_vae.py --act gelu --where both                     # the study's Full-GELU, MNIST, 200 epochs
    python train_vae.py --preset gelu_full_bn_before --dataset fashion_mnist --epochs 5
    python train_vae.py --resume run/vae/0001_mnist_gelu_both       # continue after a crash or kill

The last line printed is the run folder.
"""

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not its errors

from models.activations import ACTIVATIONS  # noqa: E402
from models.losses import RECONSTRUCTION_LOSSES  # noqa: E402
from models.VAE import NORM_POSITIONS, NORMS, VAEConfig  # noqa: E402
from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.presets import PRESETS, activation_settings, preset_settings, variant_label  # noqa: E402
from utils.training import TrainSettings, resume_run, start_run  # noqa: E402

# Model flags and the VAEConfig field each one sets (--act/--where map to encoder_act/decoder_act).
MODEL_FLAGS = {"norm": "norm", "norm_pos": "norm_pos", "dropout": "dropout", "z_dim": "z_dim",
               "loss": "loss", "r_loss_factor": "r_loss_factor", "beta": "beta",
               "warmup_epochs": "warmup_epochs"}
TRAIN_FLAGS = ("dataset", "epochs", "batch_size", "lr", "seed", "limit", "plot_every", "jit",
               "mixed_precision", "steps_per_execution")


def build_parser():
    """The command line; every default is None so we can tell which flags the user gave."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    model = p.add_argument_group("model (defaults: the study's base model)")
    model.add_argument("--preset", choices=list(PRESETS), help="a named study variant; flags below override it")
    model.add_argument("--act", choices=ACTIVATIONS, help="activation placed where --where says (default lrelu)")
    model.add_argument("--where", choices=("encoder", "decoder", "both"), help="where --act goes (default both)")
    model.add_argument("--norm", choices=NORMS, help="normalization in every conv block (default none)")
    model.add_argument("--norm-pos", choices=NORM_POSITIONS, help="normalization before/after the activation (default after)")
    model.add_argument("--dropout", type=cli.dropout_rate, help="dropout rate after every activation (default 0)")
    model.add_argument("--z-dim", type=cli.positive_int, help="latent dimensions (default 2)")
    model.add_argument("--loss", choices=RECONSTRUCTION_LOSSES, help="reconstruction loss (default mse)")
    model.add_argument("--r-loss-factor", type=cli.positive_float, help="weight of mse/rmse (default 1000)")
    model.add_argument("--beta", type=cli.non_negative_float, help="weight of the KL term (default 1)")
    model.add_argument("--warmup-epochs", type=cli.non_negative_int, help="raise beta linearly from 0 over N epochs (default 0)")
    train = p.add_argument_group("training")
    train.add_argument("--dataset", help="mnist, fashion_mnist, cifar10 or a path to an .npz (default mnist)")
    train.add_argument("--epochs", type=cli.positive_int, help="epochs in all (default 200)")
    train.add_argument("--batch-size", type=cli.positive_int, help="default 32")
    train.add_argument("--lr", type=cli.positive_float, help="Adam learning rate (default 0.0005)")
    train.add_argument("--seed", type=cli.non_negative_int, help="random seed (default: drawn and recorded)")
    train.add_argument("--limit", type=cli.positive_int, help="keep the first N training images (N/6 test, >= 100)")
    train.add_argument("--plot-every", type=cli.positive_int, help="redraw viz/ every N epochs (default: at the end)")
    speed = p.add_argument_group("speed (defaults chosen per device; see docs/benchmarks.md)")
    speed.add_argument("--jit", action=_BoolFlag, help="XLA-compile the whole training step (default: on GPU only)")
    speed.add_argument("--mixed-precision", action=_BoolFlag,
                       help="mixed_float16 on GPU, mixed_bfloat16 on CPU (1.3-1.7x faster on an AVX512-BF16 CPU)")
    speed.add_argument("--steps-per-execution", type=cli.positive_int, help="steps per compiled call (default 16)")
    runs = p.add_argument_group("run folders")
    runs.add_argument("--run-root", help="where run folders go (default run/vae)")
    runs.add_argument("--resume", metavar="RUN_DIR", help="continue this run; only --epochs may be given with it")
    return p


class _BoolFlag(argparse.BooleanOptionalAction):
    """`--jit` / `--no-jit` with None as the default, meaning: choose per device."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, default=None, **kwargs)


def model_config(args):
    """The VAEConfig the flags describe: defaults, then the preset, then explicit flags."""
    fields = preset_settings(args.preset) if args.preset else {}
    if args.act is not None or args.where is not None:
        fields.update(activation_settings(args.act or "lrelu", args.where or "both"))
    fields.update({field: getattr(args, flag) for flag, field in MODEL_FLAGS.items()
                   if getattr(args, flag) is not None})
    try:
        return VAEConfig(**fields)
    except ValueError as e:
        raise UserError(str(e)) from None


def run_label(args, config):
    """The preset's name when one is used unchanged, else a label derived from the settings."""
    overridden = args.act or args.where or any(getattr(args, f) is not None for f in MODEL_FLAGS)
    return args.preset if args.preset and not overridden else variant_label(config)


def main(argv=None):
    """Parse the flags and train (or resume); a `UserError` ends as one line and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        if args.resume:
            given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                     if v is not None and k not in ("resume", "epochs")]
            if given:
                raise UserError(f"--resume takes its settings from the run's params.json; drop {' '.join(given)} "
                                "(only --epochs may be given, to extend a run)")
            resume_run(args.resume, epochs=args.epochs)
            return 0
        config = model_config(args)
        given = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
        settings = dataclasses.replace(TrainSettings(), **given)
        start_run(config, settings, args.run_root or os.path.join("run", "vae"), run_label(args, config))
    except UserError as e:
        cli.fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
