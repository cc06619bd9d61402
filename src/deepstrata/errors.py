"""Errors meant for people.

Problem: a stack trace tells a user where the code broke, not what they did wrong.
Idea: every mistake a user can make raises a `UserError` whose message names the bad value,
what was expected and what to do; the CLI prints it as one line and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeepstrataError(Exception):
    """Base class of every error deepstrata raises on purpose."""

    exit_code = 1
    label = "error: "  # how the CLI's one line starts; an interrupt is not an error of the user's


class UserError(DeepstrataError, ValueError):
    """Bad input from the user: a recipe, an override, a path, a name. The CLI exits with 2."""

    exit_code = 2


class ConfigError(UserError):
    """A recipe or override does not validate."""


class DataError(UserError):
    """A data file or directory is missing, malformed or inconsistent."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return "; did you mean X?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
