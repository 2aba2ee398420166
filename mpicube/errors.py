"""The one exception type that carries a user-facing, one-line reason."""

import difflib
from collections.abc import Iterable


class CubeError(Exception):
    """A problem with the input, the config or the environment, explained in one line.

    The job prints ``str(error)`` (no traceback) and exits non-zero on every rank.
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``", did you mean 'x'?"`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""
