"""The workloads of ``benchmarks/suite.py`` (issue 20), as importable builders.

Every workload is a :class:`Workload`: a name, a one-line description and up to three
builders that return a ``(step, sync)`` pair:

* ``mlx(lib, compiled)``: the MLX-style program, ONE source for chainrule and real MLX:
  ``lib`` holds the modules (``lib.mx`` = ``chainrule.core`` or ``mlx.core``, ``lib.nn``,
  ``lib.optim``); ``compiled`` wraps the step in ``mx.compile`` with the model's and the
  optimizer's state as inputs and outputs, as MLX's examples do;
* ``torch(torch, device)``: the PyTorch-style program, ONE source for ``chainrule.torch`` and
  PyTorch (``torch`` is the module, ``device`` "cpu" or "cuda");
* ``jax()``: a ``jax.jit`` version where one is written.

``step(k)`` runs training step (or decoding run) ``k`` and returns something ``sync`` turns
into a float, which forces the work to be done. A builder that cannot run raises
:class:`NotApplicable` with the reason. ``flops`` is the step's matrix-product and
convolution work (forward and backward), for the GEMM-bound limit; ``gemm_shape`` is a
representative ``(M, K, N)`` product, timed in NumPy to give the BLAS's rate on this work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

Step = tuple[Callable[[int], Any], Callable[[Any], float]]


class NotApplicable(Exception):
    """Raised by a builder that has no version for this runner (the message says why)."""


@dataclass
class Workload:
    """One benchmark program and its builders (see the module docstring)."""

    name: str
    description: str
    mlx: Callable[[SimpleNamespace, bool], Step] | None = None
    torch: Callable[[Any, str], Step] | None = None
    jax: Callable[[], Step] | None = None
    flops: float | None = None
    gemm_shape: tuple[int, int, int] | None = None
    steps: int = 20
    unit: str = "ms/step"
    tokens: int = 0


def mlx_train(
    lib: SimpleNamespace,
    model: Any,
    loss_fn: Callable,
    optimizer: Any,
    batches: list,
    compiled: bool,
    clip: float | None = None,
) -> Step:
    """The MLX training step: ``nn.value_and_grad``, ``optimizer.update``, then ``mx.eval``.

    ``clip``: clip the gradients' global norm (``optim.clip_grad_norm``) before the update.
    """
    mx, nn = lib.mx, lib.nn
    mx.eval(model.parameters())
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def inner(*batch: Any) -> Any:
        loss, grads = loss_and_grad(model, *batch)
        if clip is not None:
            grads, _ = lib.optim.clip_grad_norm(grads, clip)
        optimizer.update(model, grads)
        return loss

    if compiled:
        state = [model.state, optimizer.state]
        inner = mx.compile(inner, inputs=state, outputs=state)

    def step(k: int) -> Any:
        loss = inner(*batches[k % len(batches)])
        mx.eval(loss, model.state, optimizer.state)
        return loss

    return step, lambda loss: loss.item()


def torch_train(
    torch: Any,
    model: Any,
    loss_fn: Callable,
    optimizer: Any,
    batches: list,
    device: str = "cpu",
    clip: float | None = None,
) -> Step:
    """The PyTorch training step: ``zero_grad``, forward, ``backward``, ``step``.

    ``torch`` is the module (PyTorch or ``chainrule.torch``); ``clip``: ``clip_grad_norm_`` the parameters' gradients before the step.
    """
    model.to(device)
    clip_ = torch.nn.utils.clip_grad_norm_
    batches = [tuple(t.to(device) for t in b) for b in batches]

    def step(k: int) -> Any:
        x, y = batches[k % len(batches)]
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip is not None:
            clip_(model.parameters(), clip)
        optimizer.step()
        return loss

    return step, lambda loss: loss.item()


def dense_flops(batch: int, sizes: list[int], first_needs_input_grad: bool = False) -> float:
    """Forward + backward FLOPs of a chain of dense layers ``sizes`` on ``batch`` rows.

    Forward ``2 B K N`` a layer; backward the weight gradient (the same) and the input
    gradient (the same again) for every layer but the first, whose input needs none unless
    ``first_needs_input_grad``.
    """
    total = 0.0
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        f = 2.0 * batch * k * n
        total += 2 * f + (f if i > 0 or first_needs_input_grad else 0.0)
    return total


def _registry() -> dict[str, Workload]:
    from . import block, cnn, flow, llama, mlp, polyfit, rnn

    out: dict[str, Workload] = {}
    for mod in (mlp, cnn, block, rnn, llama, flow, polyfit):
        for w in mod.WORKLOADS:
            out[w.name] = w
    return out


WORKLOADS: dict[str, Workload] = _registry()
ORDER = ["seed", "large", "lenet", "resnet", "block", "encoder", "lstm", "gru", "llama"]
ORDER += ["flow", "polyfit"]
