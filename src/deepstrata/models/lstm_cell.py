"""The LSTM cell written out gate by gate, for readers; numerically the same as `torch.nn.LSTM`.

Problem: a plain recurrent network multiplies its gradient by the same recurrent matrix at
every step, so over long sequences the gradient vanishes or explodes and early inputs are
forgotten. Idea: keep a separate cell state that is changed only additively, through an input
gate (what to write), a forget gate (what to keep) and an output gate (what to show), so
information and gradient can flow across many steps unchanged (Hochreiter & Schmidhuber 1997,
"Long Short-Term Memory"; the forget gate is Gers, Schmidhuber & Cummins 2000).

The parameters are laid out exactly as in `torch.nn.LSTM` (`weight_ih` (4H, I), `weight_hh`
(4H, H), two biases, gate blocks in the order input, forget, cell candidate, output), so the
weights of a trained `nn.LSTM` layer load into `ReadableLSTM` unchanged; tests/models/
test_lstm_cell.py proves the outputs and the gradients equal.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepstrata.nn.input_checks import check_input


class LSTMCell(nn.Module):
    """One time step: (x_t, (h_{t-1}, c_{t-1})) -> (h_t, c_t)."""

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every weight, as torch.nn.LSTM initialises them."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, I); h, c: (N, H) -> new (h, c), each (N, H)."""
        h, c = state
        H = self.hidden_size
        W_i, W_f, W_g, W_o = self.weight_ih.split(H)  # each (H, I)
        U_i, U_f, U_g, U_o = self.weight_hh.split(H)  # each (H, H)
        if self.bias_ih is not None and self.bias_hh is not None:
            b_i, b_f, b_g, b_o = (self.bias_ih + self.bias_hh).split(H)
        else:
            b_i = b_f = b_g = b_o = torch.zeros(H, dtype=x.dtype, device=x.device)

        i = torch.sigmoid(x @ W_i.T + h @ U_i.T + b_i)  # input gate: how much of the candidate to write
        f = torch.sigmoid(x @ W_f.T + h @ U_f.T + b_f)  # forget gate: how much of the old cell to keep
        g = torch.tanh(x @ W_g.T + h @ U_g.T + b_g)  # cell candidate: what could be written
        o = torch.sigmoid(x @ W_o.T + h @ U_o.T + b_o)  # output gate: how much of the cell to show

        c_next = f * c + i * g  # additive update: the gradient path through c has no squashing
        h_next = o * torch.tanh(c_next)
        return h_next, c_next


class ReadableLSTM(nn.Module):
    """A one-layer, one-direction LSTM over a whole sequence, looping `LSTMCell` in Python.

    Same call convention as `torch.nn.LSTM(batch_first=True)`:
    x: (N, T, I), optional (h0, c0) each (1, N, H) -> (outputs (N, T, H), (h_T, c_T) each (1, N, H)).
    Its parameters are named `cell.weight_ih` etc.; `load_from_torch` copies an `nn.LSTM`'s
    `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`.
    """

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True):
        super().__init__()
        self.cell = LSTMCell(input_size, hidden_size, bias=bias)

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        check_input("ReadableLSTM", x, (None, None, self.cell.input_size))
        n, steps, _ = x.shape
        if state is None:
            h = x.new_zeros(n, self.hidden_size)
            c = x.new_zeros(n, self.hidden_size)
        else:
            h, c = state[0][0], state[1][0]  # (1, N, H) -> (N, H)
        outputs = []
        for t in range(steps):
            h, c = self.cell(x[:, t], (h, c))
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h.unsqueeze(0), c.unsqueeze(0))

    @torch.no_grad()
    def load_from_torch(self, lstm: nn.LSTM) -> ReadableLSTM:
        """Copy the first layer of a `torch.nn.LSTM` (same layout, no conversion needed)."""
        if lstm.input_size != self.cell.input_size or lstm.hidden_size != self.hidden_size:
            raise ValueError(
                f"ReadableLSTM.load_from_torch: nn.LSTM has input/hidden size ({lstm.input_size}, {lstm.hidden_size}), "
                f"this cell ({self.cell.input_size}, {self.hidden_size})"
            )
        if lstm.proj_size:
            raise ValueError("ReadableLSTM.load_from_torch: LSTMs with proj_size > 0 are not supported")
        self.cell.weight_ih.copy_(lstm.weight_ih_l0)
        self.cell.weight_hh.copy_(lstm.weight_hh_l0)
        if self.cell.bias_ih is not None and self.cell.bias_hh is not None:
            self.cell.bias_ih.copy_(lstm.bias_ih_l0)
            self.cell.bias_hh.copy_(lstm.bias_hh_l0)
        return self
