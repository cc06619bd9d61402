"""Adversarial attacks on any classifier `model(x) -> logits`, by name (`strata list attacks`).

Each module holds one attack registered with `@register_attack("name")`; `base.py` states the
threat model they share (an eps-ball in raw pixel units inside the valid input box).
"""
