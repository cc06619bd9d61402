"""Compression: smaller or faster models made from a finished run (issue 17).

Problem: a model trained to be accurate is often larger and slower than its use can afford.
Idea: each technique is a component acting on finished runs, one module each, and the tools in
`tools/` (prune, prune_channels, quantize, pareto) write its result as a derived run:
- distillation: `distillation.py` (soft targets, a task training a student against a teacher
  run), `fitnets.py` (hints on intermediate features), `lm_distillation.py` (per-token soft
  targets for language models);
- pruning: `pruning.py` (magnitude masks, the cubic schedule), `gradual_pruning.py` (the callback
  that prunes on that schedule while training), `lottery.py` (rewinding to the initial or an
  early state), `channel_pruning.py` (whole channels removed and the model rebuilt narrower);
- quantization: `quantization.py` (int8 through torchao's PT2E and weight-only paths, and ONNX
  Runtime).
The package sits above `run/` (it opens runs) and registers its components by name like every
other.
"""
