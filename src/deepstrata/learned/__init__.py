"""Objects that learn from data: calibrators, OOD scorers, drift detectors, quantization observers.

Problem: tools fit small things on data (a temperature, class means, a drift reference) that must
behave alike and be saved with a run without pickles. Idea: every one subclasses `Learned`
(scikit-learn's contract: `__init__` stores arguments, `fit` learns `_` attributes and returns
self) and registers with `@register_learned("name")`; `strata list learned` lists them and
`load_learned(path)` rebuilds any of them from safetensors + JSON.
"""

from deepstrata.learned.base import Example, Learned, NotFittedError, load_learned

__all__ = ["Example", "Learned", "NotFittedError", "load_learned"]
