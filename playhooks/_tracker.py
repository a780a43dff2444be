"""The Tracker: the hooks a game calls, and the only part of playhooks that runs on its thread.

A hook does the least it can: find the session, copy the arguments into a tuple and append it to
a queue. No I/O, no JSON, no validation of the payload (unless ``strict``): the worker does the rest.
"""

import atexit
import os
import threading
import time
import weakref
import collections.abc
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._clock import steady_wall
from ._errors import ConfigurationError, PayloadError, PlayhooksError
from ._pipeline import EVENT_MODEL, RAW_EVENT, SEGMENT, Pipeline
from ._services import DeliverySink
from ._session import Segment, Session, SessionOptions
from ._settings import Settings, spool_folders
from ._sinks import EVENT, CallbackSink, Sink
from ._stats import INVALID_EVENT, INVALID_SESSION, QUEUE_FULL, TRACKER_CLOSED, Counters
from ._worker import BURST, Worker, new_queue

if TYPE_CHECKING:  # the spool and the sender load when a tracker has delivery sinks, not with playhooks
    from ._sender import Sender
    from ._spool import Spool


SinkLike = Union[Sink, Callable[..., Any]]
EXIT_TIMEOUT = 2.0  # the most interpreter exit waits for all trackers together
STOP_MARGIN = 0.5  # close() stops new requests this long before its deadline (a quarter of a short one)

# Trackers still open, closed at exit: the worker and sender are daemon threads, so without this
# what a game queued in its last moments would never reach the spool.
_open_trackers: "weakref.WeakSet[Tracker]" = weakref.WeakSet()


def _close_all_at_exit() -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    for tracker in list(_open_trackers):
        tracker.close(max(0.0, deadline - time.monotonic()))


atexit.register(_close_all_at_exit)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _deep_copy(value: Any) -> Any:
    """Lists and mappings copied all the way down; anything else is left for the worker to judge."""
    if isinstance(value, collections.abc.Mapping):  # typing.Mapping's check is five times slower
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(item) for item in value]
    return value


class Tracker:
    """Tracks play sessions and character events and hands their payloads to sinks.

    Args:
        sinks: where payloads go: ``Sink`` instances, or callables taking a ``Payload``.
        relay_url, ingest_key: relay mode, for a game given to players: sessions and events go to
            the studio's relay (``playhooks relay``) with the game's write-only ingest key, and
            no server secret exists in the game. Both or neither.
        strict: raise ``PayloadError`` on bad input instead of logging and counting it.
        idle_timeout, flush_interval, max_queue, clock: see ``playhooks.Settings``.

    Raises:
        ConfigurationError: a setting or a sink is not usable.

    A tracker holds any number of open sessions, at most one per user. With exactly one open
    (a single-player game), hooks called with ``session=None`` apply to it.
    """

    def __init__(
        self,
        sinks: Iterable[SinkLike] = (),
        *,
        relay_url: Optional[str] = None,
        ingest_key: Optional[str] = None,
        **settings: Any,
    ) -> None:
        try:
            self.settings = Settings(**settings)
        except TypeError as error:  # an unknown keyword
            raise ConfigurationError(str(error)) from None
        if (relay_url is None) != (ingest_key is None):
            raise ConfigurationError("relay_url and ingest_key go together: give both for relay mode, or neither")
        if relay_url is not None:
            from ._services import relay_sinks

            sinks = [*sinks, *relay_sinks(relay_url, ingest_key)]  # type: ignore[arg-type]
        self.sinks: List[Sink] = []
        for sink in sinks:
            if isinstance(sink, Sink):
                self.sinks.append(sink)
            elif callable(sink):
                self.sinks.append(CallbackSink(sink))
            else:
                raise ConfigurationError(f"sinks: each must be a Sink or a callable (got {sink!r})")
        names = [sink.name for sink in self.sinks if isinstance(sink, DeliverySink)]
        if len(names) != len(set(names)):
            raise ConfigurationError(f"sinks: delivery sinks need distinct names (got {names}): pass name=")
        self._clock = self.settings.clock
        self._wall = self._clock.wall
        self._strict = self.settings.strict
        self._sync = self.settings.durability == "sync"
        self._direct = not (self._strict or self._sync)  # the hot path: queue and return
        self._max_queue = self.settings.max_queue
        self._closed = False
        self._counters = Counters()
        self._start()
        if hasattr(os, "register_at_fork"):
            reference = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _restart_in_child(reference))
        _open_trackers.add(self)

    def _start(self) -> None:
        """Make the state and threads of a running tracker (again, in a forked child)."""
        self._lock = threading.Lock()
        self._open: Dict[str, Session] = {}
        self._sole: Optional[Session] = None  # the open session when there is exactly one
        self._queue = new_queue()
        self._spool: "Optional[Spool]" = None
        self._sender: "Optional[Sender]" = None
        now = steady_wall()
        delivery = [sink for sink in self.sinks if isinstance(sink, DeliverySink)]
        if delivery:
            from . import _owners, _sender, _spool

            _load_for_delivery()

            settings = self.settings
            self._owner = _owners.new_owner()
            self._spool = _spool.open_spool(
                spool_folders(settings),
                self._owner,
                self._counters.drop,
                settings.max_spool_records,
                settings.max_spool_bytes,
                expendable=[sink.name for sink in delivery if EVENT in sink.kinds],
                now=now,
            )
            spool, owner, queue = self._spool, self._owner, self._queue
            self._sender = _sender.Sender(
                self._spool,
                delivery,
                lambda: _transport(settings),
                self._counters,
                settings.retry,
                settings.max_in_flight,
                yield_to=lambda: len(queue) >= BURST,
                on_exit=lambda: _retire(spool, owner),
                now=now,
            )
        self._pipeline = Pipeline(
            self.sinks,
            self._counters,
            self._spool,
            checkpoints=self._checkpoints,
            checkpoint_interval=self.settings.checkpoint_interval,
            on_spooled=self._sender.kick if self._sender else lambda: None,
            now=now,
        )
        self._worker = Worker(self._queue, self._pipeline, self.settings.flush_interval, self._counters)

    @classmethod
    def from_env(cls, sinks: Iterable[SinkLike] = (), environ: Optional[Mapping[str, str]] = None, **settings: Any) -> "Tracker":
        """A tracker configured from ``PLAYHOOKS_*`` environment variables, plus ``sinks``.

        ``PLAYHOOKS_RELAY_URL`` with ``PLAYHOOKS_INGEST_KEY`` is relay mode, for a game given to
        players: both services' payloads go to the studio's relay. Otherwise (direct mode, for
        servers, tools and development) ``PLAYHOOKS_PLAYCAMP_API_KEY`` (and
        ``PLAYHOOKS_PLAYCAMP_URL``) enables the PlayCamp sink; ``PLAYHOOKS_PLAYFAB_TITLE_ID`` with
        ``PLAYHOOKS_PLAYFAB_SECRET_KEY`` (and ``PLAYHOOKS_PLAYFAB_URL``) the PlayFab sink.
        ``PLAYHOOKS_SPOOL_DIR`` sets the spool. With no sink at all, a warning names the variables
        to set.

        Raises:
            ConfigurationError: naming the variable: a malformed value, PlayFab's title id without
                its secret key (or the reverse), a service's URL without its key, the relay's URL
                without the ingest key (or the reverse), or a relay beside a server secret.
        """
        from ._environment import from_environment

        chosen, settings = from_environment(os.environ if environ is None else environ, list(sinks), settings)
        return cls(chosen, **settings)

    # -- hooks -----------------------------------------------------------------------------------

    def on_session_start(
        self,
        user_id: str,
        *,
        campaign_id: Optional[str] = None,
        creator_key: Optional[str] = None,
        platform: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        callback_id: Optional[str] = None,
        is_test: Optional[bool] = None,
        playfab_id: Optional[str] = None,
        character_id: Optional[str] = None,
    ) -> Optional[Session]:
        """Start a play session for ``user_id``; its clock starts now.

        Options are PlayCamp's optional fields (``platform``: iOS, Android, Web, Roblox or Other;
        ``creator_key``: 5 uppercase letters or digits), plus ``playfab_id`` and ``character_id``,
        the defaults for this session's character events. They are checked here, in either mode.
        If ``user_id`` already has an open session, that one ends first: one player cannot play
        two sessions at once, and two open sessions would count the same time twice.

        Returns:
            the session; None if the tracker is closed or (when not strict) the input was bad.

        Raises:
            PayloadError: only when strict, naming the bad option and its rule.
        """
        try:
            return self._start_session(
                user_id,
                campaign_id=campaign_id,
                creator_key=creator_key,
                platform=platform,
                metadata=metadata,
                callback_id=callback_id,
                is_test=is_test,
                playfab_id=playfab_id,
                character_id=character_id,
            )
        except Exception as error:  # a hook must never raise into the game, nor in strict mode but for bad input
            self._refuse_or_raise(INVALID_SESSION, "on_session_start", error)
            return None

    def _start_session(self, user_id: str, **options: Any) -> Optional[Session]:
        if self._closed:
            return self._refuse(TRACKER_CLOSED, "on_session_start after close()")
        session = Session(SessionOptions(user_id=user_id, **options), self._clock)
        with self._lock:
            if self._closed:  # close() ran meanwhile: it has ended every session it could see
                return self._refuse(TRACKER_CLOSED, "on_session_start during close()")
            previous = self._open.pop(user_id, None)
            self._open[user_id] = session
            self._sole = session if len(self._open) == 1 else None
            if previous is not None:
                self._send_segment(previous._end())
        return session

    def on_session_pause(self, session: Optional[Session] = None) -> None:
        """Stop counting active time (the game lost focus or was minimized). Idempotent."""
        self._transition(session, "on_session_pause", lambda target: target._pause())

    def on_session_resume(self, session: Optional[Session] = None) -> None:
        """Count active time again. After a pause longer than ``idle_timeout`` the session has
        ended at the pause, and this starts a new one (new ``session.id``, same handle)."""
        self._transition(
            session, "on_session_resume", lambda target: self._send_segment(target._resume(self.settings.idle_timeout))
        )

    def on_session_end(self, session: Optional[Session] = None) -> None:
        """End the session and send it. Ending it again, or with none open, does nothing."""
        self._transition(session, "on_session_end", self._end_session)

    def _end_session(self, target: Session) -> None:
        if self._open.get(target.user_id) is target:
            del self._open[target.user_id]
            self._sole = next(iter(self._open.values())) if len(self._open) == 1 else None
        self._send_segment(target._end())

    def _transition(self, session: Optional[Session], hook: str, change: Callable[[Session], None]) -> None:
        """Apply ``change`` to the session a hook names, under the lock; never after close()."""
        try:
            with self._lock:
                target = self._resolve(session, hook)
                if target is not None and not self._closed:
                    change(target)
        except Exception as error:
            self._refuse_or_raise(INVALID_SESSION, hook, error)

    def on_character_event(
        self,
        event_name: str,
        *,
        character_id: Optional[str] = None,
        playfab_id: Optional[str] = None,
        body: Optional[Mapping[str, Any]] = None,
        timestamp: Any = None,
        custom_tags: Optional[Mapping[str, str]] = None,
        session: Optional[Session] = None,
    ) -> None:
        """Record a character event (PlayFab ``WriteCharacterEvent``).

        Args:
            event_name: ``^[A-Za-z0-9_]{1,64}$``, by convention ``subject_verb``: ``level_completed``.
            character_id, playfab_id: default to the session's.
            body: the event's properties, JSON values only, at most 10 KiB encoded.
            timestamp: an aware datetime; defaults to now.
            custom_tags: strings to strings.
            session: which session's defaults to use; None means the only open one.

        Raises:
            PayloadError: only when strict. Otherwise bad input is checked on the worker, then
            logged and counted as ``invalid_event``.
        """
        if not self._direct:  # strict, sync or closed: see _event_slowly
            try:
                self._event_slowly(event_name, character_id, playfab_id, body, timestamp, custom_tags, session)
            except Exception as error:
                self._refuse_or_raise(INVALID_EVENT, "on_character_event", error)
            return
        try:
            queue = self._queue
            waiting = len(queue)
            if waiting >= self._max_queue:
                self._counters.drop(QUEUE_FULL, f"{self._max_queue} events already wait for the worker")
                return
            if waiting == BURST:
                self._worker.wake()  # a burst: on disk sooner than the next round would have it
            if body is not None and isinstance(body, dict):
                # The game may change its dict before the worker reads it: copy it now, deeply
                # only if it holds more than scalars (the common case stays a cheap copy; a loop
                # is faster here than a set operation over a few values).
                for value in body.values():
                    if type(value) not in _SCALARS:
                        body = _deep_copy(body)
                        break
                else:
                    body = body.copy()
            if custom_tags is not None and isinstance(custom_tags, dict):
                custom_tags = custom_tags.copy()
            queue.append(
                (
                    RAW_EVENT,
                    event_name,
                    character_id,
                    playfab_id,
                    body,
                    timestamp,
                    custom_tags,
                    self._sole if session is None else session,
                    self._wall(),
                )
            )
        except Exception as error:  # a hook must never raise into the game
            self._counters.drop(INVALID_EVENT, f"on_character_event could not copy its arguments ({type(error).__name__})")

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: float = 2.0) -> int:
        """Wait at most ``timeout`` seconds for every payload accepted so far to reach the sinks.

        For PlayCamp and PlayFab: written to the spool (open sessions checkpointed too), then sent,
        as far as the services allow now. Records waiting for a retry time are not sent early.

        Returns:
            how many payloads are still pending (0 when all went out); what is pending stays in
            the spool and goes out later, or on the next run.
        """
        deadline = time.monotonic() + timeout
        self._worker.flush(timeout)
        sender = self._sender
        while sender is not None and sender.running and sender.wait_idle(max(0.0, deadline - time.monotonic())):
            # Idle: what is left waits for a retry time. Wait for it only if it comes in time.
            remaining = deadline - time.monotonic()
            wait = sender.next_due()
            if wait is None and sender.busy:
                continue  # a lane woke to send since it rested: wait for it again
            if remaining <= 0 or wait is None or wait > remaining or not self._spool.pending():  # type: ignore[union-attr]
                break
            sender.wait_until_due(max(0.0, wait))
        return self._pending()

    def close(self, timeout: float = 2.0) -> int:
        """End every open session, flush, and stop the worker, all within ``timeout`` seconds.

        Hooks called afterwards do nothing (counted as ``tracker_closed``). Closing twice is safe.

        Returns:
            how many payloads are still pending when it returns.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return self._pending()
            self._closed = True
            self._direct = False
            _open_trackers.discard(self)
            for session in self._open.values():
                self._send_segment(session._end())
            self._open.clear()
            self._sole = None
        self._worker.stop(timeout)
        self._process_stragglers()
        if self._sender is not None:
            # Stop sending a little before the deadline, between two requests, so the last one
            # is settled before close() returns rather than left ambiguous by the process's end.
            margin = min(timeout / 4, STOP_MARGIN)
            self._sender.wait_idle(max(0.0, deadline - margin - time.monotonic()))
            # A request still in flight keeps this tracker's claims its own until it ends: the
            # sender retires the owner on its way out (see _retire).
            self._sender.stop(max(0.0, deadline - time.monotonic()))
        return self._pending()

    def _process_stragglers(self) -> None:
        """A hook that checked ``_closed`` just before close() set it may queue after the worker's
        last round: process it here rather than lose it uncounted."""
        if self._worker.stopped:
            leftovers = [item for item in list(self._queue) if type(item) is tuple]
            self._queue.clear()
            if leftovers:
                self._pipeline.process_now(leftovers)

    def stats(self) -> Dict[str, Any]:
        """What became of the payloads, with the same keys whatever the sinks (0, ``{}`` or None
        where they do not apply):

        - ``accepted``: payloads made from valid hook calls.
        - ``handed_to_sinks``: payloads an in-process sink took (``MemorySink``, ``JsonlSink``, yours).
        - ``written_to_spool``: records written to the spool on disk for PlayCamp or PlayFab (one per
          payload and service): from here they survive a crash.
        - ``confirmed_by_service``: records a service said it has.
        - ``refused_by_service``: records a service refused as invalid (kept in the spool's ``dead/``).
        - ``retried``: records put back for another attempt after a failure.
        - ``recovered_sessions``: sessions closed from a crashed run's checkpoint.
        - ``dropped``: payloads lost, by reason (``{}`` when none; the reasons are in the README).
        - ``pending``: payloads queued or in the spool, not yet confirmed.
        - ``open_sessions``: sessions started and not ended.
        - ``quarantined_files``: spool files that could not be read, set aside.
        - ``last_error``: per service, the last failure's reason (secrets never included).
        - ``spool_folder``: where the spool is (another folder when the one asked for could not be
          written), or None without one.
        - ``spool_problem``: None, or why payloads are held in memory meanwhile.
        """
        stats: Dict[str, Any] = self._counters.snapshot()
        stats["pending"] = self._pending_cheaply()
        stats["open_sessions"] = len(self._open)
        spool = self._spool
        stats["quarantined_files"] = spool.quarantined if spool is not None else 0
        stats["last_error"] = self._sender.last_errors if self._sender else {}
        stats["spool_folder"] = spool.directory if spool is not None else None
        stats["spool_problem"] = spool.problem if spool is not None else None
        return stats

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"open_sessions={len(self._open)}"
        return f"<Tracker sinks={self.sinks!r} {state}>"

    # -- internals -------------------------------------------------------------------------------

    def _resolve(self, session: Optional[Session], hook: str) -> Optional[Session]:
        """The session a hook applies to: the one given, else the only open one."""
        if session is not None:
            if type(session) is Session:
                return session
            error = PayloadError("session", "must be a Session returned by on_session_start", session)
        elif self._sole is not None or not self._open:
            return self._sole
        else:
            error = PayloadError("session", f"is required: {len(self._open)} sessions are open", show_value=False)
        if self._strict:
            raise error
        self._counters.say(hook, "%s ignored: %s", hook, error)
        return None

    def _checkpoints(self) -> List[Tuple[str, Dict[str, Any]]]:
        # Under the lock: an idle split changes a session's id and start together.
        with self._lock:
            return [(session.id, session._checkpoint()) for session in self._open.values()]

    def _pending(self) -> int:
        return self._worker.pending + (self._spool.pending() if self._spool is not None else 0)

    def _pending_cheaply(self) -> int:
        """For ``stats()``, which games call every frame: the sender's last count, no listing."""
        return self._worker.pending + (self._sender.pending if self._sender is not None else 0)

    def _send_segment(self, segment: Optional[Segment]) -> None:
        # Sessions skip the queue bound: they are few, and they are the playtime itself.
        if segment is None:
            return
        if self._sync:
            self._pipeline.process_now([(SEGMENT, segment)])
        else:
            self._queue.append((SEGMENT, segment))

    def _event_slowly(self, *arguments: Any) -> None:
        """on_character_event when the tracker is closed, strict, or writes the spool on the caller."""
        if self._closed:
            if self._strict:
                raise PlayhooksError("on_character_event: the tracker is closed")
            self._refuse(TRACKER_CLOSED, "on_character_event after close()")
            return
        *fields, session = arguments
        session = self._sole if session is None else session
        if self._strict:
            from ._payloads import event_model

            item = (EVENT_MODEL, event_model(*fields, session, self._wall()))
        else:
            item = (RAW_EVENT, *fields, session, self._wall())
        if self._sync:
            self._pipeline.process_now([item])
        elif len(self._queue) >= self._max_queue:
            self._counters.drop(QUEUE_FULL, f"{self._max_queue} events already wait for the worker")
        else:
            self._queue.append(item)

    def _refuse(self, reason: str, detail: str) -> None:
        self._counters.drop(reason, detail)
        return None

    def _refuse_or_raise(self, reason: str, hook: str, error: Exception) -> None:
        """Handle what a hook raised: when strict, raise it as a ``PayloadError`` (an unexpected
        error from the caller's objects is bad input too); otherwise count it under ``reason``."""
        if self._strict:
            if isinstance(error, PlayhooksError):
                raise error
            raise PayloadError(hook, f"could not read its arguments ({type(error).__name__})", show_value=False) from None
        detail = str(error) if isinstance(error, PayloadError) else f"{hook} could not read its arguments ({type(error).__name__})"
        self._refuse(reason, detail)


def _load_for_delivery() -> None:
    """Load here, on the thread making the tracker, what its worker and sender would otherwise
    load as play begins: the models, urllib3 and the TLS roots (about 0.1 s, once a process).

    The models, loaded by the worker in its first round, kept a starved game's first events off
    the disk past the grace (the chaos soak lost them). urllib3 and the roots, loaded by the
    sender at its first request, made a starved game's frames late by about 10 ms more in its
    first second. Making the tracker is at start-up, before play.
    """
    from . import _payloads, _transport, _wire  # noqa: F401

    _transport.shared_ssl_context()


def _transport(settings: Settings) -> Any:
    from ._transport import Transport

    return Transport(settings.connect_timeout, settings.read_timeout, settings.max_in_flight)


def _retire(spool: "Spool", owner: str) -> None:
    """The sender has ended: what this tracker claimed may now be taken back by others."""
    from ._owners import retire_owner

    spool.close()
    retire_owner(owner)


def _restart_in_child(reference: "weakref.ref[Tracker]") -> None:
    """After ``os.fork()`` only the forking thread survives: give the child its own tracker state.

    The child starts with no open sessions and an empty queue: those belong to the parent, which
    will send them; copying them would count the same playtime twice.
    """
    tracker = reference()
    if tracker is not None and not tracker._closed:
        tracker._counters = Counters()
        tracker._start()
