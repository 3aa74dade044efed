"""Folders of PNG/JPEG images as datasets, on tiny folders the tests write with Pillow."""

import numpy as np
import pytest
from PIL import Image

from utils.data import loaders
from utils.errors import UserError


def _write(path, value, size=(8, 6)):
    """One uniform image of `value` (a gray level, or an RGB triple), `size` = (height, width)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = (3,) if isinstance(value, tuple) else ()
    Image.fromarray(np.full((*size, *channels), value, dtype=np.uint8)).save(path)


@pytest.fixture
def classes(tmp_path):
    """cats (10 images, dark) and dogs (11, bright, one in a nested folder), 8 x 6 gray PNGs."""
    root = tmp_path / "pets"
    for i in range(10):
        _write(root / "cat" / f"{i}.png", 10 + i)
        _write(root / "dog" / f"{i}.png", 200 + i)
    _write(root / "dog" / "puppies" / "p.png", 250)
    (root / "dog" / "notes.txt").write_text("not an image")
    _write(root / ".thumbnails" / "t.png", 128)  # hidden: skipped
    return root


def _values(x):
    return sorted(np.rint(x[:, 0, 0, 0] * 255).astype(int))


def test_subfolders_are_classes_and_the_split_is_fixed(classes):
    data = loaders.load_dataset(str(classes))
    assert data.name == "pets" and data.class_names == ("cat", "dog")
    assert data.x_train.shape == (19, 8, 6, 1) and data.x_test.shape == (2, 8, 6, 1)  # 1 of 10, round(1.1) of 11
    x, y = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    assert np.all((x[:, 0, 0, 0] > 0.5) == (y == 1))  # bright images are dogs
    assert _values(x) == [*range(10, 20), *range(200, 210), 250]  # every image once, exactly
    assert sorted(data.y_test) == [0, 1]  # stratified: one of each class
    again = loaders.load_dataset(str(classes))
    np.testing.assert_array_equal(data.x_test, again.x_test)
    np.testing.assert_array_equal(data.y_train, again.y_train)
    assert len(loaders.load_dataset(str(classes), test_share=0.5).x_test) == 11
    assert loaders.dataset_name(str(classes) + "/") == "pets"


def test_top_level_images_have_no_labels(tmp_path):
    for i in range(20):
        _write(tmp_path / "faces" / f"{i:02}.png", i)
    data = loaders.load_dataset(tmp_path / "faces")
    assert data.y_train is None and data.class_names is None
    assert len(data.x_train) == 18 and len(data.x_test) == 2
    assert _values(np.concatenate([data.x_train, data.x_test])) == list(range(20))


def test_mixed_sizes_need_image_size(tmp_path):
    _write(tmp_path / "a.png", 50, size=(8, 6))
    _write(tmp_path / "b.png", 60, size=(12, 12))
    with pytest.raises(UserError, match=r"2 different sizes.*a\.png is 8x6.*--image-size") as error:
        loaders.load_dataset(tmp_path)
    assert "\n" not in str(error.value)
    data = loaders.load_dataset(tmp_path, image_size=5, test_share=0.5)
    assert data.image_shape == (5, 5, 1) and _values(np.concatenate([data.x_train, data.x_test])) == [50, 60]
    assert loaders.load_dataset(tmp_path, image_size="4x7", test_share=0.5).image_shape == (4, 7, 1)
    with pytest.raises(UserError, match="not a size"):
        loaders.load_dataset(tmp_path, image_size="big")


def test_gray_and_rgb(tmp_path):
    colour, gray = tmp_path / "colour", tmp_path / "gray"
    for i in range(10):
        _write(colour / f"{i}.png", (200, 100, 0))
        _write(gray / f"{i}.png", (90, 90, 90))  # RGB file, gray content
    _write(colour / "x.jpg", (200, 100, 0))
    assert loaders.load_dataset(colour).image_shape == (8, 6, 3)
    as_gray = loaders.load_dataset(colour, color="gray")
    assert as_gray.image_shape == (8, 6, 1)
    np.testing.assert_allclose(as_gray.x_train[0, 0, 0, 0] * 255, round(0.299 * 200 + 0.587 * 100), atol=2)
    assert loaders.load_dataset(gray).image_shape == (8, 6, 1)
    as_rgb = loaders.load_dataset(gray, color="rgb").x_train
    assert as_rgb.shape[-1] == 3 and np.all(as_rgb == as_rgb[..., :1])
    with pytest.raises(UserError, match="'blue' is not one of gray, rgb"):
        loaders.load_dataset(gray, color="blue")


def _junk_png(root):
    _write(root / "ok.png", 5)
    (root / "x.png").write_bytes(b"not a png")


def _no_images(root):
    (root / "notes.txt").write_text("no images")


def _loose_and_sorted(root):
    _write(root / "loose.png", 1)
    _write(root / "cls" / "a.png", 2)


@pytest.mark.parametrize("setup,message", [
    (_junk_png, r"cannot read image .*x\.png"),
    (_no_images, r"holds no \.png or \.jpg images"),
    (_loose_and_sorted, r"both at its top level \(loose\.png\) and in sub-folders"),
])
def test_bad_folders_end_in_one_line(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(UserError, match=message) as error:
        loaders.load_dataset(tmp_path)
    assert "\n" not in str(error.value)


def test_truncated_png_is_named(tmp_path):
    _write(tmp_path / "a.png", 5, size=(64, 64))
    _write(tmp_path / "b.png", 5, size=(64, 64))
    raw = (tmp_path / "b.png").read_bytes()
    (tmp_path / "b.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"cannot read image .*b\.png"):
        loaders.load_dataset(tmp_path)


def test_image_size_text_forms():
    from utils.data.image_folders import parse_image_size

    assert parse_image_size("12") == (12, 12) and parse_image_size("28x32") == (28, 32) and parse_image_size(7) == (7, 7)
