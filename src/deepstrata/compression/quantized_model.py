"""A trained model quantized to int8, saved and loaded like any model: int8 tensors + scales in safetensors.

Problem: a quantized model is a graph or a module full of tensor subclasses, and the usual ways
to save one (`torch.save`, `torch.export.save`) pickle Python objects; a derived run must load
from model.json + model.safetensors alone, with no calibration redone and the same outputs.
Idea: the structure of a quantized model is a pure function of the float architecture and the
method, and only its numbers came from data. So model.json names the base architecture, the
method and an example input shape; loading rebuilds the base (random weights), replays the same
quantization steps WITHOUT data (observers left empty), which gives the same graph with
placeholder numbers, then copies the saved numbers in:
- `QuantizedProgram` (PT2E dynamic, static, qat; compression/quantization.py): the converted
  graph's int8 weights, per-channel scales and float biases are its buffers; the per-tensor
  activation scales and zero points, Python numbers inside the graph, are one float64 buffer
  `activation_qparams` written back into the graph's nodes on load. The graph that runs is
  that graph lowered to oneDNN int8 kernels (`lowered=True`), rebuilt from it on every load.
- `QuantizedWeights` (weight_only): the base model with torchao int8 weight subclasses; each is
  saved as its plain parts (`<name>.qdata` int8, `.scale`, `.zero_point`) and copied back into
  the rebuilt subclass.
- `OnnxProgram` (ort): an int8 ONNX file (export/onnx_int8.py) held as one uint8 buffer,
  run by an ONNX Runtime session made from those bytes on load.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from deepstrata.registry import create, register_model

PT2E = ("dynamic", "static", "qat")
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


class QuantizedProgram(nn.Module):
    """A PT2E-converted int8 graph (`program`, its tensors are this module's state), run lowered or as is.

    The graph is an inference graph: `train()`/`eval()` only set the flag (an exported graph
    cannot switch BatchNorm or dropout modes).
    """

    def __init__(self, program: torch.fx.GraphModule, example: tuple[torch.Tensor, ...], *, lowered: bool):
        from deepstrata.compression.quantization import literal_qparams

        super().__init__()
        self.program = program
        self.lowered = lowered
        self.register_buffer("activation_qparams", torch.tensor(literal_qparams(program), dtype=torch.float64))
        self.__dict__["_example"] = example
        self.__dict__["_runtime"] = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Write `activation_qparams` into the graph and rebuild the graph that runs (after a load)."""
        from deepstrata.compression.quantization import lower_x86, set_literal_qparams

        set_literal_qparams(self.program, self.activation_qparams.tolist())
        self.__dict__["_runtime"] = lower_x86(self.program, self._example) if self.lowered else self.program

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self._runtime(*inputs)

    def train(self, mode: bool = True) -> QuantizedProgram:
        self.training = mode
        return self


class QuantizedWeights(nn.Module):
    """`model` with torchao int8 weight subclasses; its state holds each subclass as plain tensors."""

    def __init__(self, model: nn.Module):
        from deepstrata.compression.quantization import quantized_weight_names

        super().__init__()
        self.model = model
        for name, parts in quantized_weight_names(model).items():
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            owner._register_state_dict_hook(_flatten_hook(attr, parts))
            owner._register_load_state_dict_pre_hook(_unflatten_hook(attr, parts), with_module=True)

    def forward(self, *inputs: Any) -> torch.Tensor:
        return self.model(*inputs)


def _flatten_hook(attr: str, parts: list[str]) -> Any:
    def hook(module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
        subclass = state.pop(prefix + attr)
        for part in parts:
            state[f"{prefix}{attr}.{part}"] = getattr(subclass, part)

    return hook


def _unflatten_hook(attr: str, parts: list[str]) -> Any:
    def hook(module: nn.Module, state: dict[str, Any], prefix: str, *_args: Any) -> None:
        own = getattr(module, attr)
        keys = [f"{prefix}{attr}.{part}" for part in parts]
        if all(k in state for k in keys):
            with torch.no_grad():
                for part, key in zip(parts, keys):
                    getattr(own, part).copy_(state.pop(key))
            state[prefix + attr] = own  # the parts are in; the module's own copy finds its weight

    return hook


class OnnxProgram(nn.Module):
    """An ONNX file (bytes in the `onnx` uint8 buffer) run by ONNX Runtime; torch tensors in and out.

    The session is made when the bytes are loaded, with the thread count torch has then; it
    runs on CPU, without gradients.
    """

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("onnx", torch.zeros(size, dtype=torch.uint8))
        self.__dict__["_session"] = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    @classmethod
    def from_bytes(cls, data: bytes) -> OnnxProgram:
        module = cls(len(data))
        module.onnx.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        module.refresh()
        return module

    def refresh(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        self.__dict__["_session"] = ort.InferenceSession(self.onnx.numpy().tobytes(), options, providers=["CPUExecutionProvider"])
        self.__dict__["_names"] = [i.name for i in self._session.get_inputs()]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: t.detach().cpu().contiguous().numpy() for name, t in zip(self._names, inputs)}
        return torch.from_numpy(self._session.run(None, feed)[0])


@register_model(
    "quantized",
    example={
        "input_shape": [1, 8, 8],
        "kwargs": {"base": {"architecture": "small_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}}, "method": "static", "example_shape": [1, 8, 8], "lowered": False},
    },
)
def quantized(
    *,
    base: dict[str, Any],
    method: Literal["dynamic", "static", "qat", "weight_only", "ort"],
    example_shape: list[int],
    example_dtype: Literal["float32", "int64"] = "float32",
    lowered: bool = True,
    onnx_bytes: int = 0,
) -> nn.Module:
    """An int8 model made by `strata quantize` (rebuilt for loading; its numbers come from model.safetensors).

    base: {"architecture": registered model name, "kwargs": its arguments} (the parent's model.json).
    method: the quantize method that made it (dynamic, static, qat: PT2E graphs; weight_only; ort).
    example_shape: one input's shape without the batch dimension (what the graph is traced on).
    example_dtype: that input's dtype (int64 for token ids).
    lowered: run the PT2E graph fused into oneDNN int8 kernels (False: quantize/dequantize + float ops).
    onnx_bytes: size of the int8 ONNX file (ort).
    """
    if torch.empty(()).device.type == "meta":
        raise NotImplementedError("a quantized model is built for real: its graph is traced from real tensors")
    if method == "ort":
        return OnnxProgram(onnx_bytes)
    from deepstrata.compression.quantization import convert, observe, prepare, weight_only_int8

    model = create("model", str(base["architecture"]), **dict(base.get("kwargs", {}))).eval()
    if method == "weight_only":
        return QuantizedWeights(weight_only_int8(model))
    example = (torch.zeros((2, *example_shape), dtype=_DTYPES[example_dtype]),)
    for module in model.modules():  # a zero-initialised BatchNorm scale (zero_init_residual) makes
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:  # QAT's conv-BN fold 0/0
            nn.init.ones_(module.weight)  # placeholders: BatchNorm is folded into the saved weights
    prepared = prepare(model, example, method)
    observe(prepared, [example])  # placeholder ranges: the saved ones are loaded over them
    return QuantizedProgram(convert(prepared, method), example, lowered=lowered)
