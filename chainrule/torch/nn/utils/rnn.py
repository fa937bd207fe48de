"""``torch.nn.utils.rnn``: variable-length batches for the recurrent layers (PyTorch's).

A ``PackedSequence`` holds the time steps of several sequences, sorted by decreasing length,
one after the other: ``data`` is ``(sum of lengths, *)``, step ``t`` takes the rows
``batch_sizes[0] + ... + batch_sizes[t - 1]`` onwards, ``batch_sizes[t]`` of them (the
sequences still running at ``t``). ``sorted_indices`` maps the sorted order back to the
caller's batch (``None`` when the caller's batch was already sorted).

Packing and padding are each one differentiable gather (an index array built from the
lengths), so gradients flow from a padded or packed result to its input.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..._tensor_class import install_doors as _install_doors

__all__ = [
    "PackedSequence",
    "invert_permutation",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpack_sequence",
    "unpad_sequence",
]

_Fields = namedtuple(
    "PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"]
)


def _int64(values: Any, like: Any = None) -> array:
    """Host integers as an int64 array on ``like``'s device (on the CPU without ``like``, as
    PyTorch keeps ``batch_sizes`` and returned lengths)."""
    values = np.asarray(values, dtype=np.int64)
    return from_value(values if like is None else backend.same_device(values, like._data))


def _ints(x: Any) -> np.ndarray:
    """A Python list, NumPy array or array of integers as a NumPy int64 array (an explicit
    host copy of a CUDA tensor, as PyTorch reads ``lengths`` on the CPU)."""
    if isinstance(x, array):
        return backend.to_host(x._data).astype(np.int64)
    return np.asarray(x).astype(np.int64)


def _stream(like: array) -> Any:
    """The device of ``like`` (for factories' ``stream=``)."""
    return mx.gpu if backend.is_gpu(like._data) else mx.cpu


class PackedSequence(_Fields):
    """Sequences of different lengths packed time step by time step (PyTorch's class).

    Build it with :func:`pack_padded_sequence` or :func:`pack_sequence`; the recurrent layers
    take it and return one.

    Args:
        data: ``(sum of lengths, *)``, the steps one after the other.
        batch_sizes: how many sequences run at each step (int64, decreasing).
        sorted_indices: the caller's batch position of each sorted sequence, or ``None``.
        unsorted_indices: its inverse (computed when omitted).
    """

    __slots__ = ()

    def __new__(
        cls,
        data: Any,
        batch_sizes: Any = None,
        sorted_indices: Any = None,
        unsorted_indices: Any = None,
    ) -> PackedSequence:
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes), ...)
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def _map_data(self, fn: Any) -> PackedSequence:
        return type(self)(
            fn(self.data), self.batch_sizes, self.sorted_indices, self.unsorted_indices
        )

    def to(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """The sequence with ``data.to(...)`` (a device or a dtype); the sorting indices follow
        ``data`` to its device, ``batch_sizes`` stays on the CPU (PyTorch's rule)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        kwargs = {k: v for k, v in kwargs.items() if k not in ("device", "dtype")}

        def move(t: Any) -> Any:
            return None if t is None else t.to(data.device, **kwargs)

        return type(self)(
            data, self.batch_sizes, move(self.sorted_indices), move(self.unsorted_indices)
        )

    def cpu(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """The sequence on the CPU (``to("cpu")``)."""
        return self.to("cpu", *args, **kwargs)

    def cuda(self, *args: Any, **kwargs: Any) -> PackedSequence:
        """The sequence on the GPU (``to("cuda")``)."""
        return self.to("cuda", *args, **kwargs)

    def double(self) -> PackedSequence:
        """``data`` as float64."""
        return self._map_data(lambda d: d.double())

    def float(self) -> PackedSequence:
        """``data`` as float32."""
        return self._map_data(lambda d: d.float())

    def half(self) -> PackedSequence:
        """``data`` as float16."""
        return self._map_data(lambda d: d.half())

    def long(self) -> PackedSequence:
        """``data`` as int64."""
        return self._map_data(lambda d: d.long())

    def int(self) -> PackedSequence:
        """``data`` as int32."""
        return self._map_data(lambda d: d.int())

    @property
    def is_cuda(self) -> bool:
        """Whether ``data`` lives on the GPU."""
        return backend.is_gpu(self.data._data)

    def is_pinned(self) -> bool:
        """False: there is no pinned memory on the CPU-only backend."""
        return False


def invert_permutation(permutation: Any) -> Any:
    """The inverse of a permutation (``None`` for ``None``): ``out[permutation[i]] = i``.

    Args:
        permutation: a 1-d integer tensor, or ``None``.
    """
    if permutation is None:
        return None
    perm = _ints(permutation)
    out = np.empty_like(perm)
    out[perm] = np.arange(perm.size, dtype=np.int64)
    return _int64(out, permutation if isinstance(permutation, array) else None)


def _lengths(lengths: Any) -> np.ndarray:
    lens = _ints(lengths)
    if lens.ndim != 1:
        raise RuntimeError(
            f"pack_padded_sequence: 'lengths' argument should be a 1D CPU int64 tensor, but got "
            f"{lens.ndim}D (shape {lens.shape})"
        )
    return lens


def _sorted_check(lens: np.ndarray) -> None:
    if np.any(lens[1:] > lens[:-1]):
        raise RuntimeError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
            "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
            "sidestep this requirement if you do not need ONNX exportability. Got lengths "
            f"{lens.tolist()}"
        )


def pack_padded_sequence(
    input: array, lengths: Any, batch_first: bool = False, enforce_sorted: bool = True
) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) of sequences of
    the given lengths (differentiable with respect to ``input``).

    Args:
        input: the padded batch.
        lengths: each sequence's length (a list or a 1-d integer tensor).
        batch_first: the batch is dimension 0.
        enforce_sorted: require decreasing lengths; otherwise they are sorted (stably) and
            ``sorted_indices`` records the order.

    Returns:
        A :class:`PackedSequence`.

    Raises:
        RuntimeError: lengths not 1-d, not one per sequence, not positive, longer than the
            batch's time dimension, or not decreasing with ``enforce_sorted``.
    """
    lens = _lengths(lengths)
    if input.ndim < 2:
        raise RuntimeError(
            f"pack_padded_sequence: expected an input of at least 2 dimensions (T, B, *), got "
            f"shape {tuple(input.shape)}"
        )
    t_dim, b_dim = (1, 0) if batch_first else (0, 1)
    batch, steps = input.shape[b_dim], input.shape[t_dim]
    if lens.size != batch:
        raise RuntimeError(
            f"pack_padded_sequence: Expected `len(lengths)` to be equal to batch_size, but got "
            f"{lens.size} (batch_size={batch})"
        )
    if np.any(lens <= 0):
        raise RuntimeError(
            "pack_padded_sequence: Length of all samples has to be greater than 0, but found an "
            f"element in 'lengths' that is <= 0 (lengths {lens.tolist()})"
        )
    if lens.max() > steps:
        raise RuntimeError(
            f"pack_padded_sequence: a length ({int(lens.max())}) exceeds the input's time "
            f"dimension {t_dim} of size {steps} (input shape {tuple(input.shape)})"
        )
    if enforce_sorted:
        _sorted_check(lens)
        order = None
    else:
        order = np.argsort(-lens, kind="stable")
        lens = lens[order]
    batch_sizes = (lens[None, :] > np.arange(int(lens[0]))[:, None]).sum(1)
    t_idx = np.concatenate([np.full(bs, t, np.int64) for t, bs in enumerate(batch_sizes)])
    b_idx = np.concatenate([np.arange(bs, dtype=np.int64) for bs in batch_sizes])
    if order is not None:
        b_idx = order[b_idx]
    idx = (b_idx, t_idx) if batch_first else (t_idx, b_idx)
    data = input[_int64(idx[0], input), _int64(idx[1], input)]
    sorted_indices = None if order is None else _int64(order, input)
    return PackedSequence(data, _int64(batch_sizes), sorted_indices, None)


def _check_packed(sequence: Any, who: str) -> tuple[array, np.ndarray]:
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{who}: expected a PackedSequence, got {type(sequence).__name__}")
    return sequence.data, _ints(sequence.batch_sizes)


def _plain(x: Any) -> Any:
    return from_value(x._data, x._node) if isinstance(x, array) and type(x) is not array else x


def pad_packed_sequence(
    sequence: PackedSequence,
    batch_first: bool = False,
    padding_value: float = 0.0,
    total_length: int | None = None,
) -> tuple[array, array]:
    """Unpack a :class:`PackedSequence` into a padded batch, in the caller's original order.

    Args:
        sequence: the packed batch.
        batch_first: return ``(B, T, *)`` instead of ``(T, B, *)``.
        padding_value: the value past each sequence's end.
        total_length: pad to this many steps (at least the longest sequence).

    Returns:
        ``(padded, lengths)``, ``lengths`` an int64 tensor.

    Raises:
        ValueError: ``total_length`` is shorter than the longest sequence.
    """
    data, sizes = _check_packed(sequence, "pad_packed_sequence")
    data = _plain(data)
    steps = int(sizes.size)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(
                "Expected total_length to be at least the length of the longest sequence in "
                f"input, but got total_length={total_length} and max sequence length being "
                f"{steps}"
            )
        steps = int(total_length)
    batch = int(sizes[0])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    idx = np.full((steps, batch), data.shape[0], dtype=np.int64)  # the padding row
    for t, (off, bs) in enumerate(zip(offsets, sizes)):
        idx[t, :bs] = off + np.arange(bs)
    lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(1)
    unsorted = sequence.unsorted_indices
    if unsorted is not None:
        order = _ints(unsorted)
        idx, lengths = idx[:, order], lengths[order]
    if batch_first:
        idx = idx.T
    pad = mx.full((1, *data.shape[1:]), padding_value, dtype=data.dtype, stream=_stream(data))
    padded = mx.concatenate([data, pad], axis=0)[_int64(idx, data)]
    return padded, _int64(lengths)


def pad_sequence(
    sequences: Any,
    batch_first: bool = False,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> array:
    """Stack sequences ``(L_i, *)`` of different lengths into ``(T, B, *)`` (or ``(B, T, *)``),
    filling the missing steps with ``padding_value``.

    Args:
        sequences: the tensors (an iterable; a tensor is split along dimension 0).
        batch_first: put the batch first.
        padding_value: the fill value.
        padding_side: ``"right"`` (pad after each sequence) or ``"left"``.

    Returns:
        The padded batch, of the first sequence's dtype.

    Raises:
        RuntimeError: no sequences, trailing shapes differ, or a bad ``padding_side``.
    """
    if not isinstance(sequences, Iterable):
        raise RuntimeError(
            "pad_sequence: Expected iterable for input sequences, but got arg of type: "
            f"{type(sequences)}"
        )
    seqs = [_plain(s) for s in sequences]
    if not seqs:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    if padding_side not in ("left", "right"):
        raise RuntimeError(
            f"Expected padding_side to be one of left or right, but got {padding_side}."
        )
    first = seqs[0]
    trailing = tuple(first.shape[1:])
    for i, s in enumerate(seqs):
        if tuple(s.shape[1:]) != trailing or s.ndim < 1:
            raise RuntimeError(
                f"pad_sequence: sequence {i} has shape {tuple(s.shape)}, but every sequence must "
                f"be (L, {', '.join(map(str, trailing))}) like sequence 0 {tuple(first.shape)}"
            )
    lens = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    steps, total = int(lens.max()), int(lens.sum())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = np.full((steps, len(seqs)), total, dtype=np.int64)
    for b, (start, n) in enumerate(zip(starts, lens)):
        rows = start + np.arange(n)
        if padding_side == "right":
            idx[:n, b] = rows
        else:
            idx[steps - n :, b] = rows
    pieces = [s if s.dtype == first.dtype else s.astype(first.dtype) for s in seqs]
    pad = mx.full((1, *trailing), padding_value, stream=_stream(first)).astype(first.dtype)
    data = mx.concatenate([*pieces, pad], axis=0)
    return data[_int64(idx.T if batch_first else idx, first)]


def unpad_sequence(padded_sequences: array, lengths: Any, batch_first: bool = False) -> list:
    """Split a padded batch back into its sequences (the inverse of :func:`pad_sequence`).

    Args:
        padded_sequences: ``(T, B, *)`` (or ``(B, T, *)`` with ``batch_first``).
        lengths: each sequence's length.
        batch_first: the batch is dimension 0.

    Returns:
        A list of ``(L_i, *)`` tensors.
    """
    lens = _ints(lengths).reshape(-1)
    x = _plain(padded_sequences)
    if not batch_first:
        x = mx.swapaxes(x, 0, 1)
    if lens.size != x.shape[0]:
        raise ValueError(
            f"unpad_sequence: {lens.size} lengths for a batch of {x.shape[0]} sequences "
            f"(padded shape {tuple(padded_sequences.shape)})"
        )
    return [x[b, : int(n)] for b, n in enumerate(lens)]


def pack_sequence(sequences: Sequence[array], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences ``(L_i, *)`` (``pad_sequence`` then ``pack_padded_sequence``).

    Args:
        sequences: the tensors, longest first unless ``enforce_sorted`` is false.
        enforce_sorted: require decreasing lengths.

    Returns:
        A :class:`PackedSequence`.
    """
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences a :class:`PackedSequence` holds, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


# tensors in, tensors out (PackedSequence fields too: the doors convert named tuples)
_DOORS = {_n: globals()[_n] for _n in __all__ if _n != "PackedSequence"}
_install_doors(_DOORS)
globals().update(_DOORS)
