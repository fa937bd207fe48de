"""Fixtures shared across the test folders (the folders are not packages: see
tests/test_package_rules.py for the unique-basename rule)."""

from __future__ import annotations

import os
import sys

import pytest

GPU_DEFAULT = os.environ.get("CHAINRULE_DEVICE", "").strip().lower() in ("gpu", "cuda")
"""``CHAINRULE_DEVICE=gpu`` (``make gpu-check``): every array is made on the GPU by default."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``host_only`` marker."""
    config.addinivalue_line(
        "markers",
        "host_only: tests of host machinery (the vmap and compile tracers, NumPy buffer "
        "accounting, the CPU as the default device); skipped when CHAINRULE_DEVICE=gpu makes "
        "the GPU the default (make gpu-check), run on the CPU by make test",
    )
    config.addinivalue_line(
        "markers",
        "refuses_host_reads: the test's own .numpy()/np.asarray of a CUDA tensor raise, as in "
        "PyTorch (see _tests_read_gpu_values)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Skip ``host_only`` tests when the GPU is the default device."""
    if not GPU_DEFAULT:
        return
    skip = pytest.mark.skip(reason="host machinery, tested on the CPU by make test")
    for item in items:
        if item.get_closest_marker("host_only"):
            item.add_marker(skip)


@pytest.fixture
def cpu_default_device():
    """The CPU as the default device (MLX's and PyTorch's) while a test runs, also under
    ``CHAINRULE_DEVICE=gpu`` (make gpu-check), for tests that choose devices themselves."""
    import chainrule.core as mx
    from chainrule.core import devices

    saved = (mx.default_device(), devices.TORCH_DEFAULT[0])
    devices._set_default(mx.cpu)
    devices.TORCH_DEFAULT[0] = None
    yield
    devices._set_default(saved[0])
    devices.TORCH_DEFAULT[0] = saved[1]


_CPU_ONLY_TYPES = ("bfloat16", "mxfp4", "mxfp8", "nvfp4")
"""Test ids naming a type CuPy has none of (``ml_dtypes``' bfloat16 and the float8/float4
formats whose results are bfloat16): such arrays live on the CPU, so under the GPU default
those cases run with the CPU as the default device (the GPU's refusal is tested on its own)."""


@pytest.fixture(autouse=True)
def _cpu_for_types_cupy_lacks(request):
    if GPU_DEFAULT and any(t in request.node.nodeid for t in _CPU_ONLY_TYPES):
        request.getfixturevalue("cpu_default_device")
    yield


# -- the tests' own reads of CUDA tensors --------------------------------------------------------
# Under CHAINRULE_DEVICE=gpu every chainrule.torch tensor is made on CUDA, as after PyTorch's
# ``torch.set_default_device("cuda")``, and ``t.numpy()`` / ``np.asarray(t)`` of a CUDA tensor
# raise (PyTorch's rule). The tests compare values through those calls, so a read whose caller is
# test code (numpy.testing frames skipped) copies to the host instead; the same call made by
# chainrule code still raises, so a library path that reaches NumPy behind the backend's back
# fails the run. Tests of the refusal itself carry ``refuses_host_reads``.

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_HOST_READS = [False]


def _called_from_a_test() -> bool:
    import numpy

    numpy_dir = os.path.dirname(numpy.__file__) + os.sep
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(numpy_dir):
        f = f.f_back
    return f is not None and f.f_code.co_filename.startswith(_TESTS_DIR)


def _let_tests_read(cls) -> None:
    numpy_of, array_of = cls.numpy, cls.__array__

    def numpy(self, *, force: bool = False):
        return numpy_of(self, force=force or (_HOST_READS[0] and _called_from_a_test()))

    def __array__(self, dtype=None, copy=None):
        if _HOST_READS[0] and _called_from_a_test():
            a = numpy_of(self, force=True)
            return a if dtype is None else a.astype(dtype, copy=False)
        return array_of(self, dtype, copy)

    cls.numpy, cls.__array__ = numpy, __array__
    cls._tests_read = True


@pytest.fixture(autouse=True)
def _tests_read_gpu_values(request):
    """Under ``CHAINRULE_DEVICE=gpu``: the test's own reads of CUDA tensors copy to the host."""
    if not GPU_DEFAULT or request.node.get_closest_marker("refuses_host_reads"):
        yield
        return
    tc = sys.modules.get("chainrule.torch._tensor_class")
    if tc is not None and not getattr(tc.Tensor, "_tests_read", False):
        _let_tests_read(tc.Tensor)
    _HOST_READS[0] = True
    yield
    _HOST_READS[0] = False
