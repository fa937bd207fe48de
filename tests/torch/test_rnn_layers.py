"""chainrule.torch.nn's recurrent layers (RNN, LSTM, GRU, the cells) and torch.nn.utils.rnn
against real PyTorch: state_dict names and shapes, initialisation, outputs and gradients over
the option grid (float32 to 1e-5, float64 to 1e-10), packed sequences, errors, repr, and a
small LSTM language model trained side by side."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import chainrule.torch as ct
import chainrule.torch.nn as nn
from chainrule.torch.nn.utils import rnn as ours_rnn

TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10), "int64": (0, 0)}
KINDS = {"RNN": {}, "RNN_relu": {"nonlinearity": "relu"}, "LSTM": {}, "LSTM_proj": {"proj_size": 2}}
KINDS["GRU"] = {}


def _ref():
    return pytest.importorskip("torch")


def _class(kind: str) -> str:
    return kind.split("_")[0]


def _to_ours(sd):
    return {k: ct.tensor(v.detach().numpy()) for k, v in sd.items()}


def _close(ours, ref, dtype, what=""):
    rtol, atol = TOL[dtype]
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    got = ours.numpy()
    assert got.shape == ref.shape, what
    assert got.dtype == ref.dtype, what
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def _pair(torch_ref, kind, dtype, **options):
    """The same layer in both frameworks, chainrule's loaded from PyTorch's state_dict."""
    kw = {**KINDS[kind], **options}
    tdt = getattr(torch_ref, dtype)
    ref = getattr(torch_ref.nn, _class(kind))(3, 5, dtype=tdt, **kw)
    ours = getattr(nn, _class(kind))(3, 5, dtype=getattr(ct, dtype), **kw)
    ours.load_state_dict(_to_ours(ref.state_dict()))
    return ours, ref


def _flat_state(h, lib):
    if isinstance(h, tuple):
        return lib.cat([h[0].reshape(-1), h[1].reshape(-1)])
    return h.reshape(-1)


def _compare_call(torch_ref, ours, ref, x, dtype, lengths=None, batch_first=False, hx=None):
    """Run both layers (packed when ``lengths`` is given), compare outputs, final states and
    the gradients of the input, the initial state and every parameter."""
    xt = torch_ref.tensor(x, requires_grad=True)
    xo = ct.tensor(x, requires_grad=True)
    ht = ho = None
    if hx is not None:
        ht = tuple(torch_ref.tensor(h, requires_grad=True) for h in hx)
        ho = tuple(ct.tensor(h, requires_grad=True) for h in hx)
    in_t, in_o = xt, xo
    if lengths is not None:
        in_t = torch_ref.nn.utils.rnn.pack_padded_sequence(
            xt, lengths, batch_first=batch_first, enforce_sorted=False
        )
        in_o = ours_rnn.pack_padded_sequence(
            xo, lengths, batch_first=batch_first, enforce_sorted=False
        )
    args_t = () if ht is None else ((ht if len(ht) == 2 else ht[0]),)
    args_o = () if ho is None else ((ho if len(ho) == 2 else ho[0]),)
    out_t, hn_t = ref(in_t, *args_t)
    out_o, hn_o = ours(in_o, *args_o)
    if lengths is not None:
        assert isinstance(out_o, ours_rnn.PackedSequence)
        np.testing.assert_array_equal(out_o.batch_sizes.numpy(), out_t.batch_sizes.numpy())
        out_t, out_o = out_t.data, out_o.data
    assert type(out_o) is ct.Tensor
    _close(out_o, out_t, dtype, "output")
    _close(_flat_state(hn_o, ct), _flat_state(hn_t, torch_ref), dtype, "h_n")
    w = np.linspace(-1, 1, out_t.numel()).reshape(tuple(out_t.shape)).astype(dtype)
    loss_t = (out_t * torch_ref.tensor(w)).sum() + _flat_state(hn_t, torch_ref).sin().sum()
    loss_o = (out_o * ct.tensor(w)).sum() + _flat_state(hn_o, ct).sin().sum()
    loss_t.backward()
    loss_o.backward()
    _close(xo.grad, xt.grad, dtype, "input grad")
    if ht is not None:
        for a, b in zip(ho, ht):
            _close(a.grad, b.grad, dtype, "h0 grad")
    grads_o = dict(ours.named_parameters())
    for name, p in ref.named_parameters():
        _close(grads_o[name].grad, p.grad, dtype, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_layers_match_pytorch_over_the_option_grid(kind, dtype):
    torch_ref = _ref()
    rng = np.random.default_rng(abs(hash((kind, dtype))) % 2**32)
    inputs = itertools.cycle(["padded", "packed", "unbatched"])
    with_hx = itertools.cycle([False, True])  # with the 3 input forms: all 6 pairs
    for layers, bidir, batch_first, bias in itertools.product(
        (1, 2), (False, True), (False, True), (True, False)
    ):
        ours, ref = _pair(
            torch_ref,
            kind,
            dtype,
            num_layers=layers,
            bidirectional=bidir,
            batch_first=batch_first,
            bias=bias,
        )
        form, give_hx = next(inputs), next(with_hx)
        steps, batch = 4, 3
        shape = (batch, steps, 3) if batch_first else (steps, batch, 3)
        if form == "unbatched":
            shape = (steps, 3)
        x = rng.normal(size=shape).astype(dtype)
        lengths = [2, 4, 3] if form == "packed" else None
        hx = None
        if give_hx:
            n = layers * (2 if bidir else 1)
            out = KINDS[kind].get("proj_size") or 5
            lead = (n,) if form == "unbatched" else (n, batch)
            hx = [rng.normal(size=(*lead, out)).astype(dtype)]
            if _class(kind) == "LSTM":
                hx.append(rng.normal(size=(*lead, 5)).astype(dtype))
        _compare_call(torch_ref, ours, ref, x, dtype, lengths, batch_first, hx)


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_and_initialisation_are_pytorchs(kind):
    torch_ref = _ref()
    kw = {**KINDS[kind], "num_layers": 2, "bidirectional": True}
    ref = getattr(torch_ref.nn, _class(kind))(6, 8, **kw)
    ours = getattr(nn, _class(kind))(6, 8, **kw)
    sd_o, sd_t = ours.state_dict(), ref.state_dict()
    assert list(sd_o) == list(sd_t)
    assert [tuple(v.shape) for v in sd_o.values()] == [tuple(v.shape) for v in sd_t.values()]
    assert all(v.dtype == ct.float32 for v in sd_o.values())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [[tuple(p.shape) for p in g] for g in ours.all_weights] == [
        [tuple(p.shape) for p in g] for g in ref.all_weights
    ]
    bound = 1 / math.sqrt(8)
    values = np.concatenate([v.numpy().ravel() for v in sd_o.values()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound and abs(values.mean()) < 0.1 * bound
    # a PyTorch-made state_dict loads strictly, and ours loads into PyTorch
    ours.load_state_dict(_to_ours(sd_t))
    ref.load_state_dict({k: torch_ref.tensor(v.numpy()) for k, v in ours.state_dict().items()})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_pytorch(name, dtype):
    torch_ref = _ref()
    rng = np.random.default_rng(len(name))
    for bias, batched, give_hx, relu in itertools.product(
        (True, False), (True, False), (True, False), (False, True)
    ):
        if relu and name != "RNNCell":
            continue
        kw = {"bias": bias, "dtype": getattr(torch_ref, dtype)}
        if relu:
            kw["nonlinearity"] = "relu"
        ref = getattr(torch_ref.nn, name)(3, 4, **kw)
        ours = getattr(nn, name)(3, 4, **{**kw, "dtype": getattr(ct, dtype)})
        assert list(ours.state_dict()) == list(ref.state_dict())
        ours.load_state_dict(_to_ours(ref.state_dict()))
        lead = (2,) if batched else ()
        x = rng.normal(size=(*lead, 3)).astype(dtype)
        xt, xo = torch_ref.tensor(x, requires_grad=True), ct.tensor(x, requires_grad=True)
        args_t, args_o = (), ()
        if give_hx:
            hs = [rng.normal(size=(*lead, 4)).astype(dtype) for _ in range(2)]
            if name == "LSTMCell":
                args_t = (tuple(torch_ref.tensor(h) for h in hs),)
                args_o = (tuple(ct.tensor(h) for h in hs),)
            else:
                args_t, args_o = (torch_ref.tensor(hs[0]),), (ct.tensor(hs[0]),)
        out_t, out_o = ref(xt, *args_t), ours(xo, *args_o)
        out_t, out_o = _flat_state(out_t, torch_ref), _flat_state(out_o, ct)
        _close(out_o, out_t, dtype, name)
        out_t.sin().sum().backward()
        out_o.sin().sum().backward()
        _close(xo.grad, xt.grad, dtype, "input grad")
        grads_o = dict(ours.named_parameters())
        for pname, p in ref.named_parameters():
            _close(grads_o[pname].grad, p.grad, dtype, pname)


def test_repr_is_pytorchs():
    torch_ref = _ref()
    cases = [
        ("LSTM", (3, 4, 2), {"bidirectional": True, "proj_size": 2, "dropout": 0.2}),
        ("LSTM", (3, 4), {"batch_first": True, "bias": False}),
        ("RNN", (3, 4), {"nonlinearity": "relu"}),
        ("GRU", (3, 4, 3), {}),
        ("RNNCell", (3, 4), {"bias": False, "nonlinearity": "relu"}),
        ("LSTMCell", (3, 4), {}),
        ("GRUCell", (3, 4), {"bias": False}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, args, kw in cases:
            assert repr(getattr(nn, name)(*args, **kw)) == repr(
                getattr(torch_ref.nn, name)(*args, **kw)
            )


def _error_kind(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the kind is what is compared
        return type(e)
    return None


def test_bad_arguments_raise_pytorchs_error_kinds():
    torch_ref = _ref()

    def cases(lib):
        x = lib.zeros(4, 3, 2)
        lstm = lib.nn.LSTM(2, 5, 2)
        gru = lib.nn.GRU(2, 5)
        cell = lib.nn.LSTMCell(2, 3)
        pack = lib.nn.utils.rnn
        return [
            lambda: lib.nn.LSTM(2, 5, dropout=1.5),
            lambda: lib.nn.LSTM(2, 5, bias=1),
            lambda: lib.nn.LSTM(2.0, 5),
            lambda: lib.nn.LSTM(2, 0),
            lambda: lib.nn.LSTM(2, 5, 0),
            lambda: lib.nn.LSTM(2, 5, proj_size=5),
            lambda: lib.nn.GRU(2, 5, proj_size=2),
            lambda: lib.nn.RNN(2, 5, nonlinearity="sigmoid"),
            lambda: lstm(lib.zeros(4, 3, 2, 1)),
            lambda: lstm(lib.zeros(4, 3, 3)),
            lambda: lstm(x.double()),
            lambda: lstm(x, (lib.zeros(1, 3, 5), lib.zeros(2, 3, 5))),
            lambda: lstm(x, (lib.zeros(2, 3, 5), lib.zeros(2, 3, 4))),
            lambda: gru(x, lib.zeros(2, 3, 5)),
            lambda: gru(x, lib.zeros(1, 5)),
            lambda: cell(lib.zeros(4, 3)),
            lambda: cell(lib.zeros(4, 2), (lib.zeros(3, 3), lib.zeros(4, 3))),
            lambda: cell(lib.zeros(2, 2, 2)),
            lambda: lib.nn.GRUCell(2, 3)(lib.zeros(4, 2), lib.zeros(4, 4)),
            lambda: pack.pack_padded_sequence(x, [4, 2, 3]),
            lambda: pack.pack_padded_sequence(x, [4, 3, 0]),
            lambda: pack.pack_padded_sequence(x, [4, 3, 2, 1]),
            lambda: pack.pack_sequence([lib.ones(2), lib.ones(3)]),
            lambda: pack.pad_sequence([lib.ones(2, 3), lib.ones(3, 2)]),
            lambda: pack.pad_sequence([lib.ones(2)], padding_side="middle"),
            lambda: pack.pad_sequence([]),
            lambda: pack.pad_packed_sequence(
                pack.pack_padded_sequence(x, [4, 3, 2]), total_length=2
            ),
        ]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kinds_t = [_error_kind(f) for f in cases(torch_ref)]
        kinds_o = [_error_kind(f) for f in cases(ct)]
    assert None not in kinds_t
    assert kinds_o == kinds_t


def test_error_messages_name_the_layer_and_the_shapes():
    lstm = nn.LSTM(2, 5, 2)
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[0\] size \(2, 3, 5\)"):
        lstm(ct.zeros(4, 3, 2), (ct.zeros(1, 3, 5), ct.zeros(2, 3, 5)))
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) .* Expected 2, got 3"):
        lstm(ct.zeros(4, 3, 3))
    with pytest.raises(ValueError, match=r"GRU: Expected input to be 2D or 3D, got 4D"):
        nn.GRU(2, 3)(ct.zeros(1, 2, 3, 2))
    with pytest.raises(ValueError, match="dropout=1.5"):
        nn.RNN(2, 3, dropout=1.5)


def test_dropout_between_layers_and_its_warning():
    torch_ref = _ref()
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        torch_ref.nn.LSTM(3, 4, dropout=0.5)
    ours, ref = _pair(torch_ref, "LSTM", "float32", num_layers=2, dropout=0.5)
    x = np.random.default_rng(1).normal(size=(5, 2, 3)).astype("float32")
    train_a, _ = ours(ct.tensor(x))
    train_b, _ = ours(ct.tensor(x))
    assert not np.allclose(train_a.numpy(), train_b.numpy())  # dropped at random in training
    ours.eval()
    ref.eval()
    _close(ours(ct.tensor(x))[0], ref(torch_ref.tensor(x))[0], "float32", "eval output")


@pytest.mark.usefixtures("cpu_default_device")  # compares devices with PyTorch on the CPU
@pytest.mark.parametrize("batch_first", [False, True])
def test_packing_utilities_match_pytorch(batch_first):
    torch_ref = _ref()
    tr = torch_ref.nn.utils.rnn
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 2) if batch_first else (5, 4, 2)).astype("float32")
    lengths = [3, 5, 1, 3]  # unsorted, with a tie
    xt, xo = torch_ref.tensor(x, requires_grad=True), ct.tensor(x, requires_grad=True)
    pt = tr.pack_padded_sequence(xt, lengths, batch_first=batch_first, enforce_sorted=False)
    po = ours_rnn.pack_padded_sequence(xo, lengths, batch_first=batch_first, enforce_sorted=False)
    for a, b in zip(po, pt):
        assert a.dtype == ct.int64 or a is po.data
        _close(a, b, str(b.dtype).replace("torch.", ""))
    padded_t, lens_t = tr.pad_packed_sequence(pt, batch_first, padding_value=-2.0, total_length=6)
    padded_o, lens_o = ours_rnn.pad_packed_sequence(po, batch_first, -2.0, 6)
    _close(padded_o, padded_t, "float32")
    _close(lens_o, lens_t, "int64")
    w = rng.normal(size=padded_t.shape).astype("float32")
    (padded_t * torch_ref.tensor(w)).sum().backward()
    (padded_o * ct.tensor(w)).sum().backward()
    _close(xo.grad, xt.grad, "float32", "gradient through pack and pad")
    seqs = [rng.normal(size=(n, 2)).astype("float32") for n in (2, 4, 3)]
    for side in ("right", "left"):
        _close(
            ours_rnn.pad_sequence([ct.tensor(s) for s in seqs], batch_first, 1.5, side),
            tr.pad_sequence([torch_ref.tensor(s) for s in seqs], batch_first, 1.5, side),
            "float32",
        )
    sorted_seqs = sorted(seqs, key=len, reverse=True)
    pt = tr.pack_sequence([torch_ref.tensor(s) for s in sorted_seqs])
    po = ours_rnn.pack_sequence([ct.tensor(s) for s in sorted_seqs])
    _close(po.data, pt.data, "float32")
    assert po.sorted_indices is None and pt.sorted_indices is None
    pt = tr.pack_sequence([torch_ref.tensor(s) for s in seqs], enforce_sorted=False)
    po = ours_rnn.pack_sequence([ct.tensor(s) for s in seqs], enforce_sorted=False)
    for a, b in zip(ours_rnn.unpack_sequence(po), tr.unpack_sequence(pt)):
        _close(a, b, "float32")
    padded = torch_ref.tensor(np.stack([np.pad(s, ((0, 4 - len(s)), (0, 0))) for s in seqs], 1))
    for a, b in zip(
        ours_rnn.unpad_sequence(ct.tensor(padded.numpy()), ct.tensor([2, 4, 3])),
        tr.unpad_sequence(padded.clone(), torch_ref.tensor([2, 4, 3])),
    ):
        _close(a, b, "float32")
    assert ct.nn.utils.rnn is ours_rnn and ct.nn.utils.clip_grad_norm_ is not None
    assert po.double().data.dtype == ct.float64 and po.double().batch_sizes is po.batch_sizes
    assert not po.is_cuda and po.to(ct.float64).data.dtype == ct.float64


def _corpus(vocab: int, steps: int, batch: int) -> np.ndarray:
    """20 chunks ``(steps + 1, batch)`` of a learnable text: each word mostly follows from
    the one before (``3 w + 1 mod vocab``), sometimes a random word."""
    rng = np.random.default_rng(7)
    words = [int(w) for w in rng.integers(0, vocab, size=batch)]
    text = []
    for _ in range(20 * (steps + 1)):
        text.append(words)
        words = [
            (3 * w + 1) % vocab if rng.random() > 0.1 else int(rng.integers(vocab)) for w in words
        ]
    return np.array(text).reshape(20, steps + 1, batch)


def test_lstm_language_model_trains_like_pytorch():
    """A tiny word-level LSTM language model, 20 SGD steps from the same initial state_dict
    on the same batches: per-step losses agree to 1e-4 (relative)."""
    torch_ref = _ref()
    vocab, emb, hid, steps, batch = 11, 6, 8, 7, 4

    def build(lib):
        class WordLM(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib.nn.Embedding(vocab, emb)
                self.rnn = lib.nn.LSTM(emb, hid, num_layers=2, dropout=0.0)
                self.head = lib.nn.Linear(hid, vocab)

            def forward(self, ids, state=None):
                out, state = self.rnn(self.embed(ids), state)
                return self.head(out), state

        return WordLM()

    torch_ref.manual_seed(0)
    ref, ours = build(torch_ref), build(ct)
    ours.load_state_dict(_to_ours(ref.state_dict()))
    corpus = _corpus(vocab, steps, batch)
    losses = {}
    for lib, model in ((torch_ref, ref), (ct, ours)):
        opt = lib.optim.SGD(model.parameters(), lr=0.5)
        loss_fn = lib.nn.CrossEntropyLoss()
        state, seen = None, []
        for chunk in corpus:
            ids = lib.tensor(chunk[:-1])
            target = lib.tensor(chunk[1:])
            logits, state = model(ids, state)
            state = tuple(s.detach() for s in state)  # truncated back-propagation
            loss = loss_fn(logits.reshape(-1, vocab), target.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(loss.item())
        losses[lib] = seen
    np.testing.assert_allclose(losses[ct], losses[torch_ref], rtol=1e-4)
    assert losses[ct][-1] < losses[ct][0]


def test_packed_batch_equals_each_sequence_alone_without_pytorch():
    """Each sequence of a packed batch gets what it gets run alone (both directions): the
    recurrence stops at its own length and the reverse direction starts at its last step."""
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    rng = np.random.default_rng(8)
    seqs = [rng.normal(size=(n, 3)).astype("float32") for n in (2, 5, 3)]
    packed = ours_rnn.pack_sequence([ct.tensor(s) for s in seqs], enforce_sorted=False)
    out, (h, c) = lstm(packed)
    padded, lengths = ours_rnn.pad_packed_sequence(out, batch_first=True)
    assert lengths.numpy().tolist() == [2, 5, 3]
    for b, s in enumerate(seqs):
        alone, (h1, c1) = lstm(ct.tensor(s))
        np.testing.assert_allclose(padded.numpy()[b, : len(s)], alone.numpy(), atol=1e-6)
        assert not padded.numpy()[b, len(s) :].any()
        np.testing.assert_allclose(h.numpy()[:, b], h1.numpy(), atol=1e-6)
        np.testing.assert_allclose(c.numpy()[:, b], c1.numpy(), atol=1e-6)
