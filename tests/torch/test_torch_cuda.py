"""``chainrule.torch`` on CUDA: run against the strict CuPy stand-in, so on any machine.

Without CuPy, CUDA is refused clearly (naming what is missing); with the strict stand-in backing
the GPU (``backend.use_strict_gpu``), tensors on ``"cuda"`` hold ``StrictArray``s, which refuse
implicit conversion to NumPy and host arrays mixed in, as CuPy's arrays do: a training loop that
runs here reaches NumPy nowhere behind the backend's back.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray
from chainrule.torch.utils.data import DataLoader, TensorDataset

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = [pytest.mark.usefixtures("cpu_default_device"), pytest.mark.refuses_host_reads]


def on_gpu(t) -> bool:
    return type(t._data) is StrictArray


@pytest.fixture
def cuda():
    with backend.use_strict_gpu():
        yield


def test_without_a_gpu_cuda_is_refused_naming_what_is_missing():
    if backend.gpu() is not None:
        pytest.skip("a GPU backend is present")
    assert torch.cuda.is_available() is False and torch.cuda.device_count() == 0
    x = torch.ones(2)
    for call in (
        lambda: torch.zeros(2, device="cuda"),
        lambda: x.cuda(),
        lambda: x.to("cuda"),
        lambda: torch.cuda.synchronize(),
        lambda: torch.set_default_device("cuda"),
    ):
        with pytest.raises(RuntimeError, match="CuPy is not installed"):
            call()
    with pytest.raises(AssertionError):  # PyTorch's CPU build raises AssertionError
        torch.cuda.current_device()
    torch.cuda.manual_seed(0)  # accepted without a GPU, as in PyTorch
    assert torch.cuda.memory_allocated() == 0


def test_devices_and_factories(cuda):
    assert torch.cuda.is_available() and torch.cuda.device_count() == 1
    assert torch.cuda.current_device() == 0 and isinstance(torch.cuda.get_device_name(), str)
    torch.cuda.synchronize()
    assert torch.device(0) == torch.device("cuda", 0)
    for t in (
        torch.zeros(2, 3, device="cuda"),
        torch.ones(2, device=torch.device("cuda")),
        torch.full((2,), 3.0, device="cuda:0"),
        torch.arange(5, device="cuda"),
        torch.linspace(0, 1, 5, device="cuda"),
        torch.eye(3, device="cuda"),
        torch.randn(2, 2, device="cuda"),
        torch.rand(3, device="cuda"),
        torch.randint(0, 5, (4,), device="cuda"),
        torch.randperm(6, device="cuda"),
        torch.tensor([1.0, 2.0], device="cuda"),
        torch.empty(3, device="cuda"),
        torch.tril_indices(3, 3, device="cuda"),
    ):
        assert on_gpu(t) and t.device == torch.device("cuda", 0) and t.is_cuda, t
    c = torch.zeros(2)
    assert not on_gpu(c) and c.device == torch.device("cpu") and not c.is_cuda
    g = torch.ones(2, device="cuda")
    assert on_gpu(g.new_zeros(3)) and on_gpu(g.new_tensor([1.0])) and on_gpu(torch.zeros_like(g))
    assert on_gpu(torch.tensor(g)) and not on_gpu(torch.tensor(g, device="cpu"))
    with torch.device("cuda"):
        assert on_gpu(torch.zeros(2))
    assert not on_gpu(torch.zeros(2))


def test_moving_is_differentiable_and_numpy_needs_cpu(cuda):
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    g = x.to("cuda")
    assert on_gpu(g) and g is not x and x.cuda().is_cuda and g.cuda() is g
    y = (g * g).sum()
    y.backward()
    assert not on_gpu(x.grad) and x.grad.tolist() == [2.0, 4.0, 6.0]
    w = torch.ones(2, device="cuda", requires_grad=True)
    (w.cpu() * 3).sum().backward()
    assert on_gpu(w.grad) and w.grad.tolist() == [3.0, 3.0]
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        g.numpy()
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        np.asarray(g)
    np.testing.assert_array_equal(g.cpu().numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g.detach().numpy(force=True), [1.0, 2.0, 3.0])
    assert g.sum().item() == 6.0 and g.tolist() == [1.0, 2.0, 3.0]
    assert "device='cuda:0'" in repr(g)
    assert g.to(torch.float64).dtype == torch.float64 and on_gpu(g.to(torch.float64))
    assert on_gpu(g.to("cuda", torch.float16))


def test_mixing_devices_is_pytorchs_error(cuda):
    g = torch.ones(2, 2, device="cuda")
    c = torch.ones(2, 2)
    for call in (lambda: g + c, lambda: c * g, lambda: g @ c, lambda: torch.cat([g, c])):
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            call()
    assert on_gpu(g + 1.0) and on_gpu(g * torch.tensor(2.0))  # 0-d CPU tensors mix, as PyTorch


def test_seeded_draws_match_across_devices(cuda):
    torch.manual_seed(3)
    a = torch.randn(4)
    torch.cuda.manual_seed(3)
    b = torch.randn(4, device="cuda")
    np.testing.assert_array_equal(a.numpy(), b.cpu().numpy())


def test_training_loop_on_cuda_with_a_dataloader(cuda):
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x.cuda(), y.cuda()), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 2))
    model.to("cuda")
    assert all(on_gpu(p) for p in model.parameters())
    for opt in (
        torch.optim.Adam(model.parameters(), lr=0.05),
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    ):
        losses = []
        for _ in range(3):
            total = 0.0
            for xb, yb in loader:
                assert on_gpu(xb) and on_gpu(yb)
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item()
            losses.append(total)
        assert losses[-1] < losses[0], losses
        assert all(on_gpu(p) and on_gpu(p.grad) for p in model.parameters())
    model.cpu()
    assert not any(on_gpu(p) for p in model.parameters())


def test_state_dict_saved_from_and_loaded_to_cuda(cuda, tmp_path):
    model = nn.Linear(3, 2).cuda()
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path)
    fresh = nn.Linear(3, 2).cuda()
    fresh.load_state_dict(state)
    assert on_gpu(fresh.weight)
    np.testing.assert_array_equal(fresh.weight.cpu().numpy(), model.weight.cpu().numpy())


def test_optimizer_state_loaded_from_a_file_lands_on_the_parameters_device(cuda, tmp_path):
    # torch.load gives CPU tensors; the optimizer moves its state to each parameter's device,
    # as PyTorch's load_state_dict does (the step after it mixed devices before)
    def run(resume: bool) -> np.ndarray:
        torch.manual_seed(0)
        model = nn.Linear(3, 2).cuda()
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        x = torch.ones(4, 3, device="cuda")
        for step in range(3):
            if resume and step == 2:
                torch.save(opt.state_dict(), tmp_path / "opt.pt")
                opt = torch.optim.Adam(model.parameters(), lr=0.1)
                opt.load_state_dict(torch.load(tmp_path / "opt.pt"))
                state = opt.state[model.weight]
                assert on_gpu(state["exp_avg"]) and on_gpu(state["exp_avg_sq"])
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
        return model.weight.cpu().numpy()

    np.testing.assert_allclose(run(True), run(False), rtol=1e-6)


def test_torch_save_of_cuda_tensors_writes_host_copies(cuda, tmp_path):
    t = torch.arange(3.0, device="cuda")
    path = tmp_path / "t.pt"
    torch.save({"t": t, "l": [t * 2]}, path)
    back = torch.load(path)
    assert back["t"].device == torch.device("cpu")  # as with map_location="cpu"
    assert back["l"][0].tolist() == [0.0, 2.0, 4.0]


def test_nn_init_keeps_cuda_parameters_on_cuda(cuda):
    # nn.init drew on the host and set host values into CUDA parameters (moving them to the
    # CPU silently); now the values land on each tensor's device
    torch.manual_seed(0)
    layer = nn.Linear(8, 4).cuda()
    for init in (
        nn.init.xavier_uniform_,
        nn.init.xavier_normal_,
        nn.init.kaiming_uniform_,
        nn.init.kaiming_normal_,
        nn.init.normal_,
        nn.init.uniform_,
        nn.init.trunc_normal_,
        nn.init.orthogonal_,
        nn.init.zeros_,
        nn.init.ones_,
    ):
        init(layer.weight)
        assert on_gpu(layer.weight), init.__name__
    nn.init.constant_(layer.bias, 0.5)
    assert on_gpu(layer.bias) and layer.bias.cpu().tolist() == [0.5] * 4
    out = layer(torch.ones(2, 8, device="cuda"))
    assert on_gpu(out) and out.shape == (2, 4)


def test_a_boolean_attention_mask_becomes_float_on_its_own_device():
    """PyTorch turns a boolean mask into ``-inf``/``0`` with ``zeros_like(mask)``: on the
    mask's device, whatever the default device is (a CPU mask stays on the CPU)."""
    import chainrule.core as mx
    from chainrule.torch.nn._transformer import _canonical_mask

    with backend.use_strict_gpu():
        torch.set_default_device("cuda")
        mx.set_default_device(mx.gpu)  # (as CHAINRULE_DEVICE=gpu makes both)
        try:
            for device in ("cpu", "cuda"):
                mask = torch.tensor([[True, False], [False, False]], device=device)
                got = _canonical_mask(mask, "mask", None, "", torch.float32)
                assert got.device.type == device and got.dtype == torch.float32
                assert got.cpu().tolist() == [[-float("inf"), 0.0], [0.0, 0.0]]
        finally:
            torch.set_default_device(None)
