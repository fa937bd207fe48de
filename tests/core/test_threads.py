"""The recording state is per thread: one thread's no_grad never switches another's off."""

import sys
import threading

import numpy as np

import chainrule.core as mx


def test_no_grad_in_one_thread_leaves_another_threads_gradients_right():
    x = mx.array([1.0, 2.0, 3.0])
    errors: list = []
    stop = threading.Event()

    def toggler():
        while not stop.is_set():
            with mx.no_grad():
                (x * 2).sum()

    def differentiator():
        g = mx.grad(lambda a: (a * a).sum())
        for _ in range(500):
            r = g(x).tolist()
            if r != [2.0, 4.0, 6.0]:
                errors.append(r)
                return

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, inside the transforms too
    t = threading.Thread(target=toggler)
    t.start()
    try:
        workers = [threading.Thread(target=differentiator) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert errors == []
    np.testing.assert_array_equal(np.asarray(mx.grad(lambda a: (a * a).sum())(x)), [2, 4, 6])
