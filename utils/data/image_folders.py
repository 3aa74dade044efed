"""A folder of PNG/JPEG images as one uint8 array, with labels from its sub-folders.

Images are found recursively (`.png`, `.jpg`, `.jpeg`, any case; files and folders whose names start
with a dot are skipped), in sorted path order. Where the images sit in sub-folders, each top-level
sub-folder is a class: sorted names (as strings) become labels 0..K-1. Where they all sit at the top
level there are no labels; a mix of the two is refused.

Every image is decoded by Pillow as 8-bit RGB (alpha dropped) and, where `image_size` is given,
resized to it with bilinear (antialiased) resampling, aspect ratio not kept. `color="gray"` keeps
one channel (luma, 0.299 R + 0.587 G + 0.114 B, for colour images), `"rgb"` three; left out, the
folder is gray when every image's red, green and blue are equal.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from utils.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
COLORS = ("gray", "rgb")
_LUMA = np.array([0.299, 0.587, 0.114])


def parse_image_size(value):
    """(height, width) from an int, a pair, or text like "28" or "28x32" (as given to --image-size)."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        value = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else None
        value = value[0] if value is not None and len(value) == 1 else value
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and v > 0 for v in value)):
        return int(value[0]), int(value[1])
    raise UserError(f"image size {value!r} is not a size: give one number (28) or height x width (28x32)")


def image_files(folder):
    """The image files below `folder`, sorted, skipping hidden files and folders."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_image_folder(folder, image_size=None, color=None):
    """(images uint8 N x H x W x C, labels or None, class names or None) from a folder of images."""
    folder = Path(folder)
    files = image_files(folder)
    if not files:
        raise UserError(f"{folder} holds no .png or .jpg images; give a folder of images "
                        "(in one sub-folder per class for labels)")
    labels, class_names = _labels_from_subfolders(folder, files)
    size = parse_image_size(image_size) if image_size is not None else _common_size(folder, files)
    if color is not None and color not in COLORS:
        raise UserError(f"color {color!r} is not one of {', '.join(COLORS)}")
    images = np.stack([_read_rgb(path, size) for path in files])
    all_gray = bool((images[..., :1] == images).all())
    if (color or ("gray" if all_gray else "rgb")) == "rgb":
        return images, labels, class_names
    gray = images[..., :1] if all_gray else np.rint(images @ _LUMA)[..., np.newaxis].astype(np.uint8)
    return gray, labels, class_names


def _labels_from_subfolders(folder, files):
    tops = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in files]
    if all(t is None for t in tops):
        return None, None
    if any(t is None for t in tops):
        loose = next(p for p, t in zip(files, tops) if t is None)
        raise UserError(f"{folder} has images both at its top level ({loose.name}) and in sub-folders: "
                        "put every image in a sub-folder named after its class, or all at the top level")
    class_names = tuple(sorted(set(tops)))
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[t] for t in tops], dtype=np.int64), class_names


def _common_size(folder, files):
    """The (height, width) all images share, read from their headers; otherwise ask for --image-size."""
    sizes = {}
    for path in files:
        with _opened(path) as image:
            sizes.setdefault((image.height, image.width), path)
    if len(sizes) > 1:
        (a, pa), (b, pb) = list(sizes.items())[:2]
        raise UserError(f"images in {folder} have {len(sizes)} different sizes ({pa.name} is {a[0]}x{a[1]}, "
                        f"{pb.name} is {b[0]}x{b[1]}): give --image-size, e.g. --image-size {a[0]} "
                        f"or --image-size {a[0]}x{a[1]}")
    return next(iter(sizes))


def _read_rgb(path, size):
    with _opened(path) as image:
        try:
            rgb = image.convert("RGB")
        except Exception as e:  # a truncated or corrupt body only shows when decoded
            raise _unreadable(path, e) from None
    if (rgb.height, rgb.width) != size:
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def _opened(path):
    try:
        return Image.open(path)
    except Exception as e:  # Pillow's errors for unknown formats, bad headers and decompression bombs differ
        raise _unreadable(path, e) from None


def _unreadable(path, error):
    detail = " ".join(str(error).split())  # one line, whatever Pillow's message holds
    return UserError(f"cannot read image {path} ({type(error).__name__}: {detail}); "
                     "remove it or replace it by a valid PNG or JPEG")
