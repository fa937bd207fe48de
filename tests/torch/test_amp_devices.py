"""Devices as PyTorch programs ask (torch.device, accelerator, cuda, backends, default dtype and
device) and torch.amp (autocast, GradScaler) on the CPU, against real PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule.torch as torch
from chainrule.core.devices import DeviceUnavailableError


@pytest.fixture
def torch_ref():
    return pytest.importorskip("torch")


# -- devices -----------------------------------------------------------------------------------


def test_device_objects_match_pytorch(torch_ref):
    for spec in (("cpu",), ("cuda",), ("cuda:1",), ("cuda", 2), ("mps",), ("meta",)):
        ours, ref = torch.device(*spec), torch_ref.device(*spec)
        assert (ours.type, ours.index) == (ref.type, ref.index)
        assert str(ours) == str(ref) and repr(ours) == repr(ref)


def test_bad_device_names_raise_like_pytorch(torch_ref):
    for spec in (("foo",), ("cuda:x",), ("cpu", -1)):
        with pytest.raises(RuntimeError) as ref:
            torch_ref.device(*spec)
        with pytest.raises(RuntimeError) as ours:
            torch.device(*spec)
        key = str(ref.value).split(":")[0][:30]
        assert key in str(ours.value)


@pytest.mark.host_only  # no GPU present: on the CPU only (conftest.py)
def test_moving_to_a_missing_device_is_a_clear_error(torch_ref):
    x, rx = torch.ones(2), torch_ref.ones(2)
    for move, ref_move in (
        (lambda: x.to("cuda"), lambda: rx.to("cuda")),
        (lambda: x.cuda(), lambda: rx.cuda()),
        (lambda: torch.zeros(1, device="cuda"), lambda: torch_ref.zeros(1, device="cuda")),
        (lambda: x.to("mps"), lambda: rx.to("mps")),
    ):
        with pytest.raises((AssertionError, RuntimeError)) as ref:
            ref_move()
        with pytest.raises(type(ref.value)) as ours:
            move()
        assert isinstance(ours.value, DeviceUnavailableError)
        assert "not available" in str(ours.value)
    with pytest.raises(ValueError):  # and a ValueError, as before (MLX's kind)
        x.to(torch.device("cuda"))
    assert x.to("cpu") is x and x.cpu() is x and x.to(torch.device("cpu")) is x
    assert x.device == torch.device("cpu") and not x.is_cuda


@pytest.mark.host_only  # no GPU present: on the CPU only (conftest.py)
def test_queries_without_an_accelerator_match_pytorch(torch_ref):
    assert torch.accelerator.is_available() == torch_ref.accelerator.is_available() is False
    assert torch.accelerator.current_accelerator() is torch_ref.accelerator.current_accelerator()
    assert torch.accelerator.device_count() == torch_ref.accelerator.device_count() == 0
    assert torch.cuda.is_available() == torch_ref.cuda.is_available() is False
    assert torch.cuda.device_count() == torch_ref.cuda.device_count() == 0
    assert torch.cuda.memory_allocated() == torch_ref.cuda.memory_allocated()
    assert torch.cuda.is_bf16_supported() == torch_ref.cuda.is_bf16_supported()
    assert torch.backends.mps.is_available() == torch_ref.backends.mps.is_available()
    assert torch.backends.mps.is_built() == torch_ref.backends.mps.is_built()
    assert torch.backends.cudnn.is_available() == torch_ref.backends.cudnn.is_available()
    for name in ("current_device_index", "synchronize"):
        with pytest.raises(RuntimeError) as ref:
            getattr(torch_ref.accelerator, name)()
        with pytest.raises(type(ref.value), match="none is available"):
            getattr(torch.accelerator, name)()
    with pytest.raises(AssertionError) as ref:
        torch_ref.cuda.current_device()
    with pytest.raises(type(ref.value), match="not compiled with CUDA"):
        torch.cuda.current_device()
    torch.cuda.empty_cache()
    assert isinstance(torch.backends.cpu.get_cpu_capability(), str)


@pytest.mark.host_only  # no GPU present: on the CPU only (conftest.py)
def test_default_device(torch_ref):
    assert str(torch.get_default_device()) == str(torch_ref.get_default_device()) == "cpu"
    torch.set_default_device("cpu")
    torch.set_default_device(None)
    with torch.device("cpu"):
        assert torch.get_default_device() == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="'cuda' is not available"):
        torch.set_default_device("cuda")
    assert torch.get_default_device() == torch.device("cpu")


@pytest.fixture
def float64_default(torch_ref):
    torch.set_default_dtype(torch.float64)
    torch_ref.set_default_dtype(torch_ref.float64)
    yield
    torch.set_default_dtype(torch.float32)
    torch_ref.set_default_dtype(torch_ref.float32)


def _makers(lib):
    return {
        "tensor(float)": lambda: lib.tensor([1.0]),
        "tensor(scalar)": lambda: lib.tensor(1.5),
        "tensor(int)": lambda: lib.tensor([1]),
        "tensor(complex)": lambda: lib.tensor(1 + 2j),
        "tensor(float32 ndarray)": lambda: lib.tensor(np.ones(2, np.float32)),
        "as_tensor": lambda: lib.as_tensor([1.0]),
        "zeros": lambda: lib.zeros(2),
        "ones": lambda: lib.ones(2),
        "empty": lambda: lib.empty(2),
        "full(float)": lambda: lib.full((2,), 1.5),
        "full(int)": lambda: lib.full((2,), 3),
        "arange(float)": lambda: lib.arange(3.0),
        "arange(int)": lambda: lib.arange(3),
        "linspace": lambda: lib.linspace(0, 1, 3),
        "eye": lambda: lib.eye(2),
    }


def test_set_default_dtype_changes_what_pytorch_changes(torch_ref, float64_default):
    ours, ref = _makers(torch), _makers(torch_ref)
    for name in ours:
        assert str(ours[name]().dtype).split(".")[-1] == str(ref[name]().dtype).split(".")[-1], name
    assert torch.get_default_dtype() == torch.float64


def test_set_default_dtype_reaches_random_draws(float64_default):
    assert torch.randn(2).dtype == torch.float64 and torch.rand(2).dtype == torch.float64


def test_set_default_dtype_refuses_non_float(torch_ref):
    with pytest.raises(TypeError) as ref:
        torch_ref.set_default_dtype(torch_ref.int32)
    with pytest.raises(type(ref.value), match="only floating-point types"):
        torch.set_default_dtype(torch.int32)
    assert torch.get_default_dtype() == torch.float32


# -- autocast ----------------------------------------------------------------------------------


def test_autocast_state_nesting_decorator_and_enabled(torch_ref):
    assert not torch.is_autocast_enabled("cpu")
    with torch.autocast("cpu"):
        assert (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        with torch.autocast("cpu", enabled=False):
            assert not torch.is_autocast_enabled("cpu")
        with torch.amp.autocast(device_type="cpu", dtype=torch.float16):
            assert torch.get_autocast_dtype("cpu") == torch.float16
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    assert torch.is_autocast_enabled() == torch_ref.is_autocast_enabled() is False

    @torch.autocast("cpu")
    def inside():
        return torch.is_autocast_enabled("cpu")

    assert inside() and not torch.is_autocast_enabled("cpu")


def test_autocast_unsupported_requests_warn_and_disable(torch_ref):
    for lib in (torch, torch_ref):
        with pytest.warns(UserWarning, match="not supported"):
            with lib.autocast("cpu", dtype=lib.float32):
                assert not lib.is_autocast_enabled("cpu")
        with pytest.warns(UserWarning, match="Disabling autocast"):
            with lib.autocast("cuda"):
                assert not lib.is_autocast_enabled("cpu")
        with pytest.raises(RuntimeError, match="device type at start of device string"):
            lib.autocast("foo")


@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_autocast_matmul_and_linear_compute_in_bfloat16(torch_ref):
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    for lib in (torch, torch_ref):
        x, y = lib.tensor(a), lib.tensor(b)
        with lib.autocast("cpu"):
            assert (x @ y).dtype == lib.bfloat16
            assert lib.matmul(x.double(), y.double()).dtype == lib.float64
            assert (x + 1).dtype == lib.float32
        assert (x @ y).dtype == lib.float32


# -- GradScaler --------------------------------------------------------------------------------


def test_grad_scaler_for_cuda_is_disabled_with_a_warning(torch_ref):
    for lib in (torch, torch_ref):
        with pytest.warns(UserWarning, match="not available"):
            s = lib.amp.GradScaler()
        assert not s.is_enabled() and s.get_scale() == 1.0 and s.state_dict() == {}
        loss = lib.tensor(2.0)
        assert s.scale(loss) is loss


def test_grad_scaler_on_cpu_matches_pytorch(torch_ref):
    w0 = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    # a clean step, a step with an infinite gradient (skipped, scale backs off), then growth
    factors = [1.0, float("inf"), 0.5, 2.0]
    runs = []
    for lib in (torch, torch_ref):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scaler = lib.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
        w = lib.tensor(w0, requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1)
        trace = []
        for f in factors:
            opt.zero_grad()
            loss = (w * w).sum() * f
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            grad = np.array(w.grad.detach())
            scaler.step(opt)
            scaler.update()
            trace.append((np.array(w.detach()).copy(), scaler.get_scale(), grad))
        with pytest.raises(RuntimeError, match="already been called"):
            opt.zero_grad()
            scaler.scale((w * w).sum()).backward()
            scaler.unscale_(opt)
            scaler.unscale_(opt)
        runs.append((trace, scaler.state_dict()))
    (ours, sd), (ref, rsd) = runs
    for (w1, s1, g1), (w2, s2, g2) in zip(ours, ref):
        np.testing.assert_allclose(w1, w2, rtol=1e-6)
        np.testing.assert_allclose(g1, g2, rtol=1e-6)
        assert s1 == s2
    assert sd == rsd


def test_deprecated_cuda_amp_spellings_warn_and_stay_off(torch_ref):
    for lib in (torch, torch_ref):
        with pytest.warns(FutureWarning, match="deprecated"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                scaler = lib.cuda.amp.GradScaler()
        assert not scaler.is_enabled()
        with pytest.warns(FutureWarning, match="deprecated"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                with lib.cuda.amp.autocast():
                    assert not lib.is_autocast_enabled("cpu")
    assert torch.vmap is torch.func.vmap
