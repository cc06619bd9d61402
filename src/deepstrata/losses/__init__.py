"""Loss functions by name; each docstring says which task it fits."""
