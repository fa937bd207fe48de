"""torchvision's ``datasets`` with its names and signatures, reading local files only.

* ``ImageFolder(root, transform=None, target_transform=None, loader=default_loader,
  is_valid_file=None, allow_empty=False)``: ``root/<class>/<image>``, items ``(PIL image,
  class index)`` as torchvision's.
* ``MNIST`` / ``FashionMNIST(root, train=True, transform=None, target_transform=None,
  download=False)``: the standard idx files (``train-images-idx3-ubyte``, ...; ``.gz`` too) in
  ``root/MNIST/raw`` (torchvision's layout), ``root/MNIST`` or ``root``.
* ``CIFAR10`` / ``CIFAR100(root, train=True, ...)``: the *binary* versions
  (``cifar-10-batches-bin/data_batch_1.bin`` ..., ``cifar-100-binary/train.bin``). The Python
  versions are pickles, which chainrule never loads (a pickle can run any code): given only
  those, the error says which archive to fetch instead.

``download=True`` does not download (chainrule reads local files only): the error names the
files and the folder to put them in.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.data import Dataset
from chainrule.data.sources import IMAGE_EXTENSIONS, DataError

__all__ = [
    "ImageFolder",
    "DatasetFolder",
    "MNIST",
    "FashionMNIST",
    "CIFAR10",
    "CIFAR100",
    "default_loader",
    "pil_loader",
]


def pil_loader(path: str) -> Any:
    """Open an image with Pillow as RGB (torchvision's ``pil_loader``).

    Raises:
        DataError: naming the file if Pillow cannot read it.
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read the image: {e}") from None


default_loader = pil_loader


class DatasetFolder(Dataset):
    """Samples stored one sub-folder per class (torchvision's ``DatasetFolder``).

    Args:
        root: the folder.
        loader: reads one sample from its path.
        extensions: file endings that count (when ``is_valid_file`` is None).
        transform: applied to each sample.
        target_transform: applied to each class index.
        is_valid_file: ``f(path) -> bool`` instead of ``extensions``.
        allow_empty: allow class folders without a file.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        loader: Callable[[str], Any],
        extensions: tuple[str, ...] | None = None,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"Couldn't find the folder {self.root}")
        if (extensions is None) == (is_valid_file is None):
            raise ValueError(
                "Both extensions and is_valid_file cannot be None or not None at the same time"
            )
        self.loader, self.extensions = loader, extensions
        self.transform, self.target_transform = transform, target_transform
        self.classes, self.class_to_idx = self.find_classes(self.root)
        valid = is_valid_file or (lambda p: p.lower().endswith(tuple(extensions or ())))
        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            found = sorted(
                str(p) for p in Path(self.root, name).rglob("*") if p.is_file() and valid(str(p))
            )
            if not found and not allow_empty:
                raise FileNotFoundError(
                    f"Found no valid file for the class {name}. Supported extensions are: "
                    f"{', '.join(extensions or ())} ({Path(self.root, name)})"
                )
            self.samples += [(p, self.class_to_idx[name]) for p in found]
        self.targets = [t for _, t in self.samples]
        self.imgs = self.samples

    @staticmethod
    def find_classes(directory: str) -> tuple[list[str], dict[str, int]]:
        """(sorted class folder names, name -> index)."""
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir())
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
        return classes, {c: i for i, c in enumerate(classes)}

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """(sample, target) after the transforms."""
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target


class ImageFolder(DatasetFolder):
    """Images one sub-folder per class, read as RGB PIL images (torchvision's ``ImageFolder``).

    Args:
        root: the folder.
        transform: applied to each image (``transforms.ToTensor()``, ...).
        target_transform: applied to each class index.
        loader: reads one image (default: Pillow, RGB).
        is_valid_file: ``f(path) -> bool`` instead of the image extensions.
        allow_empty: allow class folders without an image.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        loader: Callable[[str], Any] = default_loader,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        super().__init__(
            root,
            loader,
            IMAGE_EXTENSIONS if is_valid_file is None else None,
            transform=transform,
            target_transform=target_transform,
            is_valid_file=is_valid_file,
            allow_empty=allow_empty,
        )


# ---------------------------------------------------------------------------- idx (MNIST)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (MNIST's format; gzip-compressed if the name ends in ``.gz``).

    Raises:
        DataError: naming the file for a bad header or a short file.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read it: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: not an idx file (truncated header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != need:
        raise DataError(
            f"{path}: the header promises {shape} values ({need} bytes) but the file holds "
            f"{len(data) - header}; the file is truncated or damaged"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


class MNIST(Dataset):
    """MNIST from its idx files (torchvision's ``MNIST``): items ``(PIL image "L", class)``.

    Args:
        root: the folder holding ``MNIST/raw/`` (or the files themselves).
        train: the training set (60,000 images) or the test set (10,000).
        transform: applied to each image.
        target_transform: applied to each class index.
        download: not supported (no network): the error says where to put the files.

    Attributes:
        data: uint8 chainrule array (N, 28, 28) (torchvision: a tensor).
        targets: int64 chainrule array (N,).
        classes: the class names.
    """

    classes = [
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    ]  # fmt: skip
    _files = {
        True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
    ) -> None:
        self.root, self.train = os.fspath(root), train
        self.transform, self.target_transform = transform, target_transform
        images, labels = (self._find(name, download) for name in self._files[train])
        import chainrule.core as mx

        self._images = read_idx(images)
        self._labels = read_idx(labels).astype(np.int64)
        if self._images.ndim != 3 or self._labels.shape != (len(self._images),):
            raise DataError(
                f"{images}: {self._images.shape} images for {self._labels.shape} labels in {labels}"
            )
        # arrays, as torchvision's tensors: `train.data.float() / 255` works
        self.data = mx.array(self._images)
        self.targets = mx.array(self._labels)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    @property
    def raw_folder(self) -> str:
        """torchvision's ``root/<Name>/raw``."""
        return os.path.join(self.root, type(self).__name__, "raw")

    def _find(self, name: str, download: bool) -> str:
        folders = [self.raw_folder, os.path.join(self.root, type(self).__name__), self.root]
        for folder in folders:
            for candidate in (name, name + ".gz"):
                path = os.path.join(folder, candidate)
                if os.path.isfile(path):
                    return path
        why = (
            "download=True is not supported (chainrule reads local files only); "
            if download
            else ""
        )
        raise RuntimeError(
            f"{type(self).__name__}: {name} (or {name}.gz) not found in {self.raw_folder}; "
            f"{why}put the standard idx files there"
        )

    def __len__(self) -> int:
        """Number of images."""
        return len(self._images)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """(image, target) after the transforms."""
        from PIL import Image

        img = Image.fromarray(self._images[index], mode="L")
        target = int(self._labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class FashionMNIST(MNIST):
    """Fashion-MNIST from its idx files (torchvision's ``FashionMNIST``; same files' names)."""

    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip


# -------------------------------------------------------------------------------- CIFAR


class CIFAR10(Dataset):
    """CIFAR-10 from its binary version (``cifar-10-batches-bin``), never the pickled one.

    Args:
        root: the folder holding ``cifar-10-batches-bin/``.
        train: the five training batches (50,000 images) or the test batch (10,000).
        transform: applied to each image (a PIL RGB image).
        target_transform: applied to each class index.
        download: not supported (no network): the error says what to fetch.

    Attributes:
        data: uint8 array (N, 32, 32, 3).
        targets: list of class indices.
        classes: the class names.
    """

    folder = "cifar-10-batches-bin"
    pickled = "cifar-10-batches-py"
    archive = "cifar-10-binary.tar.gz"
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    label_bytes = 1
    classes = [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
    ) -> None:
        self.root, self.train = os.fspath(root), train
        self.transform, self.target_transform = transform, target_transform
        base = os.path.join(self.root, self.folder)
        if not os.path.isdir(base):
            if os.path.isdir(os.path.join(self.root, self.pickled)):
                raise RuntimeError(
                    f"{type(self).__name__}: {os.path.join(self.root, self.pickled)} holds the "
                    "Python (pickled) version, which chainrule does not load (unpickling can run "
                    f"code); extract the binary version {self.archive} into {self.root}"
                )
            why = (
                "download=True is not supported (chainrule reads local files only); "
                if download
                else ""
            )
            raise RuntimeError(
                f"{type(self).__name__}: {base} not found; {why}extract {self.archive} into "
                f"{self.root}"
            )
        images, labels = [], []
        record = self.label_bytes + 3072
        for name in self.train_files if train else self.test_files:
            path = os.path.join(base, name)
            try:
                raw = np.fromfile(path, dtype=np.uint8)
            except OSError as e:
                raise RuntimeError(f"{type(self).__name__}: cannot read {path}: {e}") from None
            if raw.size == 0 or raw.size % record:
                raise DataError(
                    f"{path}: {raw.size} bytes is not a whole number of {record}-byte records; "
                    "the file is truncated or not CIFAR's binary version"
                )
            rows = raw.reshape(-1, record)
            labels.append(rows[:, self.label_bytes - 1].astype(np.int64))
            images.append(rows[:, self.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self.data = np.ascontiguousarray(np.concatenate(images))
        self.targets = np.concatenate(labels).tolist()
        if max(self.targets) >= len(self.classes):
            raise DataError(
                f"{base}: a label of {max(self.targets)} for {len(self.classes)} classes"
            )
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        """Number of images."""
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        """(image, target) after the transforms."""
        from PIL import Image

        img = Image.fromarray(self.data[index])
        target = self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class CIFAR100(CIFAR10):
    """CIFAR-100 from its binary version (``cifar-100-binary``; fine labels, as torchvision)."""

    folder = "cifar-100-binary"
    pickled = "cifar-100-python"
    archive = "cifar-100-binary.tar.gz"
    train_files = ["train.bin"]
    test_files = ["test.bin"]
    label_bytes = 2  # coarse label, then the fine label torchvision uses
    classes = [f"class_{i}" for i in range(100)]

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        download: bool = False,
    ) -> None:
        names = Path(root, self.folder, "fine_label_names.txt")
        if names.is_file():
            self.classes = [n.strip() for n in names.read_text().splitlines() if n.strip()]
        super().__init__(root, train, transform, target_transform, download)
