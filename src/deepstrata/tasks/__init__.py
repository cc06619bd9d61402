"""Tasks: what a batch means for one kind of problem (classification, regression, ...)."""

from deepstrata.tasks.base import StepOutput, Task

__all__ = ["StepOutput", "Task"]
