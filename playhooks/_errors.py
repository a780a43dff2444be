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
            message += f" (got {_short_repr(value)})"
        super().__init__(message)


class ConfigurationError(ValueError, PlayhooksError):
    """A Tracker or a sink was given settings it cannot work with."""


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_REPR:
        text = text[: _MAX_VALUE_REPR - 3] + "..."
    return text
