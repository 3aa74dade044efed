"""Train one autoencoder of any family into a new run folder (or resume one).

    python train.py --preset sae_kl --dataset fashion_mnist --epochs 5          # a named system
    python train.py --family dae --arch dense --noise dropout:0.5 --z-dim 30
    python train.py --family vae --arch dense --loss bce --binarize dynamic --z-dim 16
    python train.py --resume run/vae/0003_fashion_mnist_sae_kl                   # continue after a kill

Model settings come from the defaults (the study's conv VAE), then the preset, then the flags; every
setting's flag is derived from its field in the config dataclasses (`--help` lists them). The last line
printed is the run folder. `train_vae.py` is this command for the study's VAEs.
"""

import os
import sys

from utils import startup  # noqa: E402

startup.start()  # before Keras loads: the process settings, a quiet start

from models import family_class, family_names, model_config  # noqa: E402
from models.activations import ACTIVATIONS, DEFAULT_ACTIVATION  # noqa: E402
from models.architectures import ARCHITECTURES  # noqa: E402
from models.presets import PRESETS, activation_settings, preset_settings, preset_training, variant_label  # noqa: E402
from models.registry import load_family_modules  # noqa: E402
from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.runs.settings import TrainSettings  # noqa: E402
from utils.training.run import RESUME_SETTINGS, resume_run, start_run  # noqa: E402


def build_parser(family=None, description=None):
    """The flags: preset, family and architecture, the model's settings, training, run folders. With
    `family` given (train_vae.py), there is no --family and only that family's settings."""
    try:
        load_family_modules()  # families (and their presets) kept outside the project, before the choices
    except ValueError as e:
        cli.fail(str(e))
    p = cli.OneLineParser(description=description or __doc__.split("\n")[0])
    model = p.add_argument_group("model (defaults: the study's base model, a conv VAE)")
    model.add_argument("--preset", choices=list(PRESETS), help="a named variant or system; flags below override it")
    families = [family] if family else list(family_names())
    if not family:
        model.add_argument("--family", choices=families, help="vae, ae, dae (denoising), sae (sparse), ...")
    model.add_argument("--arch", choices=list(ARCHITECTURES), help="conv (filter lists), dense (width lists), ...")
    model.add_argument("--act", choices=ACTIVATIONS, help="activation placed where --where says; the other side "
                                                          f"keeps the preset's (default {DEFAULT_ACTIVATION})")
    model.add_argument("--where", choices=("encoder", "decoder", "both"), help="where --act goes (default both)")
    objectives = list(dict.fromkeys(family_class(name).Objective for name in families))
    p.model_flags = cli.add_setting_flags(model, [*ARCHITECTURES.values(), *objectives])
    p.train_flags = cli.add_setting_flags(p.add_argument_group("training"), [TrainSettings])
    folders = p.add_argument_group("run folders")
    folders.add_argument("--run-root", help="where run folders go (default run/<family>)")
    folders.add_argument("--resume", metavar="RUN_DIR", help="continue this run; only --epochs and --eval-samples "
                                                              "may be given with it")
    return p


def model_settings(args, model_flags):
    """The flat model settings the flags describe: the preset, then explicit flags."""
    fields = preset_settings(args.preset) if args.preset else {}
    for flag, key in (("family", "family"), ("arch", "architecture")):
        if getattr(args, flag, None) is not None:
            fields[key] = getattr(args, flag)
    if args.where is not None and args.act is None:
        raise UserError(f"--where {args.where} needs --act, the activation to put there")
    if args.act is not None:
        fields.update(activation_settings(args.act, args.where or "both"))
    return {**fields, **cli.given(args, model_flags)}


def run_label(args, config, model_flags):
    """The preset's name when one is used unchanged, else a label derived from the settings."""
    overridden = cli.given(args, [*model_flags, "act", "where", "family", "arch"])
    return args.preset if args.preset and not overridden else variant_label(config)


def training_settings(args, train_flags):
    """`TrainSettings`: the defaults, then the preset's training settings, then explicit flags."""
    given = preset_training(args.preset) if args.preset else {}
    try:
        return TrainSettings(**{**given, **cli.given(args, train_flags)})
    except ValueError as e:
        raise UserError(str(e)) from None


def main(argv=None, family=None, description=None):
    """Parse the flags and train (or resume); a `UserError` ends as one line and exit status 1."""
    p = build_parser(family, description)
    args = p.parse_args(argv)
    try:
        if args.resume:
            extra = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                     if v is not None and k not in ("resume", *RESUME_SETTINGS)]
            if extra:
                raise UserError(f"--resume takes its settings from the run's params.json; drop {' '.join(extra)} "
                                "(only --epochs, to extend a run, and --eval-samples may be given)")
            resume_run(args.resume, **{k: getattr(args, k) for k in RESUME_SETTINGS})
            return 0
        settings = model_settings(args, p.model_flags)
        if family and settings.setdefault("family", family) != family:
            raise UserError(f"preset {args.preset} is a {settings['family']}, not a {family.upper()}; "
                            "train it with train.py")
        try:
            config = model_config(**settings)
        except ValueError as e:
            raise UserError(str(e)) from None
        run_root = args.run_root or os.path.join("run", config.family)
        start_run(config, training_settings(args, p.train_flags), run_root, run_label(args, config, p.model_flags))
    except UserError as e:
        cli.fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
