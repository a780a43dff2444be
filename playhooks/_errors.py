"""The exceptions playhooks raises.

    PlayhooksError
     +-- PayloadError (also a ValueError)     bad input to a hook or a model
     +-- ConfigurationError (also a ValueError) bad settings given to a Tracker

Delivery problems are never exceptions: they are outcomes, counted in ``Tracker.stats()``.
"""

from typing import Any

_MAX_VALUE_REPR = 60


class PlayhooksError(Exception):
    """The root of every exception playhooks raises."""


class PayloadError(ValueError, PlayhooksError):
    """A payload, or a hook argument, breaks a rule.

    Attributes:
        field: the Python name of the offending field (``"creator_key"``, ``"body"``).
        rule: what the field must be, in words.
    """

    def __init__(self, field: str, rule: str, value: Any = None, *, show_value: bool = True):
        self.field = field
        self.rule = rule
        message = f"{field}: {rule}"
        if show_value:
            message += f" (got {safe_repr(value)})"
        super().__init__(message)


class ConfigurationError(ValueError, PlayhooksError):
    """A Tracker or a sink was given settings it cannot work with."""


def safe_repr(value: Any, limit: int = _MAX_VALUE_REPR) -> str:
    """``repr(value)``, shortened, that never raises: the value may be hostile (a ``__repr__`` that
    raises, an int too long to print, a lone surrogate that no log file can encode)."""
    try:
        text = repr(value)
    except Exception as error:
        text = f"<{_type_name(value)} whose repr raised {_type_name(error)}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _type_name(value: Any) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:  # a metaclass can make even this raise
        return "object"
