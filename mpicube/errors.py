"""The one exception type that carries a user-facing, one-line reason."""


class CubeError(Exception):
    """A problem with the input, the config or the environment, explained in one line.

    The job prints ``str(error)`` (no traceback) and exits non-zero on every rank.
    """
