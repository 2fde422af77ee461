"""A torch.nn.LSTM / GRU / RNN and our layer of the same cell loaded from its state_dict, and
the comparison of the two on the same data: outputs, final states, dx, dh0 (dc0) and every
parameter gradient, each asserted close (lstm_problems.assert_close).

Imported only by tests that have torch (pytest.importorskip("torch") first).
"""

import numpy as np
import torch

from cell_problems import CELLS
from lstm_problems import assert_close

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
TORCH_MODULES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def torch_module(cell, I, H, layers, bidirectional, batch_first, dtype, seed):
    """A torch module with weights and two distinct non-zero biases drawn from U(-0.5, 0.5)."""
    torch.manual_seed(seed)
    module = TORCH_MODULES[cell](I, H, layers, batch_first=batch_first,
                                bidirectional=bidirectional, dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    return module


def our_layer(cell, module, dtype):
    """Our layer of the cell with module's sizes, loaded from its state_dict as is."""
    layer = CELLS[cell].layer(module.input_size, module.hidden_size, module.num_layers,
                              batch_first=module.batch_first,
                              bidirectional=module.bidirectional, dtype=dtype)
    layer.load_state_dict(module.state_dict())  # torch tensors, loaded as is
    assert list(layer.params) == [k for k, _ in module.named_parameters()]
    return layer


def twin_stacks(cell, T, B, I, H, layers, bidirectional, batch_first, dtype, seed):
    """The torch module, our layer, seeded input x in the layout batch_first asks for (B = None:
    unbatched, (T, I)), a non-zero initial state hx ((h0, c0) for the LSTM, h0 otherwise), and
    the generator for the rest."""
    module = torch_module(cell, I, H, layers, bidirectional, batch_first, dtype, seed)
    layer = our_layer(cell, module, dtype)
    rng = np.random.default_rng(seed)
    stacks = layers * (2 if bidirectional else 1)
    batch = () if B is None else (B,)
    x = rng.standard_normal((T, I) if B is None else (B, T, I) if batch_first else (T, B, I))
    h0 = rng.uniform(-0.9, 0.9, (stacks, *batch, H))
    hx = (h0, rng.standard_normal((stacks, *batch, H))) if cell == "lstm" else h0
    return module, layer, x, hx, rng


def run_torch(module, x, hx, dy, dstate, dtype, lengths=None):
    """y, the final states and the gradients of sum(y*dy) + the sum of each final state times
    its gradient in dstate."""
    tensor = lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype], requires_grad=True)  # noqa
    xt = tensor(x)
    lstm = isinstance(hx, tuple)
    initial = tuple(tensor(s) for s in hx) if lstm else (tensor(hx),)
    hx_t = initial if lstm else initial[0]
    if lengths is None:
        y, final = module(xt, hx_t)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False)
        out, final = module(packed, hx_t)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=module.batch_first,
            total_length=x.shape[1 if module.batch_first else 0])
    final = final if lstm else (final,)
    weight = lambda a: torch.from_numpy(a).to(TORCH_DTYPE[dtype])  # noqa: E731
    loss = (y * weight(dy)).sum() + sum((s * weight(d)).sum() for s, d in zip(final, dstate))
    loss.backward()
    numpy = lambda t: t.detach().double().numpy()  # noqa: E731
    names = ("h_n", "c_n") if lstm else ("h_n",)
    out = {"y": numpy(y), "dx": numpy(xt.grad)}
    out.update({name: numpy(s) for name, s in zip(names, final)})
    out.update({f"d{name[0]}0": numpy(s.grad) for name, s in zip(names, initial)})
    out.update({f"grad {k}": numpy(p.grad) for k, p in module.named_parameters()})
    return out


def compare(module, layer, x, hx, dtype, rng, lengths=None):
    """Both on the same data; every quantity asserted close; returns ours and torch's, keyed
    y, h_n, (c_n,) dx, dh0, (dc0,) 'grad <parameter>'."""
    lstm = isinstance(hx, tuple)
    state = tuple(s.astype(dtype) for s in hx) if lstm else hx.astype(dtype)
    y, final = layer(x.astype(dtype), state, lengths)
    final = final if lstm else (final,)
    dy = rng.standard_normal(y.shape)
    dstate = [rng.standard_normal(s.shape) for s in final]
    expected = run_torch(module, x, hx, dy, dstate, dtype, lengths)
    layer.zero_grad()
    dx = layer.backward(dy.astype(dtype), *(d.astype(dtype) for d in dstate))
    dhx = layer.dhx if lstm else (layer.dhx,)
    names = ("h_n", "c_n") if lstm else ("h_n",)
    actual = {"y": y, "dx": dx}
    actual.update(dict(zip(names, final)))
    actual.update({f"d{name[0]}0": d for name, d in zip(names, dhx)})
    actual.update({f"grad {k}": v for k, v in layer.grads.items()})
    assert set(actual) == set(expected)
    for name, value in actual.items():
        assert value.dtype == dtype, name
        assert_close(value, expected[name], name)
    return actual, expected
