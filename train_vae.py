"""Train one of the study's VAE variants into a new run folder (or resume one).

    python train_vae.py --act gelu --where both                     # the study's Full-GELU, MNIST, 200 epochs
    python train_vae.py --preset gelu_full_bn_before --dataset fashion_mnist --epochs 5
    python train_vae.py --resume run/vae/0001_mnist_gelu_both       # continue after a crash or kill

The study's command: `train.py` with the family fixed to the VAE (every other family is `train.py`'s).
The last line printed is the run folder.
"""

import sys

import train

if __name__ == "__main__":
    sys.exit(train.main(family="vae", description=__doc__.split("\n")[0]))
