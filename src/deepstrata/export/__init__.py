"""Exported models: a finished run's network as an ONNX file or a torch.export program.

Problem: a run's model.safetensors + model.json load only inside deepstrata, with Python and
torch; serving it from ONNX Runtime, a C++ runtime or another language needs a self-contained
graph, and that graph is useless if its user must guess how inputs were scaled or what its
outputs mean.
Idea: trace the model once with `torch.export` (the same program backs both formats), give its
batch dimension a symbolic size, and write the run's model.json (architecture, input spec,
preprocessing, class names, task) into the file's own metadata. `signature.py` says what goes
in and out, `onnx_file.py` and `pt2_file.py` write and read each format (every file kept inside
its folder by `run/safe_paths.py`), and `tools/export.py` is `strata export`.
"""
