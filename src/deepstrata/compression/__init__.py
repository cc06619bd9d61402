"""Compression: smaller or faster models made from a finished run (issue 17).

Problem: a model trained to be accurate is often larger and slower than its use can afford.
Idea: each technique is a component acting on finished runs: knowledge distillation
(`distillation.py`) is a task that trains a small student against a teacher run. The package
sits above `run/` (it opens runs), and registers its components by name like every other.
"""
