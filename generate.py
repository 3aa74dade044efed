"""Generate images from a saved decoder: a grid of samples from z ~ N(0, I).

    python generate.py run/vae/0001_mnist_gelu_both --n 64 --out digits.png [--seed S]
    python generate.py path/to/decoder.h5 --n 16 --out grid.png

Needs only the decoder file, which loads in plain Keras.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from utils import cli  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.plots import plot_samples, save_figure  # noqa: E402


def load_decoder(path):
    """The decoder of a run folder or a `decoder.h5` file, checked to map z vectors to images."""
    import h5py
    import keras

    import models  # noqa: F401  (registers Sampling, so an encoder.h5 by mistake gets a clear message)

    path = Path(path)
    if path.is_dir():
        path = path / "models" / "decoder.h5"
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a run folder or its models/decoder.h5")
    if not h5py.is_hdf5(path):
        raise UserError(f"{path} is not an HDF5 model file; give a run folder or its models/decoder.h5")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for files of another architecture
        raise UserError(f"{path} cannot be loaded as a Keras model ({type(e).__name__}: {str(e)[:200]})") from None
    shape_in, shape_out = model.input_shape, model.output_shape
    if (isinstance(shape_in, list) or len(shape_in) != 2 or not isinstance(shape_out, tuple)
            or len(shape_out) != 4):
        raise UserError(f"{path} is not a decoder (it maps {shape_in} to {shape_out}, not z to images); "
                        "give models/decoder.h5, not encoder.h5")
    return model


def generate(decoder, n, seed=None):
    """`n` images decoded from z ~ N(0, I), as float32 NumPy."""
    z = np.random.default_rng(seed).standard_normal((n, decoder.input_shape[-1])).astype("float32")
    return np.asarray(decoder(z, training=False), dtype="float32")


def main(argv=None):
    """Parse the flags, decode a grid and write it; bad input ends as one line and exit status 1."""
    p = cli.OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="a run folder or a decoder.h5 file")
    p.add_argument("--n", type=cli.positive_int, default=64, help="number of images (default 64)")
    p.add_argument("--out", default="generated.png", help="PNG file to write (default generated.png)")
    p.add_argument("--seed", type=cli.non_negative_int, help="seed for z (default: random)")
    p.add_argument("--cols", type=cli.positive_int, help="images per row (default: a square grid)")
    args = p.parse_args(argv)
    try:
        decoder = load_decoder(args.source)
        if Path(args.out).is_dir() or not Path(args.out).resolve().parent.is_dir():
            raise UserError(f"cannot write {args.out}: give a file path in an existing folder")
        images = generate(decoder, args.n, args.seed)
        cols = args.cols or int(np.ceil(np.sqrt(args.n)))
        save_figure(plot_samples(images, cols=cols), args.out)
    except UserError as e:
        cli.fail(str(e))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
