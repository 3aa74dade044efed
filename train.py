"""Train one autoencoder of any family into a new run folder (or resume one).

    python train.py --preset sae_kl --dataset fashion_mnist --epochs 5          # a named system
    python train.py --family dae --arch dense --noise dropout:0.5 --z-dim 30
    python train.py --family vae --arch dense --loss bce --binarize dynamic --z-dim 16
    python train.py --resume run/vae/0003_fashion_mnist_sae_kl                   # continue after a kill

Model settings come from the defaults (the study's conv VAE), then the preset, then the flags. The
last line printed is the run folder. `train_vae.py` is this command for the study's VAEs.
"""

import argparse
import dataclasses
import os
import sys
from fractions import Fraction

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not its errors

from models.activations import ACTIVATIONS  # noqa: E402
from models.AE import CODE_ACTIVATIONS  # noqa: E402
from models.architectures import ARCHITECTURES, NORM_POSITIONS, OUTPUT_ACTIVATIONS  # noqa: E402
from models.families import FAMILIES, model_config  # noqa: E402
from models.likelihoods import LOSSES  # noqa: E402
from models.normalization import NORMS  # noqa: E402
from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.presets import PRESETS, activation_settings, preset_settings, preset_training, variant_label  # noqa: E402
from utils.training import BINARIZE, TrainSettings, resume_run, start_run  # noqa: E402

# Flags that set a model setting of the same name (--act/--where, --warmup and --arch are mapped by hand).
MODEL_FLAGS = ("norm", "norm_pos", "dropout", "z_dim", "loss", "r_loss_factor", "sigma", "beta",
               "warmup_epochs", "decoder_l2", "noise", "sparsity", "code_activation", "encoder_widths",
               "decoder_widths", "output_activation")
TRAIN_FLAGS = ("dataset", "epochs", "batch_size", "lr", "seed", "limit", "plot_every", "jit",
               "mixed_precision", "steps_per_execution", "binarize", "tensorboard", "image_size", "color",
               "test_share")


def add_model_flags(p, families=True):
    """The model flags; every default is None so we can tell which flags the user gave."""
    model = p.add_argument_group("model (defaults: the study's base model, a conv VAE)")
    model.add_argument("--preset", choices=list(PRESETS), help="a named variant or system; flags below override it")
    if families:
        model.add_argument("--family", choices=list(FAMILIES), help="vae, ae, dae (denoising) or sae (sparse)")
        model.add_argument("--arch", choices=list(ARCHITECTURES), help="conv (filter lists) or dense (width lists)")
    model.add_argument("--act", choices=ACTIVATIONS, help="activation placed where --where says (default lrelu)")
    model.add_argument("--where", choices=("encoder", "decoder", "both"), help="where --act goes (default both)")
    model.add_argument("--norm", choices=NORMS, help="normalization in every block (default none)")
    model.add_argument("--norm-pos", choices=NORM_POSITIONS, help="normalization before/after the activation (default after)")
    model.add_argument("--dropout", type=cli.dropout_rate, help="dropout rate after every activation (default 0)")
    model.add_argument("--z-dim", type=cli.positive_int, help="latent (code) dimensions (default 2)")
    model.add_argument("--loss", choices=LOSSES, help="reconstruction term (default mse; see models/likelihoods.py)")
    model.add_argument("--r-loss-factor", type=cli.positive_float, help="weight of mse/rmse (VAE default 1000, AE 1)")
    model.add_argument("--sigma", type=cli.positive_float, help="the gaussian loss's pixel standard deviation (default 1)")
    model.add_argument("--beta", type=cli.non_negative_float, help="VAE: weight of the KL term (default 1)")
    model.add_argument("--warmup-epochs", type=cli.non_negative_int, help="VAE: raise beta linearly from 0 over N epochs")
    if families:
        model.add_argument("--warmup", type=_warmup, help="VAE: beta warm-up as epochs (5) or a fraction of the run (3/7)")
        model.add_argument("--decoder-l2", type=cli.non_negative_float, help="weight of sum(w^2) over the decoder (default 0)")
        model.add_argument("--noise", help="DAE: gaussian:SIGMA or dropout:RATE on the input while training")
        model.add_argument("--sparsity", help="SAE: l1:WEIGHT or kl:TARGET:WEIGHT on the code")
        model.add_argument("--code-activation", choices=CODE_ACTIVATIONS, help="AE: the code's activation (default linear)")
        model.add_argument("--encoder-widths", type=cli.int_list, help="dense: e.g. 420,210,105")
        model.add_argument("--decoder-widths", type=cli.int_list, help="dense: e.g. 200,400,800")
        model.add_argument("--output-activation", choices=OUTPUT_ACTIVATIONS, help="the decoder's output (default sigmoid)")


def add_training_flags(p, families=True):
    """Data, optimizer, speed and run-folder flags."""
    train = p.add_argument_group("training")
    train.add_argument("--dataset", help="mnist, mnist_5k, fashion_mnist, cifar10, or a path (.npz, .npy, a folder "
                                         "of images) (default mnist)")
    train.add_argument("--epochs", type=cli.positive_int, help="epochs in all (default 200)")
    train.add_argument("--batch-size", type=cli.positive_int, help="default 32")
    train.add_argument("--lr", type=cli.positive_float, help="Adam learning rate (default 0.0005)")
    train.add_argument("--seed", type=cli.non_negative_int, help="random seed (default: drawn and recorded)")
    train.add_argument("--limit", type=cli.positive_int, help="keep the first N training images (N/6 test, >= 100)")
    train.add_argument("--plot-every", type=cli.positive_int, help="redraw viz/ every N epochs (default: at the end)")
    if families:
        train.add_argument("--image-size", help="image folders: resize to N or HxW (default: the images' own size)")
        train.add_argument("--color", choices=("gray", "rgb"), help="image folders: gray or rgb (default: gray if "
                                                                   "every image is)")
        train.add_argument("--test-share", type=cli.positive_float, help="image folders and .npy files: share held "
                                                                         "out for testing (default 0.1)")
        train.add_argument("--binarize", choices=BINARIZE[1:], help="static: pixels > 0.5; dynamic: Bernoulli "
                                                                    "samples every epoch")
    train.add_argument("--tensorboard", action="store_true", default=None,
                       help="write TensorBoard logs into the run folder (tensorboard --logdir run/)")
    speed = p.add_argument_group("speed (defaults chosen per device; see docs/benchmarks.md)")
    speed.add_argument("--jit", action=_BoolFlag, help="XLA-compile the whole training step (default: on GPU only)")
    speed.add_argument("--mixed-precision", action=_BoolFlag,
                       help="mixed_float16 on GPU, mixed_bfloat16 on CPU (1.3-1.7x faster on an AVX512-BF16 CPU)")
    speed.add_argument("--steps-per-execution", type=cli.positive_int, help="steps per compiled call (default 16)")
    runs = p.add_argument_group("run folders")
    runs.add_argument("--run-root", help="where run folders go (default run/<family>)")
    runs.add_argument("--resume", metavar="RUN_DIR", help="continue this run; only --epochs may be given with it")


class _BoolFlag(argparse.BooleanOptionalAction):
    """`--jit` / `--no-jit` with None as the default, meaning: choose per device."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, default=None, **kwargs)


def _warmup(text):
    """`5` -> 5 epochs; `3/7` or `0.4` -> that fraction of the run."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"must be epochs (5) or a fraction of the run (3/7), got {text!r}") from None
    if value < 0 or ("/" in text or "." in text) and value > 1:
        raise argparse.ArgumentTypeError(f"must be epochs >= 0 or a fraction in [0, 1], got {text}")
    return ("fraction", float(value)) if "/" in text or "." in text else ("epochs", int(value))


def model_settings(args):
    """The flat model settings the flags describe: the preset, then explicit flags."""
    fields = preset_settings(args.preset) if args.preset else {}
    for flag, key in (("family", "family"), ("arch", "architecture")):
        if getattr(args, flag, None) is not None:
            fields[key] = getattr(args, flag)
    if args.act is not None or args.where is not None:
        fields.update(activation_settings(args.act or "lrelu", args.where or "both"))
    fields.update({flag: getattr(args, flag) for flag in MODEL_FLAGS if getattr(args, flag, None) is not None})
    if getattr(args, "warmup", None) is not None:
        kind, value = args.warmup
        fields.pop("warmup_fraction" if kind == "epochs" else "warmup_epochs", None)
        fields["warmup_epochs" if kind == "epochs" else "warmup_fraction"] = value
    return fields


def run_label(args, config):
    """The preset's name when one is used unchanged, else a label derived from the settings."""
    overridden = any(getattr(args, f, None) is not None
                     for f in (*MODEL_FLAGS, "act", "where", "family", "arch", "warmup"))
    return args.preset if args.preset and not overridden else variant_label(config)


def training_settings(args):
    """`TrainSettings`: the defaults, then the preset's training settings, then explicit flags."""
    given = preset_training(args.preset) if args.preset else {}
    given.update({k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k, None) is not None})
    return dataclasses.replace(TrainSettings(), **given)


def main(argv=None, families=True, description=None):
    """Parse the flags and train (or resume); a `UserError` ends as one line and exit status 1."""
    p = cli.OneLineParser(description=description or __doc__.split("\n")[0])
    add_model_flags(p, families)
    add_training_flags(p, families)
    args = p.parse_args(argv)
    try:
        if args.resume:
            given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                     if v is not None and k not in ("resume", "epochs")]
            if given:
                raise UserError(f"--resume takes its settings from the run's params.json; drop {' '.join(given)} "
                                "(only --epochs may be given, to extend a run)")
            resume_run(args.resume, epochs=args.epochs)
            return 0
        try:
            config = model_config(**model_settings(args))
        except ValueError as e:
            raise UserError(str(e)) from None
        if not families and config.family != "vae":
            raise UserError(f"preset {args.preset} is a {config.family}, not a VAE; train it with train.py")
        run_root = args.run_root or os.path.join("run", config.family)
        start_run(config, training_settings(args), run_root, run_label(args, config))
    except UserError as e:
        cli.fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
