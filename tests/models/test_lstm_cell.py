"""The gate-by-gate LSTM equals torch.nn.LSTM given the same weights: outputs, states and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepstrata.models.lstm_cell import LSTMCell, ReadableLSTM


def _pair(input_size: int = 5, hidden_size: int = 7, bias: bool = True) -> tuple[nn.LSTM, ReadableLSTM]:
    torch.manual_seed(0)
    ref = nn.LSTM(input_size, hidden_size, batch_first=True, bias=bias).double()
    ours = ReadableLSTM(input_size, hidden_size, bias=bias).double().load_from_torch(ref)
    return ref, ours


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_equals_torch_lstm(with_state: bool, bias: bool) -> None:
    ref, ours = _pair(bias=bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 11, 5, generator=g, dtype=torch.float64)
    state = (torch.randn(1, 3, 7, generator=g, dtype=torch.float64), torch.randn(1, 3, 7, generator=g, dtype=torch.float64)) if with_state else None
    out_ref, (h_ref, c_ref) = ref(x, state)
    out, (h, c) = ours(x, state)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, c_ref, rtol=1e-12, atol=1e-12)


def test_gradients_equal_torch_lstm() -> None:
    """Gradients w.r.t. the input, the initial state and every weight match nn.LSTM's."""
    ref, ours = _pair()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 9, 5, generator=g, dtype=torch.float64)
    h0 = torch.randn(1, 4, 7, generator=g, dtype=torch.float64)
    c0 = torch.randn(1, 4, 7, generator=g, dtype=torch.float64)
    upstream = torch.randn(4, 9, 7, generator=g, dtype=torch.float64)

    grads = []
    for model in (ref, ours):
        xi, hi, ci = (t.clone().requires_grad_(True) for t in (x, h0, c0))
        out, (h, c) = model(xi, (hi, ci))
        # A loss touching every output and both final states.
        ((out * upstream).sum() + h.square().sum() + c.sin().sum()).backward()
        grads.append([xi.grad, hi.grad, ci.grad])
    ref_params = dict(ref.named_parameters())
    for ours_name, ref_name in [
        ("cell.weight_ih", "weight_ih_l0"),
        ("cell.weight_hh", "weight_hh_l0"),
        ("cell.bias_ih", "bias_ih_l0"),
        ("cell.bias_hh", "bias_hh_l0"),
    ]:
        torch.testing.assert_close(dict(ours.named_parameters())[ours_name].grad, ref_params[ref_name].grad, rtol=1e-10, atol=1e-12)
    for ours_g, ref_g in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours_g, ref_g, rtol=1e-10, atol=1e-12)


def test_forget_gate_keeps_the_cell_when_open() -> None:
    """With the forget gate saturated open and the input gate shut, the cell state is carried unchanged."""
    cell = LSTMCell(2, 3)
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih.copy_(torch.cat([torch.full((3,), -50.0), torch.full((3,), 50.0), torch.zeros(3), torch.zeros(3)]))
    c = torch.tensor([[0.3, -1.2, 2.0]])
    h, c_next = cell(torch.randn(1, 2), (torch.zeros(1, 3), c))
    torch.testing.assert_close(c_next, c)
    torch.testing.assert_close(h, 0.5 * torch.tanh(c))  # output gate sigmoid(0) = 0.5


def test_shape_error_names_the_layer() -> None:
    _, ours = _pair()
    with pytest.raises(ValueError, match=r"ReadableLSTM expected \(N, \*, 5\) input, got \(3, 4\)"):
        ours(torch.zeros(3, 4, dtype=torch.float64))
