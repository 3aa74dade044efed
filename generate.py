"""Generate images from a trained model: a grid of new images.

    python generate.py run/vae/0001_mnist_gelu_both --n 64 --out digits.png [--seed S] [--bernoulli]
    python generate.py path/to/decoder.h5 --n 16 --out grid.png

A run folder's model draws its own codes (a VAE from its prior N(0, I); an autoencoder, which has no
prior, from the Gaussian fitted to its training codes) and says how. A bare `decoder.h5` decodes
z ~ N(0, I). `--bernoulli` draws every pixel as 1 with probability the decoded intensity (u < p).
"""

import os
import sys
from pathlib import Path

from utils import startup  # noqa: E402

startup.start()  # before Keras loads: the process settings, a quiet start

import numpy as np  # noqa: E402

from utils import cli  # noqa: E402
from utils.analysis.plots import plot_samples, save_figure  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.runs import layout  # noqa: E402
from utils.runs.health import h5_damage  # noqa: E402


def load_decoder(path):
    """A `decoder.h5` file, checked to map z vectors to images."""
    import h5py
    import keras

    import models  # noqa: F401  (registers Sampling, so an encoder.h5 by mistake gets a clear message)

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a run folder or its models/decoder.h5")
    in_a_run = (path.parent.parent / layout.PARAMS).is_file()
    if in_a_run and h5_damage(path):  # a file of a run folder: damaged, not of the wrong kind
        raise UserError(f"{h5_damage(path, str(path))}; give the run folder instead (its model is rebuilt from the "
                        f"best epoch's weights), or re-export it with train.py --resume {path.parent.parent}")
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


class PlainDecoder:
    """A bare `decoder.h5` as a generator: z ~ N(0, I) decoded (the mean image of a two-output decoder)."""

    sampling_note = "z ~ N(0, I) (no run folder beside the decoder, so the model is taken to be a VAE)"

    def __init__(self, decoder):
        self.decoder = decoder

    def sample_codes(self, n, rng):
        return rng.standard_normal((n, self.decoder.input_shape[-1])).astype("float32")

    def decode(self, codes):
        from models.base import first, to_numpy

        return to_numpy(first(self.decoder(codes, training=False)))


def load_generator(source):
    """The model that draws the images: a run folder's own (given as the folder or one of its model files),
    else a bare decoder file."""
    from utils.runs.loading import load_model

    source = Path(source)
    if source.is_dir():
        return load_model(source)
    decoder = load_decoder(source)
    run_dir = source.parent.parent
    return load_model(run_dir) if (run_dir / layout.PARAMS).is_file() else PlainDecoder(decoder)


def generate(generator, n, seed=None, bernoulli=False):
    """`n` images decoded from `n` codes the generator draws, as float32 NumPy; with `bernoulli`, each pixel
    drawn as 1 with the decoded probability."""
    rng = np.random.default_rng(seed)
    try:
        images = generator.decode(generator.sample_codes(n, rng))
    except ValueError as e:  # e.g. an autoencoder whose code Gaussian is fitted only when training ends
        raise UserError(str(e)) from None
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
        generator = load_generator(args.source)
        if Path(args.out).is_dir() or not Path(args.out).resolve().parent.is_dir():
            raise UserError(f"cannot write {args.out}: give a file path in an existing folder")
        images = generate(generator, args.n, args.seed, args.bernoulli)
        cols = args.cols or int(np.ceil(np.sqrt(args.n)))
        save_figure(plot_samples(images, cols=cols), args.out)
    except UserError as e:
        cli.fail(str(e))
    print(generator.sampling_note)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
