"""Whether the tests run in CI, where missing shared data is a failure instead of a skip."""
import os

_FALSE = ("", "0", "false", "no", "off")


def in_ci() -> bool:
    """True when ``$CI`` is set to something other than empty, ``0``, ``false``, ``no`` or
    ``off`` (any case): ``CI=false`` and ``CI=`` mean "not CI"."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE
