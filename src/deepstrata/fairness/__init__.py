"""Fairness: how a classifier's decisions differ between groups of people, and what narrows the gap.

Problem: an accurate model can still select one group far more often than another, or make its
errors mostly on one group; an audit and the mitigations need one set of definitions.
Idea: `metrics` measures (per-group rates, the gap measures fairlearn defines, bootstrap
intervals) on plain arrays of labels, predictions and group names; `groups` finds a group's
column among a tabular model's inputs; `reweighing` and `thresholds` are the arithmetic of two
mitigations, kept free of models and runs so that tasks and tools above can share them.
"""
