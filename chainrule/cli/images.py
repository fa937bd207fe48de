"""Images in the `chainrule` command: reading a folder of class folders, a CSV list of image
paths and labels, or the built-in digits as 8x8 images; the per-channel scaling a run keeps;
and the seeded augmentation of `--augment`.

Images are read with Pillow into float32 arrays (N, height, width, channels) in [0, 1],
channels last as chainrule's convolutions expect. Grayscale images give one channel; if any
image of the data is in colour, all are read as RGB (three channels).
"""

from __future__ import annotations

import argparse
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CommandError

__all__ = [
    "ImageData",
    "ImageScaler",
    "AugmentedImages",
    "image_size",
    "image_kind",
    "load_images",
    "read_images",
    "check_image_config",
    "GRAY_MODES",
]

# Pillow modes read as one grey channel; everything else is converted to RGB.
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P;gray")


@dataclass
class ImageData:
    """Images and their labels, as the command trains on them.

    Attributes:
        X: float32 (N, height, width, channels) in [0, 1].
        y: class indices (int64), or None when the data has no labels.
        classes: the class names, index order.
        paths: one file per image ("digits[i]" for the built-in digits).
        source: the `--data` argument.
        mode: "L" (grey) or "RGB".
    """

    X: np.ndarray
    y: np.ndarray | None
    classes: list[str]
    paths: list[str]
    source: str
    mode: str
    task: str = "classification"
    target: str = "class"
    features: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.X)


def image_size(text: str) -> tuple[int, int]:
    """`--image-size`: `28` (square) or `32x24` (height x width), each from 1 to 4096."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size like 28 or 32x24 (height x width), got {text!r}"
        ) from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or not all(1 <= s <= 4096 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"expected a size like 28 or 32x24 (height x width, 1 to 4096), got {text!r}"
        )
    return sizes[0], sizes[1]


def _extensions() -> tuple[str, ...]:
    from chainrule.data.sources import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def _is_image_file(name: str) -> bool:
    return name.lower().endswith(_extensions())


def _path_column(frame: Any) -> str | None:
    """The column of a table whose every value is an image file name, if any."""
    for name in frame.columns:
        values = frame[name].tolist()
        if values and all(isinstance(v, str) and _is_image_file(v.strip()) for v in values):
            return str(name)
    return None


def image_kind(spec: str, model: str = "mlp") -> str | None:
    """What kind of image data `--data` names, or None for a table.

    Args:
        spec: the `--data` argument.
        model: `--model`: the built-in digits are read as images for `cnn` and `resnet`.

    Returns:
        "folder" (a folder of class folders, or of images), "list" (a CSV with a column of
        image paths), "file" (one image), "digits", or None.
    """
    if spec == "digits" and model in ("cnn", "resnet"):
        return "digits"
    path = Path(spec)
    if "://" in spec:
        return None
    if path.is_dir():
        return "folder"
    if path.is_file() and _is_image_file(path.name):
        return "file"
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            import pandas as pd

            head = pd.read_csv(path, nrows=50)
        except Exception:  # noqa: BLE001 - the table reader reports it properly later
            return None
        return "list" if _path_column(head) is not None else None
    return None


def _pil() -> Any:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'chainrule[data]'") from None


def read_images(
    paths: list[str], size: tuple[int, int] | None, mode: str | None = None
) -> tuple[np.ndarray, str]:
    """Read image files into one float32 (N, H, W, C) array in [0, 1].

    Args:
        paths: the files.
        size: (height, width) to resize every image to, or None: all must have one size.
        mode: "L" or "RGB" to force; None: grey if every image is grey, else RGB.

    Returns:
        (images, mode).

    Raises:
        CommandError: naming an unreadable file, or two files of different sizes without
            `--image-size`.
    """
    Image = _pil()
    images = []
    modes = []
    first: tuple[str, tuple[int, int]] | None = None
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                modes.append(im.mode)
                if size is not None and (im.height, im.width) != size:
                    im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                images.append(im.copy())
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise CommandError(
                f"{p}: cannot read the image ({' '.join(str(e).split())}); remove the file or "
                "replace it with a PNG, JPEG or BMP image"
            ) from None
        hw = (images[-1].height, images[-1].width)
        if first is None:
            first = (p, hw)
        elif size is None and hw != first[1]:
            raise CommandError(
                f"images of different sizes: {first[0]} is {first[1][0]}x{first[1][1]} but "
                f"{p} is {hw[0]}x{hw[1]} (height x width); add --image-size "
                f"{first[1][0]}x{first[1][1]} to resize them all"
            )
    if mode is None:
        mode = "L" if all(m in GRAY_MODES for m in modes) else "RGB"
    arrays = [np.asarray(im.convert(mode), dtype=np.float32) for im in images]
    if not arrays:
        raise CommandError("no images to read")
    X = np.stack(arrays)
    if X.ndim == 3:
        X = X[..., None]
    return X / np.float32(255.0), mode


def _digits() -> ImageData:
    from chainrule.data.sources import _require

    datasets = _require("sklearn.datasets", "the built-in dataset 'digits'")
    bunch = datasets.load_digits()
    X = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., None]
    return ImageData(
        X,
        np.asarray(bunch.target, dtype=np.int64),
        [str(c) for c in bunch.target_names],
        [f"digits[{i}]" for i in range(len(X))],
        "digits",
        "L",
    )


def _folder_files(root: Path) -> tuple[list[str], list[str], list[int]]:
    """(class names, files, class index per file) of a folder of class folders; a folder of
    images without class folders gives no classes."""
    from chainrule.data import DataError, ImageFolder

    loose = sorted(str(f) for f in root.iterdir() if f.is_file() and _is_image_file(f.name))
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if loose and not subdirs:
        return [], loose, []
    try:
        folder = ImageFolder(root)
    except DataError as e:
        message = str(e)
        if "holds no images" in message:
            message += "; add images to it or remove the empty folder"
        raise CommandError(message) from None
    return folder.classes, [p for p, _ in folder.samples], list(folder.targets)


def _read_list(spec: str, target: str | None) -> tuple[list[str], list[Any] | None]:
    import pandas as pd

    frame = pd.read_csv(spec)
    column = _path_column(frame)
    if column is None:
        raise CommandError(f"{spec}: no column of image file names (.png, .jpg, .bmp, ...)")
    base = Path(spec).parent
    paths = [str(base / str(v).strip()) for v in frame[column]]
    others = [c for c in frame.columns if c != column]
    if target is not None and target not in frame.columns:
        raise CommandError(f"{spec}: no column {target!r} (columns: {', '.join(frame.columns)})")
    label_col = target if target is not None else (others[0] if others else None)
    if label_col is None:
        return paths, None
    labels = frame[label_col]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0]) + 2
        raise CommandError(f"{spec}: line {row}: no label in column {label_col!r}")
    return paths, [str(v) for v in labels]


def load_images(
    spec: str,
    model: str,
    size: tuple[int, int] | None,
    target: str | None = None,
    mode: str | None = None,
    classes: list[str] | None = None,
    files: list[str] | None = None,
) -> ImageData:
    """The images `--data` names (or the image `files` given one by one).

    Args:
        spec: the `--data` argument (may be "" when `files` are given).
        model: `--model` (digits are images for cnn and resnet).
        size: `--image-size`, or None.
        target: for a CSV list, the label column (default: the column next to the paths).
        mode: force "L" or "RGB" (a trained run's), or None to decide from the data.
        classes: a trained run's classes: labels are numbered in this order, and a label that
            is not among them is an error.
        files: image files (predict), instead of `spec`.

    Returns:
        The `ImageData`.

    Raises:
        CommandError: for unreadable, missing or inconsistent images.
    """
    labels: list[Any] | None
    if files:
        for f in files:
            if not Path(f).is_file():
                raise CommandError(f"{f}: no such image file")
        paths, labels, source = list(files), None, ", ".join(files[:3])
    else:
        kind = image_kind(spec, model)
        if kind == "digits":
            data = _digits()
            if size is not None and size != (8, 8):
                data.X = read_resized(data.X, size)
            return data
        if kind == "folder":
            names, paths, idx = _folder_files(Path(spec))
            labels = [names[i] for i in idx] if names else None
        elif kind == "list":
            paths, labels = _read_list(spec, target)
        elif kind == "file":
            paths, labels = [spec], None
        else:
            raise CommandError(
                f"--data {spec}: not a folder of images or a CSV of image paths; give a folder "
                "with one sub-folder per class"
            )
        source = spec
    for p in paths:
        if not os.path.isfile(p):
            raise CommandError(f"{p}: no such image file (listed in {spec})")
    X, mode = read_images(paths, size, mode)
    y = None
    names = sorted(set(labels)) if labels is not None else []
    if classes is not None:
        names = list(classes)
    if labels is not None:
        index = {c: i for i, c in enumerate(names)}
        missing = [c for c in labels if c not in index]
        if missing:
            raise CommandError(
                f"{spec}: class {missing[0]!r} was not among the classes seen in training: {names}"
            )
        y = np.array([index[c] for c in labels], dtype=np.int64)
    return ImageData(X, y, names, paths, source, mode)


def read_resized(X: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float images (N, H, W, C) in [0, 1] with Pillow's bilinear filter."""
    Image = _pil()
    out = np.empty((len(X), size[0], size[1], X.shape[-1]), dtype=np.float32)
    for i, img in enumerate(X):
        for c in range(X.shape[-1]):
            im = Image.fromarray(img[..., c].astype(np.float32), mode="F")
            out[i, ..., c] = np.asarray(im.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return out


class ImageScaler:
    """Per-channel standardisation of images (and flattening, for an MLP on pixels).

    Args:
        mean: one mean per channel.
        std: one standard deviation per channel (0 is treated as 1).
        flatten: give (N, H*W*C) rows instead of images.
    """

    def __init__(self, mean: list[float], std: list[float], flatten: bool = False) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.where(np.asarray(std, dtype=np.float32) > 0, std, 1).astype(np.float32)
        self.flatten = flatten

    @classmethod
    def fit(cls, X: np.ndarray, flatten: bool = False) -> ImageScaler:
        """The mean and standard deviation of each channel of `X` (N, H, W, C)."""
        axes = (0, 1, 2)
        return cls(
            X.mean(axis=axes, dtype=np.float64).tolist(),
            X.std(axis=axes, dtype=np.float64).tolist(),
            flatten,
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised images, flattened for an MLP."""
        Z = ((X - self.mean) / self.std).astype(np.float32)
        return Z.reshape(len(Z), -1) if self.flatten else Z

    def to_dict(self) -> dict[str, list[float]]:
        """`{"mean": [...], "std": [...]}` for config.json."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class AugmentedImages:
    """Training images with `--augment`: per image, a random crop of the image padded by an
    eighth of its size (at least 1 pixel), a horizontal flip with probability 1/2 and a rotation
    of up to 10 degrees. Every draw comes from `chainrule.core.random`'s global state, so
    `--seed` fixes them and a resumed run draws what the uninterrupted one would.

    Args:
        X: standardised images (N, H, W, C).
        y: class indices.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        """Number of images."""
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        """One augmented image and its class."""
        x, y = self.get_batch(np.array([i]))
        return x[0], y[0]

    def get_batch(self, indices: Any) -> tuple[Any, Any]:
        """A batch of augmented images (the loader's whole-batch fetch)."""
        import chainrule.core as mx

        X = self.X[indices]
        n, h, w, _ = X.shape
        pad = max(1, min(h, w) // 8)
        draws = np.asarray(mx.random.uniform(shape=(n, 4)))
        padded = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        out = np.empty_like(X)
        for k in range(n):
            top = min(int(draws[k, 0] * (2 * pad + 1)), 2 * pad)
            left = min(int(draws[k, 1] * (2 * pad + 1)), 2 * pad)
            img = padded[k, top : top + h, left : left + w]
            if draws[k, 2] < 0.5:
                img = img[:, ::-1]
            out[k] = _rotate(img, (draws[k, 3] * 2 - 1) * 10.0)
        return mx.array(out), mx.array(self.y[indices])


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate (H, W, C) about its centre (nearest pixel, edges repeated)."""
    h, w = img.shape[:2]
    t = np.deg2rad(degrees)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    sy = np.cos(t) * (yy - cy) - np.sin(t) * (xx - cx) + cy
    sx = np.sin(t) * (yy - cy) + np.cos(t) * (xx - cx) + cx
    sy = np.clip(np.rint(sy), 0, h - 1).astype(np.int64)
    sx = np.clip(np.rint(sx), 0, w - 1).astype(np.int64)
    return img[sy, sx]


def check_image_config(config: dict[str, Any], where: Path) -> None:
    """Check the image entries of a run's config.json (`input`, `model`).

    Raises:
        CommandError: naming the first bad entry.
    """

    def bad(what: str) -> CommandError:
        return CommandError(f"{where}: {what}; the file is damaged or was edited by hand")

    info = config.get("input")
    shape = info.get("shape") if isinstance(info, dict) else None
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(s, int) and 1 <= s <= 4096 for s in shape)
    ):
        raise bad("input.shape must be [height, width, channels]")
    if info.get("mode") not in ("L", "RGB") or shape[2] != (1 if info["mode"] == "L" else 3):
        raise bad("input.mode must be 'L' (1 channel) or 'RGB' (3 channels)")
    for key in ("mean", "std"):
        values = info.get(key)
        if not (
            isinstance(values, list)
            and len(values) == shape[2]
            and all(isinstance(v, int | float) and np.isfinite(v) for v in values)
        ):
            raise bad(f"input.{key} must list one finite number per channel")
    model = config.get("model")
    if not isinstance(model, dict) or model.get("kind", "mlp") not in ("mlp", "cnn", "resnet"):
        raise bad("model.kind must be mlp, cnn or resnet")
    classes = config.get("classes")
    if config.get("task") != "classification" or not isinstance(classes, list) or not classes:
        raise bad("an image run is a classification with its classes listed")
    if model.get("output_dim") != len(classes):
        raise bad(f"{len(classes)} classes for a model of {model.get('output_dim')} outputs")


def load_for_image_run(
    spec: str | None, config: dict[str, Any], with_target: bool, files: list[str] | None = None
) -> tuple[ImageData, np.ndarray | None]:
    """The images a trained run is applied to, read as it was trained (size, mode, classes).

    Args:
        spec: `--data` (a folder, a CSV list, one image, or digits), or None with `files`.
        config: the run's checked config.
        with_target: the images need labels (evaluate).
        files: image files given one by one (predict).

    Returns:
        (images, class indices in the run's numbering, or None).

    Raises:
        CommandError: for images that do not fit the run.
    """
    info = config["input"]
    h, w, _ = info["shape"]
    kind = config["model"].get("kind", "mlp")
    model = "cnn" if spec == "digits" else kind
    data = load_images(
        spec or "",
        model,
        (h, w),
        mode=info["mode"],
        classes=config["classes"] if with_target else None,
        files=files,
    )
    if data.mode != info["mode"] or data.X.shape[-1] != info["shape"][2]:
        raise CommandError(f"{spec}: the run was trained on {info['mode']} images")
    if with_target and data.y is None:
        raise CommandError(
            f"--data {spec}: evaluating needs labelled images: a folder with one sub-folder "
            "per class, or a CSV of paths and labels"
        )
    return data, data.y if with_target else None
