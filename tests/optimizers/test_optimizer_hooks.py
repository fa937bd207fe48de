"""PyTorch's optimizer hooks (step, state_dict, load_state_dict), against real PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch


def _events(lib):
    w = lib.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
    log = []
    handles = [
        opt.register_step_pre_hook(lambda o, a, k: log.append(("pre", len(a), dict(k)))),
        opt.register_step_post_hook(lambda o, a, k: log.append(("post", len(a)))),
        opt.register_state_dict_pre_hook(lambda o: log.append("sd_pre")),
        opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1}),
        opt.register_state_dict_post_hook(lambda o, sd: log.append(sorted(sd)), prepend=True),
        opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load_pre")),
        opt.register_load_state_dict_post_hook(lambda o: log.append("load_post")),
    ]
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    opt.load_state_dict({k: v for k, v in sd.items() if k != "extra"})
    for h in handles:
        h.remove()
    opt.step()
    opt.state_dict()
    return log, sorted(sd)


def test_hooks_run_as_in_torch():
    torch_ref = pytest.importorskip("torch")
    assert _events(torch) == _events(torch_ref)


def test_a_pre_hook_may_replace_the_arguments_and_bad_results_are_refused():
    w = torch.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    handle = opt.register_step_pre_hook(lambda o, a, k: ((o, closure), {}))
    assert float(opt.step().item()) == 2.0 and calls == [1]
    handle.remove()
    handle.remove()  # twice is fine
    opt.register_step_pre_hook(lambda o, a, k: "nope")
    with pytest.raises(RuntimeError, match="tuple of"):
        opt.step()
