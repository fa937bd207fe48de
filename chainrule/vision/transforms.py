"""torchvision's ``transforms`` with its names and signatures, on PIL images and (C, H, W) arrays.

Geometric and colour transforms take a PIL image (as torchvision's do) or a (C, H, W) array
(converted to a PIL image and back, channel by channel for float data); ``ToTensor`` turns a
PIL image or an (H, W, C) ``uint8`` NumPy array into a float32 chainrule array (C, H, W) in
[0, 1]; ``Normalize`` works on such arrays. Random draws are torchvision's own calls on
PyTorch's default generator (``chainrule.core.torch_generator``, which ``mx.random.seed``
and ``torch.manual_seed`` both seed): a seeded program crops, flips, rotates and jitters as
it does under torchvision.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core import torch_generator

__all__ = [
    "InterpolationMode",
    "Compose",
    "Lambda",
    "ToTensor",
    "PILToTensor",
    "ToPILImage",
    "Normalize",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomRotation",
    "ColorJitter",
    "Grayscale",
]


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("chainrule.vision needs Pillow: pip install 'chainrule[data]'") from None
    return Image


def _resample(mode: InterpolationMode | int) -> Any:
    Image = _pil()
    if isinstance(mode, int):
        return mode
    return {
        InterpolationMode.NEAREST: Image.Resampling.NEAREST,
        InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
        InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
        InterpolationMode.BOX: Image.Resampling.BOX,
        InterpolationMode.HAMMING: Image.Resampling.HAMMING,
        InterpolationMode.LANCZOS: Image.Resampling.LANCZOS,
    }[mode]


def _uniform(low: float, high: float) -> float:
    """``float(torch.empty(1).uniform_(low, high))``: torchvision's draw of a factor."""
    return float(torch_generator.stream().uniform((1,), np.float32, low, high)[0])


def _rand() -> np.float32:
    """``torch.rand(1)``: torchvision's draw of a coin (compared in float32)."""
    return torch_generator.stream().uniform((1,), np.float32)[0]


def _randint(high: int) -> int:
    """``torch.randint(0, high, size=(1,)).item()``: torchvision's draw of a position."""
    return int(torch_generator.stream().integers(0, high, (1,))[0])


def _is_pil(img: Any) -> bool:
    Image = _pil()
    return isinstance(img, Image.Image)


def _pair(size: Any, name: str) -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{name}: size must be an int or a sequence of 1 or 2 ints, got {size!r}")


class _ArrayImage:
    """A (C, H, W) array seen as PIL images, one 'F' image per channel, and back."""

    def __init__(self, array: Any) -> None:
        self.value = np.asarray(array)
        if self.value.ndim != 3:
            raise ValueError(
                f"expected a PIL image or a (C, H, W) array, got shape {self.value.shape}"
            )

    def apply(self, fn: Callable[[Any], Any]) -> Any:
        import chainrule.core as mx

        Image = _pil()
        channels = [
            np.asarray(fn(Image.fromarray(c.astype(np.float32), mode="F"))) for c in self.value
        ]
        return mx.array(np.stack(channels).astype(self.value.dtype))


def _on_image(img: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply a PIL function to a PIL image, or to each channel of a (C, H, W) array."""
    if _is_pil(img):
        return fn(img)
    return _ArrayImage(img).apply(fn)


def _size_of(img: Any) -> tuple[int, int]:
    """(height, width)."""
    if _is_pil(img):
        return img.height, img.width
    shape = np.shape(img)
    return int(shape[-2]), int(shape[-1])


class Compose:
    """Apply transforms one after the other.

    Args:
        transforms: the transforms.
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        """The image after every transform."""
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """A user function as a transform.

    Args:
        lambd: the function.
    """

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        """`lambd(img)`."""
        return self.lambd(img)


class ToTensor:
    """A PIL image or an (H, W, C) NumPy array to a float32 array (C, H, W); 8-bit data is
    divided by 255, as torchvision's ``ToTensor``."""

    def __call__(self, pic: Any) -> Any:
        """The image as a float32 (C, H, W) array."""
        import chainrule.core as mx

        if _is_pil(pic):
            a = np.asarray(pic)
        elif isinstance(pic, np.ndarray):
            a = pic
        else:
            raise TypeError(f"ToTensor: pic should be a PIL image or ndarray, got {type(pic)}")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"ToTensor: pic should be 2 or 3 dimensional, got {a.ndim}")
        scale = a.dtype == np.uint8 or a.dtype == np.bool_
        out = np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.float32)
        return mx.array(out / np.float32(255.0) if scale else out)

    def __repr__(self) -> str:
        return "ToTensor()"


class PILToTensor:
    """A PIL image to a (C, H, W) array of its own dtype (no scaling)."""

    def __call__(self, pic: Any) -> Any:
        """The image as a (C, H, W) array."""
        import chainrule.core as mx

        a = np.asarray(pic)
        if a.ndim == 2:
            a = a[:, :, None]
        return mx.array(np.ascontiguousarray(a.transpose(2, 0, 1)))


class ToPILImage:
    """A (C, H, W) array (floats in [0, 1] are scaled by 255) or (H, W, C) NumPy array to PIL.

    Args:
        mode: the PIL mode, or None to infer it.
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode

    def __call__(self, pic: Any) -> Any:
        """The PIL image."""
        Image = _pil()
        if isinstance(pic, np.ndarray):
            a = pic
        else:
            a = np.asarray(pic).transpose(1, 2, 0)
        if a.dtype.kind == "f":
            a = np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        return Image.fromarray(a, mode=self.mode) if self.mode else Image.fromarray(a)


class Normalize:
    """``(x - mean) / std`` per channel of a (C, H, W) (or (N, C, H, W)) float array.

    Args:
        mean: one mean per channel.
        std: one standard deviation per channel.
        inplace: accepted for torchvision's signature (arrays are values: a new one is made).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean, self.std, self.inplace = list(mean), list(std), inplace
        if any(s == 0 for s in self.std):
            raise ValueError(
                f"Normalize: std evaluated to zero, leading to division by zero: {std}"
            )

    def __call__(self, tensor: Any) -> Any:
        """The normalised array."""
        import chainrule.core as mx

        x = tensor if isinstance(tensor, mx.array) else mx.array(np.asarray(tensor))
        if x.ndim < 3:
            raise ValueError(f"Normalize: expected a (C, H, W) array, got shape {x.shape}")
        c = x.shape[-3]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(
                f"Normalize: {len(self.mean)} means and {len(self.std)} stds for {c} channels"
            )
        mean = mx.array(np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1))
        std = mx.array(np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1))
        return (x - mean.astype(x.dtype)) / std.astype(x.dtype)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def _resize_to(size: int | Sequence[int], h: int, w: int, max_size: int | None) -> tuple[int, int]:
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    s = int(size[0] if isinstance(size, Sequence) else size)
    short, long = (h, w) if h <= w else (w, h)
    new_short, new_long = s, int(s * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


class Resize:
    """Resize to ``size``: (h, w), or an int that the smaller edge is matched to (aspect kept).

    Args:
        size: the size.
        interpolation: an ``InterpolationMode``.
        max_size: the longest the longer edge may become (int ``size`` only).
        antialias: accepted for torchvision's signature (Pillow always antialiases).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        max_size: int | None = None,
        antialias: bool | None = True,
    ) -> None:
        self.size, self.interpolation, self.max_size, self.antialias = (
            size,
            interpolation,
            max_size,
            antialias,
        )

    def __call__(self, img: Any) -> Any:
        """The resized image."""
        h, w = _size_of(img)
        nh, nw = _resize_to(self.size, h, w, self.max_size)
        resample = _resample(self.interpolation)
        return _on_image(img, lambda im: im.resize((nw, nh), resample))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation.value})"


def _crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    return _on_image(img, lambda im: im.crop((left, top, left + width, top + height)))


class CenterCrop:
    """Crop the centre (padding with 0 when the image is smaller).

    Args:
        size: (h, w) or an int for a square.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, img: Any) -> Any:
        """The centre crop."""
        h, w = _size_of(img)
        th, tw = self.size
        top = int(round((h - th) / 2.0))
        left = int(round((w - tw) / 2.0))
        return _crop(img, top, left, th, tw)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def _pad(img: Any, padding: Any, fill: Any, padding_mode: str) -> Any:
    if isinstance(padding, numbers.Number):
        left = top = right = bottom = int(padding)
    elif len(padding) == 2:
        left, top = right, bottom = int(padding[0]), int(padding[1])
    else:
        left, top, right, bottom = (int(p) for p in padding)
    mode = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}
    if padding_mode not in mode:
        raise ValueError(
            f"padding_mode must be constant, edge, reflect or symmetric, got {padding_mode!r}"
        )

    def pad(im: Any) -> Any:
        Image = _pil()
        a = np.asarray(im)
        widths = [(top, bottom), (left, right)] + [(0, 0)] * (a.ndim - 2)
        if padding_mode == "constant":
            out = np.pad(
                a, widths, mode="constant", constant_values=fill if np.isscalar(fill) else 0
            )
        else:
            out = np.pad(a, widths, mode=padding_mode)
        return Image.fromarray(out, mode=im.mode)

    return _on_image(img, pad)


class RandomCrop:
    """Crop at a random place, after optional padding.

    Args:
        size: (h, w) or an int.
        padding: pixels added on each border first (int, (lr, tb) or (l, t, r, b)).
        pad_if_needed: pad an image smaller than ``size``.
        fill: the constant fill.
        padding_mode: constant, edge, reflect or symmetric.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: float = 0,
        padding_mode: str = "constant",
    ) -> None:
        self.size = _pair(size, "RandomCrop")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    def __call__(self, img: Any) -> Any:
        """A random crop."""
        if self.padding is not None:
            img = _pad(img, self.padding, self.fill, self.padding_mode)
        h, w = _size_of(img)
        th, tw = self.size
        if self.pad_if_needed and (h < th or w < tw):
            img = _pad(img, (max(0, tw - w), max(0, th - h)), self.fill, self.padding_mode)
            h, w = _size_of(img)
        if h < th or w < tw:
            raise ValueError(
                f"RandomCrop: required crop size {(th, tw)} is larger than the image {(h, w)}"
            )
        if h == th and w == tw:  # (torchvision draws nothing then)
            return _crop(img, 0, 0, th, tw)
        top = _randint(h - th + 1)
        left = _randint(w - tw + 1)
        return _crop(img, top, left, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomResizedCrop:
    """A random part of the image (``scale`` of its area, aspect ``ratio``), resized to ``size``.

    Args:
        size: the output (h, w) or an int.
        scale: the range of the crop's area relative to the image's.
        ratio: the range of the crop's aspect ratio (width / height).
        interpolation: an ``InterpolationMode``.
        antialias: accepted for torchvision's signature.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        antialias: bool | None = True,
    ) -> None:
        self.size = _pair(size, "RandomResizedCrop")
        self.scale, self.ratio = scale, ratio
        self.interpolation, self.antialias = interpolation, antialias

    def get_params(self, img: Any) -> tuple[int, int, int, int]:
        """(top, left, height, width) of a random crop, torchvision's ten tries then centre."""
        h, w = _size_of(img)
        area = h * w
        log_ratio = np.log(np.asarray(self.ratio, np.float32))  # (float32, as torchvision's)
        for _ in range(10):
            target = area * _uniform(*self.scale)
            aspect = float(np.exp(np.float32(_uniform(float(log_ratio[0]), float(log_ratio[1])))))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = _randint(h - ch + 1)
                left = _randint(w - cw + 1)
                return top, left, ch, cw
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img: Any) -> Any:
        """A random resized crop."""
        top, left, ch, cw = self.get_params(img)
        resample = _resample(self.interpolation)
        th, tw = self.size
        return _on_image(
            img,
            lambda im: im.crop((left, top, left + cw, top + ch)).resize((tw, th), resample),
        )


class RandomHorizontalFlip:
    """Flip left-right with probability ``p``.

    Args:
        p: the probability.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        """The image, flipped or not."""
        if _rand() < self.p:
            Image = _pil()
            return _on_image(img, lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip:
    """Flip upside down with probability ``p``.

    Args:
        p: the probability.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Any) -> Any:
        """The image, flipped or not."""
        if _rand() < self.p:
            Image = _pil()
            return _on_image(img, lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
        return img


class RandomRotation:
    """Rotate by a random angle in ``degrees`` (counter-clockwise, as torchvision).

    Args:
        degrees: (min, max), or a number d for (-d, d).
        interpolation: an ``InterpolationMode``.
        expand: grow the output to hold the whole rotated image.
        center: the centre of rotation (x, y), default the image's centre.
        fill: the value of pixels outside the image.
    """

    def __init__(
        self,
        degrees: float | Sequence[float],
        interpolation: InterpolationMode = InterpolationMode.NEAREST,
        expand: bool = False,
        center: Sequence[float] | None = None,
        fill: float | Sequence[float] = 0,
    ) -> None:
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(
                    "RandomRotation: if degrees is a single number, it must be positive"
                )
            self.degrees = (-float(degrees), float(degrees))
        else:
            self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation, self.expand, self.center, self.fill = (
            interpolation,
            expand,
            center,
            fill,
        )

    def __call__(self, img: Any) -> Any:
        """The rotated image."""
        angle = _uniform(*self.degrees)
        resample = _resample(self.interpolation)
        fill = self.fill

        def rotate(im: Any) -> Any:
            f = fill
            if isinstance(f, numbers.Number) and len(im.getbands()) > 1:
                f = tuple([int(f)] * len(im.getbands()))
            return im.rotate(
                angle, resample=resample, expand=self.expand, center=self.center, fillcolor=f
            )

        return _on_image(img, rotate)


class ColorJitter:
    """Random brightness, contrast, saturation and hue changes (in a random order).

    Args:
        brightness: a factor drawn from [max(0, 1 - b), 1 + b] (or a (min, max) pair).
        contrast: likewise.
        saturation: likewise.
        hue: a shift drawn from [-h, h] (h <= 0.5), or a pair.
    """

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0,
        contrast: float | tuple[float, float] = 0,
        saturation: float | tuple[float, float] = 0,
        hue: float | tuple[float, float] = 0,
    ) -> None:
        self.brightness = self._range(brightness, "brightness", 1.0)
        self.contrast = self._range(contrast, "contrast", 1.0)
        self.saturation = self._range(saturation, "saturation", 1.0)
        self.hue = self._range(hue, "hue", 0.0, bound=0.5)

    @staticmethod
    def _range(
        value: Any, name: str, center: float, bound: float | None = None
    ) -> tuple[float, float] | None:
        if isinstance(value, numbers.Number):
            if value < 0:
                raise ValueError(f"ColorJitter: {name} must be non-negative, got {value}")
            low, high = center - value, center + value
            if center == 1.0:
                low = max(low, 0.0)
        else:
            low, high = float(value[0]), float(value[1])
        if bound is not None and not -bound <= low <= high <= bound:
            raise ValueError(f"ColorJitter: {name} values should be between {(-bound, bound)}")
        return None if low == high == center else (low, high)

    def __call__(self, img: Any) -> Any:
        """The jittered image (a PIL image)."""
        from PIL import ImageEnhance

        array_in = not _is_pil(img)
        if array_in:
            img = ToPILImage()(img)
        # torchvision's get_params: the order, then every factor in use, in this order
        order = torch_generator.stream().permutation(4).tolist()
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        factors = [None if r is None else _uniform(*r) for r in ranges]
        for k in order:
            f = factors[k]
            if f is None:
                continue
            if k == 0:
                img = ImageEnhance.Brightness(img).enhance(f)
            elif k == 1:
                img = ImageEnhance.Contrast(img).enhance(f)
            elif k == 2:
                img = ImageEnhance.Color(img).enhance(f)
            else:
                img = _shift_hue(img, f)
        return ToTensor()(img) if array_in else img


def _shift_hue(img: Any, shift: float) -> Any:
    Image = _pil()
    if img.mode in ("L", "1", "I", "F"):
        return img
    mode = img.mode
    h, s, v = img.convert("HSV").split()
    h = h.point(lambda x: (x + int(round(shift * 255))) % 256)
    return Image.merge("HSV", (h, s, v)).convert(mode)


class Grayscale:
    """To grey (ITU-R 601-2 luma, Pillow's "L"), with 1 or 3 output channels.

    Args:
        num_output_channels: 1 or 3.
    """

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3):
            raise ValueError("Grayscale: num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def __call__(self, img: Any) -> Any:
        """The grey image."""
        array_in = not _is_pil(img)
        if array_in:
            img = ToPILImage()(img)
        grey = img.convert("L")
        out = grey.convert("RGB") if self.num_output_channels == 3 else grey
        return ToTensor()(out) if array_in else out
