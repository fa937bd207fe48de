"""chainrule.vision (also chainrule.torch.vision): torchvision's transforms and datasets, with
its names and signatures, on local files (idx files, CIFAR's binary version, image folders)."""

from __future__ import annotations

import gzip
import inspect
import pickle

import numpy as np
import pytest

import chainrule.core as mx

Image = pytest.importorskip("PIL.Image")

from chainrule.vision import datasets, transforms  # noqa: E402

# torchvision 0.2x's parameters, in order (torchvision itself is not a test dependency).
SIGNATURES = {
    transforms.Compose: ["transforms"],
    transforms.Normalize: ["mean", "std", "inplace"],
    transforms.Resize: ["size", "interpolation", "max_size", "antialias"],
    transforms.CenterCrop: ["size"],
    transforms.RandomCrop: ["size", "padding", "pad_if_needed", "fill", "padding_mode"],
    transforms.RandomResizedCrop: ["size", "scale", "ratio", "interpolation", "antialias"],
    transforms.RandomHorizontalFlip: ["p"],
    transforms.RandomRotation: ["degrees", "interpolation", "expand", "center", "fill"],
    transforms.ColorJitter: ["brightness", "contrast", "saturation", "hue"],
    transforms.Grayscale: ["num_output_channels"],
    datasets.ImageFolder: [
        "root", "transform", "target_transform", "loader", "is_valid_file", "allow_empty"
    ],
    datasets.MNIST: ["root", "train", "transform", "target_transform", "download"],
    datasets.FashionMNIST: ["root", "train", "transform", "target_transform", "download"],
    datasets.CIFAR10: ["root", "train", "transform", "target_transform", "download"],
    datasets.CIFAR100: ["root", "train", "transform", "target_transform", "download"],
}  # fmt: skip


@pytest.mark.parametrize("cls", list(SIGNATURES), ids=lambda c: c.__name__)
def test_torchvision_signatures(cls):
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    assert params == SIGNATURES[cls]


def test_torch_vision_is_the_same_module():
    import chainrule.torch.vision as tv
    from chainrule.torch.vision import transforms as t2

    assert tv is __import__("chainrule.vision").vision
    assert t2 is transforms


def _rgb(h=12, w=10, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_to_tensor_and_normalize_match_torchvision_formulas():
    img = _rgb()
    x = transforms.ToTensor()(img)
    expected = np.asarray(img).transpose(2, 0, 1).astype(np.float32) / 255
    assert x.shape == (3, 12, 10) and x.dtype == mx.float32
    np.testing.assert_array_equal(np.asarray(x), expected)
    y = transforms.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.5))(x)
    mean = np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]
    std = np.array([0.2, 0.25, 0.5], np.float32)[:, None, None]
    np.testing.assert_allclose(np.asarray(y), (expected - mean) / std, rtol=1e-6)
    with pytest.raises(ValueError, match="division by zero"):
        transforms.Normalize((0.5,), (0.0,))
    grey = transforms.ToTensor()(Image.fromarray(np.zeros((4, 5), np.uint8)))
    assert grey.shape == (1, 4, 5)


def test_resize_and_crops_follow_torchvision_geometry():
    img = _rgb(12, 10)
    assert transforms.Resize(5)(img).size == (5, 6)  # smaller edge to 5, aspect kept (w, h)
    assert transforms.Resize((4, 7))(img).size == (7, 4)
    a = np.asarray(img)
    np.testing.assert_array_equal(np.asarray(transforms.CenterCrop(4)(img)), a[4:8, 3:7])
    mx.random.seed(0)
    crop = np.asarray(transforms.RandomCrop(4, padding=2)(img))
    padded = np.pad(a, ((2, 2), (2, 2), (0, 0)))
    hits = [
        (t, left)
        for t in range(padded.shape[0] - 3)
        for left in range(padded.shape[1] - 3)
        if np.array_equal(padded[t : t + 4, left : left + 4], crop)
    ]
    assert hits  # the crop is a window of the padded image
    out = transforms.RandomResizedCrop((6, 5))(img)
    assert out.size == (5, 6)
    # the same on a (C, H, W) array: shapes follow, values stay in range
    x = transforms.ToTensor()(img)
    assert transforms.Resize((6, 4))(x).shape == (3, 6, 4)
    assert transforms.CenterCrop(4)(x).shape == (3, 4, 4)
    np.testing.assert_allclose(
        np.asarray(transforms.CenterCrop(4)(x)), np.asarray(x)[:, 4:8, 3:7], rtol=1e-6
    )


def test_random_transforms_are_seeded_by_the_global_state():
    img = _rgb(16, 16)
    tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(8),
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(20),
            transforms.ColorJitter(0.3, 0.3, 0.3, 0.1),
            transforms.ToTensor(),
        ]
    )
    mx.random.seed(5)
    a = np.asarray(tf(img))
    mx.random.seed(5)
    b = np.asarray(tf(img))
    c = np.asarray(tf(img))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_flip_rotation_and_grayscale_values():
    img = _rgb()
    flipped = transforms.RandomHorizontalFlip(p=1.0)(img)
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    assert transforms.RandomHorizontalFlip(p=0.0)(img) is img
    square = _rgb(9, 9)
    turned = transforms.RandomRotation((90, 90))(square)  # counter-clockwise, as torchvision
    np.testing.assert_array_equal(np.asarray(turned), np.rot90(np.asarray(square)))
    grey = transforms.Grayscale()(img)
    r, g, b = (np.asarray(img)[..., i].astype(np.float64) for i in range(3))
    luma = r * 299 / 1000 + g * 587 / 1000 + b * 114 / 1000
    assert np.abs(np.asarray(grey).astype(np.float64) - luma).max() <= 1
    assert transforms.Grayscale(3)(img).mode == "RGB"


def _idx(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.tobytes()


def test_mnist_and_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx(images, 0x08))
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(_idx(labels, 0x08))
    ds = datasets.MNIST(str(tmp_path), train=False, transform=transforms.ToTensor())
    assert len(ds) == 7
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and y == labels[3]
    assert ds.data.shape == (7, 28, 28) and ds.data.dtype == mx.uint8
    np.testing.assert_array_equal(np.asarray(ds.data.float() / 255)[3], np.asarray(x)[0])
    assert ds.targets.dtype == mx.int64 and ds.targets.tolist() == labels.tolist()
    np.testing.assert_array_equal(np.asarray(x)[0], images[3] / np.float32(255))
    with pytest.raises(RuntimeError, match="train-images-idx3-ubyte"):
        datasets.MNIST(str(tmp_path), train=True)
    with pytest.raises(RuntimeError, match="download=True is not supported"):
        datasets.FashionMNIST(str(tmp_path), download=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx(images, 0x08)[:-5])
    with pytest.raises(ValueError, match="truncated"):
        datasets.MNIST(str(tmp_path), train=False)


def test_cifar_from_the_binary_files_and_never_the_pickles(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    pixels = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    labels = np.array([3, 0, 9, 1, 5], np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(5, -1)], axis=1)
    (folder / "test_batch.bin").write_bytes(records.tobytes())
    ds = datasets.CIFAR10(str(tmp_path), train=False)
    assert ds.data.shape == (5, 32, 32, 3) and ds.targets == labels.tolist()
    img, target = ds[2]
    assert img.size == (32, 32) and target == 9 and ds.classes[target] == "truck"
    np.testing.assert_array_equal(np.asarray(img), pixels[2].transpose(1, 2, 0))
    # CIFAR-100: coarse then fine label; the fine one is the target
    f100 = tmp_path / "cifar-100-binary"
    f100.mkdir()
    rec = np.concatenate([np.array([[1, 42], [2, 7]], np.uint8), pixels[:2].reshape(2, -1)], 1)
    (f100 / "test.bin").write_bytes(rec.tobytes())
    assert datasets.CIFAR100(str(tmp_path), train=False).targets == [42, 7]
    # only the pickled version: refused, never unpickled
    other = tmp_path / "py"
    (other / "cifar-10-batches-py").mkdir(parents=True)
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (marker.write_text, ("ran",))

    (other / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(RuntimeError, match="cifar-10-binary.tar.gz"):
        datasets.CIFAR10(str(other), train=False)
    assert not marker.exists()
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-1])
    with pytest.raises(ValueError, match="whole number of 3073-byte records"):
        datasets.CIFAR10(str(tmp_path), train=False)


def test_a_pytorch_image_program_runs_with_only_imports_changed(tmp_path):
    import chainrule.torch as torch
    import chainrule.torch.nn as nn
    from chainrule.torch.utils.data import DataLoader
    from chainrule.torch.vision import datasets, transforms

    for k, shade in enumerate((40, 200)):
        (tmp_path / f"c{k}").mkdir()
        for i in range(8):
            _rgb(10, 10, seed=i + 10 * k).point(lambda v, s=shade: (v + s) // 2).save(
                tmp_path / f"c{k}" / f"{i}.png"
            )
    torch.manual_seed(0)
    tf = transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    data = datasets.ImageFolder(str(tmp_path), transform=tf)
    assert data.classes == ["c0", "c1"] and len(data) == 16
    loader = DataLoader(data, batch_size=8, shuffle=True)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(8):
        for x, y in loader:
            assert tuple(x.shape) == (8, 3, 10, 10)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss))
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


# torchvision's parameter draws, written with PyTorch's own calls (torchvision itself is not a
# test dependency): chainrule.vision must draw the same numbers from the same stream.
def _crop_params(torch, h, w, th, tw):
    if h == th and w == tw:
        return 0, 0
    return torch.randint(0, h - th + 1, size=(1,)).item(), torch.randint(
        0, w - tw + 1, size=(1,)
    ).item()


def _resized_crop_params(torch, h, w, scale, ratio):
    import math

    area = h * w
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        cw = int(round(math.sqrt(target_area * aspect)))
        ch = int(round(math.sqrt(target_area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            i = torch.randint(0, h - ch + 1, size=(1,)).item()
            j = torch.randint(0, w - cw + 1, size=(1,)).item()
            return i, j, ch, cw
    return None


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_transforms_draw_torchvisions_numbers(seed):
    """After the same seed, the crop positions, flips, angles and colour factors are the ones
    torchvision draws from PyTorch's generator (its calls, in its order)."""
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    img = _rgb(16, 12)  # 16 rows, 12 columns
    pixels = np.asarray(img)
    torch.manual_seed(seed)
    ct.manual_seed(seed)
    i, j = _crop_params(torch, 16, 12, 8, 5)
    np.testing.assert_array_equal(
        np.asarray(transforms.RandomCrop((8, 5))(img)), pixels[i : i + 8, j : j + 5]
    )
    flips = [bool(torch.rand(1) < 0.5) for _ in range(6)]
    ours = [transforms.RandomHorizontalFlip()(img) is not img for _ in range(6)]
    assert ours == flips
    angle = float(torch.empty(1).uniform_(-30.0, 30.0).item())
    rotated = transforms.RandomRotation(30)(img)
    assert np.array_equal(np.asarray(rotated), np.asarray(img.rotate(angle)))
    params = _resized_crop_params(torch, 16, 12, (0.08, 1.0), (3 / 4, 4 / 3))
    assert transforms.RandomResizedCrop(8).get_params(img) == params
    order = torch.randperm(4).tolist()
    factors = [float(torch.empty(1).uniform_(lo, hi)) for lo, hi in ((0.7, 1.3), (0.8, 1.2))]
    from PIL import ImageEnhance

    want = img
    for k in order:
        if k == 0:
            want = ImageEnhance.Brightness(want).enhance(factors[0])
        elif k == 1:
            want = ImageEnhance.Contrast(want).enhance(factors[1])
    got = transforms.ColorJitter(brightness=0.3, contrast=0.2)(img)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.array_equal(np.asarray(ct.rand(3)), torch.rand(3).numpy())  # the streams in step
