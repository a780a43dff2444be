"""From hook arguments to validated models: the same code for the strict caller and the worker.

Each character event carries a client event id in its ``Body``, under ``playhooks_event_id``.
PlayFab has no idempotency key for this call, so a retry after an ambiguous failure (a timeout
after the request was sent) can write an event twice; the id lets whoever reads PlayStream remove
such duplicates. It goes in ``Body`` rather than ``CustomTags`` because ``Body`` is the part of the
event PlayStream stores and exports with it, where deduplication happens.
"""

import os
import random
from datetime import datetime, timezone
from typing import Any, Optional

import attrs

from . import _models
from ._errors import PayloadError
from ._session import Segment, Session

EVENT_ID_KEY = "playhooks_event_id"
RECOVERED_KEY = "playhooks_recovered"  # in a session's metadata: closed from its last checkpoint after a crash

# Event ids: 128 random bits, from a generator seeded by the system once (uuid4 asks the system
# for each, a quarter of an event's cost on the worker). A forked child draws a fresh seed.
_event_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_event_ids.seed)


def event_model(
    event_name: Any,
    character_id: Any,
    playfab_id: Any,
    body: Any,
    timestamp: Any,
    custom_tags: Any,
    session: Any,
    called_at: float,
) -> "_models.CharacterEvent":
    """Build the event a hook call describes, filling ids from its session.

    Args:
        called_at: wall-clock seconds when the hook was called: the event's ``Timestamp`` unless
            the caller gave one. It is always sent, so an event delivered late (after an outage)
            keeps the time it happened rather than the time it arrived.

    Raises:
        PayloadError: naming the first field that breaks a rule.
    """
    if session is not None and type(session) is not Session:
        raise PayloadError("session", "must be a Session returned by on_session_start", session)
    defaults = session.options if session is not None else None
    if character_id is None and defaults is not None:
        character_id = defaults.character_id
    if playfab_id is None and defaults is not None:
        playfab_id = defaults.playfab_id
    if character_id is None:
        raise _missing("character_id")
    if playfab_id is None:
        raise _missing("playfab_id")
    body = _with_event_id({} if body is None else body)
    if timestamp is None:
        timestamp = datetime.fromtimestamp(called_at, timezone.utc)
    return _models.CharacterEvent(
        character_id=character_id,
        event_name=event_name,
        playfab_id=playfab_id,
        body=body,
        timestamp=timestamp,
        custom_tags=custom_tags,
    )


def _missing(name: str) -> PayloadError:
    return PayloadError(name, f"is required: pass it, or start the session with {name}= and pass session=", show_value=False)


def _with_event_id(body: Any) -> Any:
    """The body with a new event id in it, for the model to copy and check with the rest.

    A plain dict (what the hook queues) is copied shallowly here: the model's converter makes the
    deep, checked copy, once. Anything else is the caller's mapping, read once here, whole.
    """
    if type(body) is dict:
        try:
            if EVENT_ID_KEY not in body:
                return {**body, EVENT_ID_KEY: "%032x" % _event_ids.getrandbits(128)}
        except Exception:  # a key whose __eq__ raises: the copy below names it
            pass
    body = _models.copy_json(body, attrs.fields(_models.CharacterEvent).body)  # a broken body is told first
    if EVENT_ID_KEY in body:
        raise PayloadError("body", f"must not use the key {EVENT_ID_KEY!r}: playhooks puts the event id there", show_value=False)
    body[EVENT_ID_KEY] = "%032x" % _event_ids.getrandbits(128)
    return body


def session_model(segment: Segment) -> Optional["_models.PlaytimeSession"]:
    """The PlayCamp session a finished segment makes, or None when it is too short to send."""
    try:
        duration = segment.duration_seconds
        ended_at = segment.ended_at
    except (OverflowError, ValueError):  # a clock that jumped by centuries, or a NaN from a custom clock
        raise PayloadError("duration_seconds", "must come from a session that ends before the year 10000", show_value=False) from None
    if duration < 1:
        return None
    options = segment.options
    return _models.PlaytimeSession(
        session_id=segment.session_id,
        user_id=options.user_id,
        duration_seconds=duration,
        started_at=segment.started_at,
        ended_at=ended_at,
        campaign_id=options.campaign_id,
        creator_key=options.creator_key,
        platform=options.platform,
        metadata=options.metadata,
        callback_id=options.callback_id,
        is_test=options.is_test,
    )
