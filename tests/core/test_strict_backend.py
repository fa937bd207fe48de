"""The GPU code paths run on the CPU against the strict CuPy stand-in (core/strict_backend.py).

Every case of the op table's gradient sweep (tests/core/test_primitive_grads.py's ``TABLE``) runs
forward and backward with the GPU as the default device, where arrays are ``StrictArray``s that
refuse implicit conversion to NumPy and host arrays mixed into their operations, as CuPy's do;
the values and gradients must match the CPU's. A kernel that reaches NumPy behind the backend's
back fails here on any machine.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import backend, devices
from chainrule.core.strict_backend import IMPLICIT, MixedDeviceError, StrictArray, namespace

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")


_spec = importlib.util.spec_from_file_location(
    "_primitive_grads_table", pathlib.Path(__file__).with_name("test_primitive_grads.py")
)
_grads = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(_grads)  # type: ignore[union-attr]
TABLE = _grads.TABLE

# Cases whose kernels still reach NumPy behind the backend's back, in files this change does not
# own (each names the leak; strict xfail, so fixing one makes its test fail until it is removed).
# keyed by primitive (every case of it) or by case id (none left now)
LEAKS: dict[str, str] = {}


def _scalar(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    total = None
    for o in outs:
        if not isinstance(o, mx.array) or o.dtype.kind not in "fc":  # type: ignore[attr-defined]
            continue
        v = mx.sum(mx.real(o)) + mx.sum(mx.imag(o)) if o.dtype.kind == "c" else mx.sum(o)  # type: ignore[attr-defined]
        total = v if total is None else total + v
    return total


def _run(fn, args, moved: bool = False):
    xs = [mx.array(a, dtype=mx.float64) for a in args]
    if moved:  # the CPU stays the default device; the inputs are moved to the GPU
        xs = [devices.move(x, "gpu") for x in xs]
    out = fn(*xs)
    loss_fn = lambda *ys: _scalar(fn(*ys))  # noqa: E731
    grads = mx.grad(loss_fn, argnums=list(range(len(xs))))(*xs) if _scalar(out) is not None else []
    return out, grads


def _host(v):
    if isinstance(v, (tuple, list)):
        return [_host(x) for x in v]
    if isinstance(v, mx.array):
        return np.asarray(v)
    return v


def _device_of(v):
    if isinstance(v, (tuple, list)):
        return {d for x in v for d in _device_of(x)}
    if isinstance(v, mx.array):
        return {"gpu" if type(v._data) is StrictArray else "cpu"}
    return set()


CASES = []
for _name, _cases in TABLE.items():
    for _label, _fn, _args in _cases:
        _id = f"{_name}-{_label}"
        _leak = LEAKS.get(_id) or LEAKS.get(_name)
        marks = [pytest.mark.xfail(strict=True, reason=_leak)] if _leak else []
        CASES.append(pytest.param(_fn, _args, id=_id, marks=marks))


@pytest.fixture
def strict_gpu():
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        yield


# cases whose own code makes CPU arrays (mx.arange, mx.eye, mx.ones in the lambda): with inputs
# moved to the GPU and the CPU default they mix devices, which is the user's error to see
_MAKES_CPU_ARRAYS = (
    "broadcast_to",
    "reshape-flat",
    "linalg_cholesky-of x x^T",
    "conv_weight-stride-groups",
    "conv_weight-transpose1d",
)


@pytest.mark.skipif(
    os.environ.get("CHAINRULE_DEVICE", "").lower() in ("gpu", "cuda"),
    reason="the sweep compares the strict GPU with the CPU: under CHAINRULE_DEVICE=gpu the "
    "TABLE's constant arrays are made on the GPU when it is imported",
)
@pytest.mark.parametrize("moved", [False, True], ids=["gpu-default", "moved-to-gpu"])
@pytest.mark.parametrize("fn,args", CASES)
def test_op_table_on_strict_gpu(fn, args, moved, request):
    if moved and request.node.callspec.id.split("-moved")[0].startswith(_MAKES_CPU_ARRAYS):
        pytest.skip("the case makes CPU arrays itself")
    want_out, want_grads = _run(fn, args)
    with backend.use_strict_gpu():
        if not moved:
            mx.set_default_device(mx.gpu)
        out, grads = _run(fn, args, moved)
        devices = _device_of(out) | _device_of(grads)
        got_out, got_grads = _host(out), _host(grads)
    assert devices <= {"gpu"}, f"results left the GPU: {devices}"
    for w, g in zip(
        _flat(_host(want_out)) + _flat(_host(want_grads)), _flat(got_out) + _flat(got_grads)
    ):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def _flat(v):
    if isinstance(v, list):
        return [y for x in v for y in _flat(x)]
    return [v]


# -- the stand-in itself --------------------------------------------------------------------------


def test_strict_array_refuses_the_host():
    a = namespace.asarray(np.arange(6.0).reshape(2, 3))
    assert type(a) is StrictArray and a.shape == (2, 3)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    assert IMPLICIT.startswith("Implicit conversion to a NumPy array is not allowed")
    with pytest.raises(MixedDeviceError):
        np.add(a, np.ones((2, 3)))
    with pytest.raises(MixedDeviceError):  # a NumPy subclass (a tracer's view) is host data too
        np.add(a, np.ones((2, 3)).view(type("View", (np.ndarray,), {})))
    with pytest.raises(TypeError, match="add.at"):
        np.add.at(a, [0], 1.0)
    with pytest.raises(TypeError, match="maximum.reduce"):
        np.maximum.reduce(a)
    assert type(np.add(a, np.float64(2.0))) is StrictArray  # NumPy scalars are fine, as in CuPy
    with pytest.raises(MixedDeviceError):  # a 0-d NumPy array is not (CuPy's kernels refuse it)
        np.add(a, np.array(2.0))
    with pytest.raises(MixedDeviceError):
        np.where(a > 1.0, a, np.array(0.0))
    assert np.greater(a, np.array(2.0)).get().sum() == 3  # comparisons take it, as CuPy's do
    # NumPy functions and ufuncs CuPy does not implement are refused, as CuPy's dispatch does
    with pytest.raises(TypeError, match="CuPy has no ufunc"):
        np.spacing(a)
    with pytest.raises(TypeError, match="no GPU counterpart"):
        np.nanquantile(a, 0.5)
    assert type(np.concatenate([a, a])) is StrictArray
    assert type(np.linalg.norm(a)) is StrictArray
    assert type(np.lib.stride_tricks.sliding_window_view(a, 2, axis=1)) is StrictArray
    # keywords CuPy's ufuncs and functions do not take are refused
    with pytest.raises(TypeError, match="Wrong arguments"):
        np.add(a, 1.0, where=a > 1.0)
    with pytest.raises(TypeError, match=r"cupy.sum\(\) got an unexpected keyword"):
        np.sum(a, where=a > 1.0)
    assert float(np.sum(a, axis=None, keepdims=False)) == 15.0
    # the namespace standing for ``cupy`` has only CuPy's names
    with pytest.raises(AttributeError, match="module 'cupy' has no attribute 'nanquantile'"):
        namespace.nanquantile  # noqa: B018
    with pytest.raises(AttributeError, match="'cupy.linalg' has no attribute 'matrix_norm'"):
        namespace.linalg.matrix_norm  # noqa: B018
    assert namespace.float32 is np.float32 and callable(namespace.linalg.solve)
    # only cupy.ndarray's methods and attributes, and CuPy's flags (no ``writeable``)
    with pytest.raises(AttributeError, match="cupy.ndarray"):
        a.resize((3, 2))
    assert a.flags.c_contiguous and a.flags["C_CONTIGUOUS"] and not hasattr(a.flags, "writeable")
    s = np.sum(a)
    assert type(s) is StrictArray and s.ndim == 0 and float(s) == 15.0  # 0-d, as CuPy's
    np.testing.assert_array_equal(a.get(), np.arange(6.0).reshape(2, 3))
    b = a.copy()
    b[0, 0] = 7.0
    assert a[0, 0].item() == 0.0 and b.T.shape == (3, 2)
    backend_sa = backend._strict()
    backend_sa.scatter_add(b, (np.array([1, 1]), np.array([0, 0])), 1.0)
    assert b.get()[1, 0] == 5.0


def test_no_gpu_means_a_clear_error():
    if backend.gpu() is not None:
        pytest.skip("a GPU backend is present")
    assert not mx.is_available(mx.gpu)
    with pytest.raises(ValueError, match="CuPy is not installed"):
        mx.set_default_device(mx.gpu)
    assert mx.default_device() == mx.cpu


def test_default_device_makes_arrays_there(strict_gpu):
    assert mx.is_available(mx.gpu) and mx.default_device() == mx.gpu
    for a in (
        mx.array([1.0, 2.0]),
        mx.zeros((2,)),
        mx.ones((2, 2)),
        mx.arange(3),
        mx.linspace(0, 1, 4),
        mx.eye(2),
        mx.full((2,), 3.0),
    ):
        assert type(a._data) is StrictArray, a
    assert type(mx.zeros((2,), stream=mx.cpu)._data) is np.ndarray
    c = mx.array([1.0, 2.0]) * 2 + 1
    assert c.tolist() == [3.0, 5.0] and np.asarray(c).tolist() == [3.0, 5.0]
    assert isinstance(c.numpy(), np.ndarray) and mx.sum(c).item() == 8.0
    assert "3" in repr(c)


def test_mixing_devices_is_refused(strict_gpu):
    g = mx.array([1.0, 2.0])
    c = mx.array([1.0, 2.0], dtype=mx.float32)
    c_cpu = mx.zeros((2,), stream=mx.cpu)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        g + c_cpu
    with pytest.raises(RuntimeError, match="same device"):
        mx.where(g > 0, c_cpu, g)
    with pytest.raises(RuntimeError, match="same device"):
        mx.matmul(g.reshape(1, 2), c_cpu.reshape(2, 1))
    assert (g + c).tolist() == [2.0, 4.0]


def test_zero_d_host_arrays_meet_gpu_arrays(strict_gpu):
    """A 0-d CPU array (``mx.array(2.0)`` made on the CPU) meets GPU arrays as a scalar would,
    as PyTorch lets a 0-d CPU tensor meet a CUDA tensor: the kernels CuPy refuses for a host
    array are run again with it as a NumPy scalar. The results stay on the GPU."""
    g = mx.array([1.0, -2.0, 3.0])
    with mx.stream(mx.cpu):
        two = mx.array(2.0, dtype=mx.float32)
    assert type(two._data) is np.ndarray and two.ndim == 0
    for got, want in (
        (g * two, [2.0, -4.0, 6.0]),
        (two - g, [1.0, 4.0, -1.0]),
        (mx.maximum(g, two), [2.0, 2.0, 3.0]),
        (mx.where(g > 0, g, two), [1.0, 2.0, 3.0]),
        (g.at[mx.array([0, 0])].add(two), [5.0, -2.0, 3.0]),
        (mx.array([2, 3, 4]) ** -1, [0, 0, 0]),  # MLX: integers to negative powers give 0
    ):
        assert type(got._data) is StrictArray and got.tolist() == want
    h = mx.array([1.0, 5.0, 3.0])
    h[1] = two
    assert type(h._data) is StrictArray and h.tolist() == [1.0, 2.0, 3.0]
    # bfloat16 has no CuPy type: a clear error naming the way out, not CuPy's own
    with pytest.raises(TypeError, match="CuPy has no bfloat16 type.*float16 or float32"):
        g.astype(mx.bfloat16)
    with pytest.raises(TypeError, match="CuPy has no bfloat16 type"):
        mx.array([1.0, 2.0], dtype=mx.bfloat16).to(mx.gpu)
    # draws whose bounds are scalars (every layer's initialisation) on the GPU default device
    for draw in (
        mx.random.uniform(-1.0, 1.0, (4,)),
        mx.random.normal((4,), scale=2.0, loc=1.0),
        mx.random.normal((4,), dtype=mx.complex64, scale=2.0),
        mx.random.truncated_normal(-1.0, 1.0, (4,)),
        mx.random.randint(3, 3, (4,)),
    ):
        assert type(draw._data) is StrictArray, draw


def test_stream_context_chooses_the_device(strict_gpu):
    mx.set_default_device(mx.cpu)
    with mx.stream(mx.gpu):
        assert type(mx.ones((2,))._data) is StrictArray
    assert type(mx.ones((2,))._data) is np.ndarray
    assert mx.device_count(mx.gpu) == 1 and "device_name" in mx.device_info(mx.gpu)


def test_linalg_factorizations_on_the_gpu():
    a = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)

    def run():
        x = mx.array(a)
        outs = [*mx.linalg.lu(x), *mx.linalg.qr(x), mx.linalg.pinv(x), *mx.linalg.lu_factor(x)]
        outs += [mx.linalg.pinv(mx.zeros((0, 3))), *mx.linalg.qr(mx.zeros((0, 3)))]
        return [np.asarray(o) for o in outs], {type(o._data) for o in outs}

    want, cpu_types = run()
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        got, gpu_types = run()
    assert cpu_types == {np.ndarray} and gpu_types == {StrictArray}
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_random_draws_honour_stream():
    # MLX's stream= puts the draws on that device; a key gives the same numbers on both
    with backend.use_strict_gpu():
        k = mx.random.key(3)
        on_gpu = mx.random.normal((4,), key=k, stream=mx.gpu)
        here = mx.random.normal((4,), key=k)
        assert type(on_gpu._data) is StrictArray and type(here._data) is np.ndarray
        np.testing.assert_array_equal(_host(on_gpu), _host(here))
        keys = mx.random.split(k, stream=mx.gpu)
        assert type(keys._data) is StrictArray
        assert type(mx.random.permutation(5, stream=mx.gpu)._data) is StrictArray
        assert type(mx.random.uniform(shape=(2,), stream=mx.cpu)._data) is np.ndarray
