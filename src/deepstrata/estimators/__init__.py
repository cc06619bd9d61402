"""Gradient estimators for expectations: score function (REINFORCE), pathwise, Gumbel-softmax."""
