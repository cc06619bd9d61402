"""Int8 quantization of a trained model: weights (and activations) as 8-bit integers with scales.

Problem: a float32 model stores 4 bytes per weight and runs float kernels; storing each weight
as round(w / s) in [-128, 127] with one float scale s per output channel takes a quarter of the
bytes, and int8 kernels can run faster, but only if the rounding does not move predictions.
Idea (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference"; Krishnamoorthi 2018, "Quantizing deep convolutional
networks for efficient inference: A whitepaper"), on torchao 0.18's two APIs:
- PT2E (`torch.export` graph, `X86InductorQuantizer`): the graph gets quantize/dequantize
  pairs around every supported op; weights are int8 per output channel ahead of time.
  `static`: activation scales fixed from calibration batches (`prepare_pt2e`, observers,
  `convert_pt2e`); `dynamic`: activation scales computed per batch at run time (no data
  needed; Linear-heavy models); `qat`: fake quantization in the training graph
  (`prepare_qat_pt2e`) so that fine-tuning learns weights that survive rounding.
  `lower_x86` then rewrites each dequantize -> op -> quantize pattern into one oneDNN int8
  kernel (`onednn.qconv_pointwise`, `qlinear_pointwise`): torchao's
  `lower_pt2e_quantized_to_x86`, with the batch size kept free.
- `quantize_` (`Int8WeightOnlyConfig`): each Linear weight becomes an int8 tensor subclass
  with per-row scales, dequantized inside the matrix product; activations stay float.

Importing torchao on a CPU-only machine logs "Failed to load ..._C_mxfp8 / _C_cutlass" for
its CUDA extensions: `torchao()` imports it with that logger held at ERROR.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import operator
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from deepstrata.errors import UserError

Method = Literal["dynamic", "static", "qat", "weight_only", "ort"]
PT2E_METHODS = ("dynamic", "static", "qat")
# Graph arguments that hold an activation's scale and zero point as Python numbers (static and
# QAT graphs); dynamic graphs compute them per batch (`choose_qparams`) and hold none.
_PER_TENSOR = ("quantize_per_tensor", "dequantize_per_tensor")


@contextlib.contextmanager
def quiet_torchao() -> Iterator[None]:
    """torchao's import-time logs (CUDA extensions absent on CPU) and PT2E's warnings, held back."""
    from deepstrata.export.program import quiet

    # torch's pytree logs a deprecation when torchao registers an Enum as a constant
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with quiet(), warnings.catch_warnings():
            # observers left empty on a rebuild (their values are loaded next) warn once each
            warnings.filterwarnings("ignore", message=".*must run observer before calling calculate_qparams.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="torchao")
            warnings.filterwarnings("ignore", category=UserWarning, module="torch.ao")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def torchao() -> Any:
    """The torchao module, imported quietly (heavy: only when a quantizer is used)."""
    with quiet_torchao():
        import torchao as ao
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    return ao


# --------------------------------------------------------------------------------------
# PT2E: export, quantize, lower.
# --------------------------------------------------------------------------------------


def example_inputs(inputs: Sequence[torch.Tensor], rows: int = 2) -> tuple[torch.Tensor, ...]:
    """The first `rows` rows of each model input (what torch.export traces; the batch stays free)."""
    if not inputs or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in inputs):
        raise UserError("quantize needs a model fed tensors with a batch dimension (images, token ids, feature rows)")
    from deepstrata.export.program import tile

    return tuple(t.contiguous() for t in tile(inputs, rows))


def export_graph(model: nn.Module, example: tuple[torch.Tensor, ...], *, name: str = "the model") -> torch.fx.GraphModule:
    """`model` as an ATen graph from torch.export, dimension 0 of every input symbolic."""
    batch = torch.export.Dim("batch", min=1)
    try:
        with quiet_torchao():
            return torch.export.export(model, example, dynamic_shapes=tuple({0: batch} for _ in example), strict=False).module()
    except Exception as err:  # noqa: BLE001 - torch.export raises many kinds; one line for the user
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise UserError(
            f"quantize: torch.export could not trace {name} with a free batch size ({first[:200]}); "
            "PT2E methods (dynamic, static, qat) need an exportable model: try --method weight_only or --method ort"
        ) from None


def x86_quantizer(*, dynamic: bool = False, qat: bool = False) -> Any:
    """torchao's X86InductorQuantizer: int8 per-channel weights, uint8 activations, every supported op."""
    torchao()
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    config = xiq.get_default_x86_inductor_quantization_config(is_dynamic=dynamic, is_qat=qat)
    return xiq.X86InductorQuantizer().set_global(config)


def prepare(model: nn.Module, example: tuple[torch.Tensor, ...], method: str, *, name: str = "the model") -> torch.fx.GraphModule:
    """The exported graph with observers (static, dynamic) or fake quantization (qat) inserted.

    QAT traces the model in training mode (BatchNorm updates its statistics while fine-tuning);
    the other methods trace it in eval mode.
    """
    torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    model = copy.deepcopy(model).train(method == "qat")
    graph = export_graph(model, example, name=name)
    unshare_sources(graph)
    quantizer = x86_quantizer(dynamic=method == "dynamic", qat=method == "qat")
    with quiet_torchao():
        return prepare_qat_pt2e(graph, quantizer) if method == "qat" else prepare_pt2e(graph, quantizer)


def unshare_sources(graph: torch.fx.GraphModule) -> None:
    """Give each call of a module used several times (a ResNet block's one ReLU) its own source.

    The x86 quantizer finds conv -> add -> relu by the module each node came from (the
    innermost `nn_module_stack` entry of a non-strict export) and refuses a module whose nodes
    have several outputs ("Input partition has more than one output node"); a module called
    twice is two partitions, so each of its nodes gets a `source_fn_stack` of its own.
    """
    from collections import defaultdict

    groups: dict[str, list[torch.fx.Node]] = defaultdict(list)
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op == "call_function" and stack and node.meta.get("source_fn_stack") is None:
            groups[list(stack.values())[-1][0]].append(node)
    for fqn, nodes in groups.items():
        members = set(nodes)
        if sum(any(user not in members for user in n.users) for n in nodes) > 1:
            for n in nodes:
                module_type = list(n.meta["nn_module_stack"].values())[-1][1]
                if isinstance(module_type, str):  # recorded as "torch.nn.modules.activation.ReLU"
                    import pydoc

                    module_type = pydoc.locate(module_type)
                if isinstance(module_type, type):
                    n.meta["source_fn_stack"] = [(f"{fqn}__{n.name}", module_type)]


def observe(prepared: torch.fx.GraphModule, batches: Iterable[tuple[torch.Tensor, ...]]) -> int:
    """Run calibration batches through the observers; returns how many were run."""
    n = 0
    with torch.no_grad(), quiet_torchao():
        for inputs in batches:
            prepared(*inputs)
            n += 1
    return n


def convert(prepared: torch.fx.GraphModule, method: str) -> torch.fx.GraphModule:
    """The prepared graph with int8 weights folded in and the scales its observers hold.

    Only the tensors the converted graph reads are kept (the float weights go), so the
    module's state is the int8 weights, their scales and the float biases.
    """
    torchao()
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with quiet_torchao():
        if method == "qat":
            move_exported_model_to_eval(prepared)
        graph = convert_pt2e(prepared)
    _drop_unread_tensors(graph)
    return graph


def lower_x86(graph: torch.fx.GraphModule, example: tuple[torch.Tensor, ...]) -> torch.fx.GraphModule:
    """The converted graph with each dequantize -> conv/linear -> quantize fused into one oneDNN int8 op.

    torchao's `lower_pt2e_quantized_to_x86` re-exports with a fixed batch size; this is the same
    pass (inductor's freezing patterns, then constant folding) with the batch left free, and
    `view` turned into `reshape` (oneDNN may return channels-last outputs that a view cannot read).
    """
    from torch._inductor.constant_folding import constant_fold
    from torch._inductor.fx_passes.freezing_patterns import freezing_passes

    decompositions = torch.export.default_decompositions()
    for op in list(decompositions):
        if not torch._export.utils._is_cia_op(op):  # post-autograd: composite ops only
            del decompositions[op]
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), quiet_torchao():
        exported = torch.export.export(graph, example, dynamic_shapes=tuple({0: batch} for _ in example), strict=False)
        lowered = exported.run_decompositions(decompositions).module()
        for node in list(lowered.graph.nodes):
            if node.target is torch.ops.aten.t.default:
                with lowered.graph.inserting_before(node):
                    permuted = lowered.graph.call_function(torch.ops.aten.permute.default, args=(node.args[0], [1, 0]))
                node.replace_all_uses_with(permuted)
                lowered.graph.erase_node(node)
        lowered.recompile()
        freezing_passes(lowered, example)
        constant_fold(lowered)
        for node in lowered.graph.nodes:
            if node.target is torch.ops.aten.view.default:
                node.target = torch.ops.aten.reshape.default
        lowered.recompile()
    return lowered


# --------------------------------------------------------------------------------------
# A converted graph's numbers, read and written (what model.safetensors holds).
# --------------------------------------------------------------------------------------


def graph_tensors(graph: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """Every tensor the graph reads (`get_attr`), by its dotted name: int8 weights, scales, biases."""
    out = {}
    for node in graph.graph.nodes:
        if node.op == "get_attr":
            value = operator.attrgetter(node.target)(graph)
            if isinstance(value, torch.Tensor):
                out[str(node.target)] = value
    return out


def set_graph_tensors(graph: torch.fx.GraphModule, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved tensors into the graph's own (same names, shapes and dtypes; checked by the loader)."""
    own = graph_tensors(graph)
    with torch.no_grad():
        for name, value in tensors.items():
            own[name].copy_(value)


def literal_qparams(graph: torch.fx.GraphModule) -> list[float]:
    """The scale and zero point of every per-tensor (de)quantize node, in graph order (static, qat)."""
    values: list[float] = []
    for node in _per_tensor_nodes(graph):
        values += [float(node.args[1]), float(node.args[2])]
    return values


def set_literal_qparams(graph: torch.fx.GraphModule, values: Sequence[float]) -> None:
    """Write saved scales and zero points back into the graph's per-tensor (de)quantize nodes."""
    nodes = _per_tensor_nodes(graph)
    if len(values) != 2 * len(nodes):
        raise UserError(f"the saved model has {len(values) // 2} activation scales, its graph {len(nodes)}; the files do not belong together: quantize the parent again")
    for k, node in enumerate(nodes):
        args = list(node.args)
        args[1], args[2] = float(values[2 * k]), int(values[2 * k + 1])
        node.args = tuple(args)
    graph.recompile()


def _per_tensor_nodes(graph: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [
        n
        for n in graph.graph.nodes
        if n.op == "call_function" and getattr(n.target, "__name__", "").split(".")[0] in _PER_TENSOR and not isinstance(n.args[1], torch.fx.Node)
    ]


def _drop_unread_tensors(graph: torch.fx.GraphModule) -> None:
    """Delete the parameters and buffers the graph no longer reads (the float weights it replaced)."""
    read = set(graph_tensors(graph))
    for name in [n for n, _ in graph.named_parameters()] + [n for n, _ in graph.named_buffers()]:
        if name not in read:
            owner_name, _, attr = name.rpartition(".")
            owner = graph.get_submodule(owner_name) if owner_name else graph
            delattr(owner, attr)


# --------------------------------------------------------------------------------------
# Weight-only int8 (torchao quantize_).
# --------------------------------------------------------------------------------------


def weight_only_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose Linear weights are torchao int8 tensors (per-row scales); the original is untouched."""
    torchao()
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantized = copy.deepcopy(model)
    if not any(isinstance(m, nn.Linear) for m in quantized.modules()):
        raise UserError("quantize --method weight_only covers Linear layers and this model has none; try --method static (convolutions) or --method ort")
    with quiet_torchao():
        quantize_(quantized, Int8WeightOnlyConfig(set_inductor_config=False))  # no global inductor settings changed
    return quantized.eval()


def quantized_weight_names(model: nn.Module) -> dict[str, list[str]]:
    """parameter name -> the plain tensors its torchao subclass holds (qdata, scale, zero_point)."""
    out = {}
    for name, p in model.named_parameters():
        flatten = getattr(p, "__tensor_flatten__", None)
        if flatten is not None and type(p) is not nn.Parameter:
            out[name] = list(flatten()[0])
    return out


def agreement(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Share of rows (or positions, for (N, T, V) logits) whose argmax is the same in both."""
    if reference.shape != other.shape:
        raise UserError(f"the quantized model's outputs {tuple(other.shape)} do not match the float model's {tuple(reference.shape)}")
    return float((reference.argmax(-1) == other.argmax(-1)).float().mean())


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's state written as safetensors (what model.safetensors will take on disk)."""
    from safetensors.torch import save

    return len(save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, metadata={"format": "pt"}))  # as run/artifact.py writes it
