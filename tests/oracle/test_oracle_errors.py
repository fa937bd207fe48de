"""Bad input: chainrule raises the same kind of error as real MLX (and names the operation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402

# (id, call(lib, nn)) each of which MLX refuses
BAD: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("Linear-wrong-input", lambda mx, nn: nn.Linear(4, 3)(mx.zeros((2, 5)))),
    ("Conv1d-wrong-channels", lambda mx, nn: nn.Conv1d(3, 4, 3)(mx.zeros((1, 8, 2)))),
    ("Conv2d-wrong-ndim", lambda mx, nn: nn.Conv2d(3, 4, 3)(mx.zeros((8, 8, 3)))),
    ("Conv1d-groups", lambda mx, nn: nn.Conv1d(3, 4, 3, groups=2)),
    ("LayerNorm-wrong-dims", lambda mx, nn: nn.LayerNorm(4)(mx.zeros((2, 5)))),
    ("RMSNorm-wrong-dims", lambda mx, nn: nn.RMSNorm(4)(mx.zeros((2, 5)))),
    ("GroupNorm-groups", lambda mx, nn: nn.GroupNorm(3, 4)),
    ("Embedding-float-ids", lambda mx, nn: nn.Embedding(4, 2)(mx.array([0.5]))),
    ("MaxPool2d-ndim", lambda mx, nn: nn.MaxPool2d(2)(mx.zeros((4, 4)))),
    ("Upsample-mode", lambda mx, nn: nn.Upsample(2, mode="area")),
    ("RoPE-odd-dims", lambda mx, nn: nn.RoPE(5)(mx.zeros((1, 2, 5)))),
    ("MHA-heads", lambda mx, nn: nn.MultiHeadAttention(6, 4)),
    ("QuantizedLinear-group", lambda mx, nn: nn.QuantizedLinear(48, 8, group_size=64)),
    ("mse-shapes", lambda mx, nn: nn.losses.mse_loss(mx.zeros((2, 3)), mx.zeros((3, 2)))),
    ("cross_entropy-shapes", lambda mx, nn: nn.losses.cross_entropy(mx.zeros((2, 3)), mx.zeros((3,), mx.int32))),
    ("nll-shapes", lambda mx, nn: nn.losses.nll_loss(mx.zeros((2, 3)), mx.zeros((2, 3), mx.int32))),
    ("bce-shapes", lambda mx, nn: nn.losses.binary_cross_entropy(mx.zeros((2,)), mx.zeros((3,)))),
    ("reduction", lambda mx, nn: nn.losses.l1_loss(mx.zeros(2), mx.zeros(2), reduction="avg")),
    ("init-identity", lambda mx, nn: nn.init.identity()(mx.zeros((2, 3)))),
    ("init-sparse-3d", lambda mx, nn: nn.init.sparse(0.5)(mx.zeros((2, 3, 4)))),
    ("fast-rms-weight", lambda mx, nn: mx.fast.rms_norm(mx.zeros((2, 4)), mx.ones((3,)), 1e-5)),
    ("fast-layer-norm-bias", lambda mx, nn: mx.fast.layer_norm(mx.zeros((2, 4)), None, mx.ones((3,)), 1e-5)),
    ("fast-sdpa-dims", lambda mx, nn: mx.fast.scaled_dot_product_attention(mx.zeros((1, 2, 3, 4)), mx.zeros((1, 2, 3, 5)), mx.zeros((1, 2, 3, 5)), scale=1.0)),
    ("quantize-group", lambda mx, nn: mx.quantize(mx.zeros((4, 48)), group_size=64, bits=4)),
    ("quantize-bits", lambda mx, nn: mx.quantize(mx.zeros((4, 64)), group_size=64, bits=7)),
    ("quantized_matmul-shape", lambda mx, nn: mx.quantized_matmul(mx.zeros((2, 32)), *mx.quantize(mx.zeros((8, 64)), group_size=64, bits=4))),
    ("fast-cross-entropy-float-targets", lambda mx, nn: mx.fast.cross_entropy(mx.zeros((2, 3)), mx.zeros((2,)))),
]  # fmt: skip


@pytest.mark.parametrize("name,call", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_the_error_kind_mlx_raises(name: str, call: Callable) -> None:
    """The exception class of chainrule's refusal is MLX's (or a subclass of it)."""
    with pytest.raises(Exception) as want:
        r = call(mlx_core, mlx_nn)
        mlx_core.eval(r) if isinstance(r, mlx_core.array) else None
    with pytest.raises(want.type) as got:
        call(cx, cnn)
    assert str(got.value), name  # a message, not a bare exception
