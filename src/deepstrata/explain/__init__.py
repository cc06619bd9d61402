"""Attribution methods: which parts of an input a prediction rests on (see explain/base.py)."""
