"""``torch.backends``: the flags and queries PyTorch code reads or sets. Only the CPU computes
here: MPS, CUDA and cuDNN are neither built nor available; their flags are settable and have no
effect; ``cpu.get_cpu_capability()`` names the instruction set NumPy dispatches to."""

from __future__ import annotations

import types

from . import cuda as _cuda


def _false() -> bool:
    return False


def _cpu_capability() -> str:
    """The widest SIMD extension NumPy uses on this CPU (PyTorch's names: AVX512, AVX2...)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # pragma: no cover - older NumPy
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return "DEFAULT"
    if feats.get("AVX512F") and feats.get("AVX512BW"):
        return "AVX512"
    if feats.get("AVX2"):
        return "AVX2"
    if feats.get("ASIMD") or feats.get("SVE"):
        return "SVE256" if feats.get("SVE") else "DEFAULT"
    return "DEFAULT"


mps = types.SimpleNamespace(is_available=_false, is_built=_false, is_macos13_or_newer=_false)
"""Apple's Metal backend for PyTorch: neither built nor available (chainrule runs on NumPy)."""

cudnn = types.SimpleNamespace(
    deterministic=False,
    benchmark=False,
    enabled=True,
    allow_tf32=True,
    is_available=_false,
    version=lambda: None,
)
"""cuDNN flags: settable, without effect (there is no cuDNN); ``is_available()`` is False."""

cuda = types.SimpleNamespace(
    is_built=_false,
    matmul=types.SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True),
    is_available=_cuda.is_available,
)
"""CUDA flags: settable, without effect."""

cpu = types.SimpleNamespace(get_cpu_capability=_cpu_capability)
"""The CPU backend (the one that computes)."""

mkldnn = types.SimpleNamespace(is_available=_false, enabled=False)
"""oneDNN: not used (NumPy computes)."""

openmp = types.SimpleNamespace(is_available=_false)
"""OpenMP: not used by chainrule itself."""
