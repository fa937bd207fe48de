"""``torch.set_printoptions``: the printed form follows PyTorch's options (precision,
threshold, edge items, line width, profiles, forced or forbidden scientific notation)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import chainrule.torch as ct

CASES = [
    ({"precision": 2}, lambda t: t.tensor([1.12345, 2.5])),
    ({"threshold": 5}, lambda t: t.arange(10)),
    ({"sci_mode": True}, lambda t: t.tensor([1.5, -20.25])),
    ({"sci_mode": True}, lambda t: t.tensor([1.0, 3.0])),
    ({"sci_mode": False}, lambda t: t.tensor([1e-6, 3e9])),
    ({"profile": "short"}, lambda t: t.tensor(np.linspace(-3, 3, 24, dtype=np.float32))),
    ({"profile": "full"}, lambda t: t.arange(1200.0).reshape(40, 30)[:2]),
    ({"linewidth": 40}, lambda t: t.arange(30.0) / 7),
    ({"edgeitems": 1, "threshold": 3}, lambda t: t.ones(4, 5)),
]


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    yield
    ct.set_printoptions(profile="default")


def test_precision_and_threshold_and_the_default_profile() -> None:
    ct.set_printoptions(precision=2)
    assert repr(ct.tensor([1.12345, 2.5]).cpu()) == "tensor([1.12, 2.50])"
    ct.set_printoptions(threshold=5)
    assert repr(ct.arange(10).cpu()) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    ct.set_printoptions(profile="default")
    assert repr(ct.tensor([1.12345]).cpu()) == "tensor([1.1235])"
    assert repr(ct.arange(10).cpu()) == "tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])"


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(ValueError, match="profile='wide'"):
        ct.set_printoptions(profile="wide")


@pytest.mark.parametrize("options,make", CASES)
def test_printed_form_matches_pytorch(options, make) -> None:
    torch = pytest.importorskip("torch")
    try:
        torch.set_printoptions(**options)
        ct.set_printoptions(**options)
        assert repr(make(ct).cpu()) == repr(make(torch))  # (on the host under the GPU default)
    finally:
        torch.set_printoptions(profile="default")
