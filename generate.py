"""Generate images from a saved decoder: a grid decoded from latent points.

    python generate.py run/vae/0001_mnist_gelu_both --n 64 --out digits.png [--seed S] [--bernoulli]
    python generate.py path/to/decoder.h5 --n 16 --out grid.png

A VAE's points come from its prior N(0, I). An autoencoder has no prior, so its points come from the
Gaussian fitted to its training codes (`models/code_gaussian.json` of its run folder), and it says
so. `--bernoulli` draws every pixel as 1 with probability the decoded intensity (u < p).
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from utils import cli, runs  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.plots import plot_samples, save_figure  # noqa: E402


def load_decoder(path):
    """The decoder of a run folder or a `decoder.h5` file, checked to map z vectors to images."""
    import h5py
    import keras

    import models  # noqa: F401  (registers Sampling, so an encoder.h5 by mistake gets a clear message)

    path = Path(path)
    if path.is_dir():
        path = runs.model_file(path, runs.DECODER)
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a run folder or its models/decoder.h5")
    if not h5py.is_hdf5(path):
        raise UserError(f"{path} is not an HDF5 model file; give a run folder or its models/decoder.h5")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for files of another architecture
        raise UserError(f"{path} cannot be loaded as a Keras model ({type(e).__name__}: {str(e)[:200]})") from None
    shape_in = model.input_shape
    shapes_out = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    if isinstance(shape_in, list) or len(shape_in) != 2 or any(len(s) != 4 for s in shapes_out):
        raise UserError(f"{path} is not a decoder (it maps {shape_in} to {model.output_shape}, not z to images); "
                        "give models/decoder.h5, not encoder.h5")
    return model


def code_distribution(source):
    """(Gaussian or None, a note): None means the prior N(0, I). An autoencoder's run folder gives the
    Gaussian fitted to its training codes."""
    source = Path(source)
    run_dir = source if source.is_dir() else source.parent.parent
    if not (run_dir / runs.PARAMS).is_file():
        return None, "z ~ N(0, I) (no run folder beside the decoder, so the model is taken to be a VAE)"
    config = runs.model_config(runs.read_params(run_dir))
    if config.family == "vae":
        return None, "z ~ N(0, I), the VAE's prior"
    path = runs.model_file(run_dir, runs.CODE_GAUSSIAN)
    if not path.is_file():
        raise UserError(f"{run_dir} is an autoencoder whose training has not finished, so its codes have no fitted "
                        f"Gaussian yet ({path.name}); finish it with train.py --resume {run_dir}")
    return json.loads(path.read_text()), ("codes ~ a Gaussian fitted to the training codes: an autoencoder "
                                          "has no prior, so N(0, I) would decode to nonsense")


def generate(decoder, n, seed=None, gaussian=None, bernoulli=False):
    """`n` images decoded from `n` latent points (see `code_distribution`), as float32 NumPy; with
    `bernoulli`, each pixel drawn as 1 with the decoded probability."""
    from utils.analysis import decode, sample_latents

    rng = np.random.default_rng(seed)
    images = decode(decoder, sample_latents(n, decoder.input_shape[-1], rng, gaussian))
    return (rng.random(images.shape) < images).astype("float32") if bernoulli else images


def main(argv=None):
    """Parse the flags, decode a grid and write it; bad input ends as one line and exit status 1."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="a run folder or a decoder.h5 file")
    p.add_argument("--n", type=cli.positive_int, default=64, help="number of images (default 64)")
    p.add_argument("--out", default="generated.png", help="PNG file to write (default generated.png)")
    p.add_argument("--seed", type=cli.non_negative_int, help="seed for z (default: random)")
    p.add_argument("--cols", type=cli.positive_int, help="images per row (default: a square grid)")
    p.add_argument("--bernoulli", action="store_true", help="draw binary pixels (u < p) instead of the mean image")
    args = p.parse_args(argv)
    try:
        decoder = load_decoder(args.source)
        gaussian, note = code_distribution(args.source)
        if Path(args.out).is_dir() or not Path(args.out).resolve().parent.is_dir():
            raise UserError(f"cannot write {args.out}: give a file path in an existing folder")
        images = generate(decoder, args.n, args.seed, gaussian, args.bernoulli)
        cols = args.cols or int(np.ceil(np.sqrt(args.n)))
        save_figure(plot_samples(images, cols=cols), args.out)
    except UserError as e:
        cli.fail(str(e))
    print(note)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
