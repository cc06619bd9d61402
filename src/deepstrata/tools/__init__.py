"""Tools that act on a finished run: analyses (write under RUN/tools/) and transformations (write a new run).

Problem: what happens to a model after training (profiling, pruning, calibration, export) needs the
same run pieces each time and must never corrupt the run it reads.
Idea: one registered function per tool, `@register_tool("name", kind=...)`, applied by
`tools.base.apply_tool` and exposed as `strata <name> RUN_DIR`; see `tools/base.py` for the contract.
"""
