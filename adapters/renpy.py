"""playhooks inside Ren'Py: sessions tied to the engine's callbacks, events sent exactly once.

Creators do not import this: ``playhooks renpy install`` puts it in ``game/python-packages`` with a
drop-in ``00playhooks.rpy`` that calls ``setup`` and names the store's ``playhooks`` (a ``Facade``).

What the engine does, and what this module does about it (see ENGINES.md in the design notes):

- Rollback, roll-forward and loading a save run ``$`` statements again. Each tracked statement
  takes a number from a store counter (rolled back and saved with the game) within the run it
  belongs to; its key is the run, that number and the statement's place in the script. A key sent
  before is not sent again; a different branch after a rollback has other keys and is sent. Sent
  keys are kept in this module, which outlives rollbacks and reloads, and in ``persistent``, which
  outlives the process (a save loaded tomorrow replays its statements from the last label).
- No tracker state goes into the store: a tracker holds threads and locks, which cannot be
  pickled into a save. It lives here, one per process.
- ``quit_callbacks`` run on every Shift+R reload as well as at the real exit: they only flush.
  The session ends once, at the real exit (``atexit``).
- The player's choice: nothing is recorded, spooled or sent while ``persistent.playhooks_consent``
  is off.
"""

import atexit
import os
import sys
import threading
import uuid
from typing import Any, Dict, Mapping, Optional

import playhooks

_MAX_REMEMBERED = 10_000  # sent keys kept in persistent; the oldest are forgotten first
_FLUSH_AT_QUIT = 1.0  # seconds a quit (or a reload) may wait for the spool
_CLOSE_AT_EXIT = 2.0

_lock = threading.Lock()
_state: Optional["_State"] = None  # one per process: a Shift+R reload does not import this again


class _State:
    def __init__(self, tracker: Optional[playhooks.Tracker], options: Dict[str, Any]) -> None:
        self.tracker = tracker
        self.options = options
        self.session: Optional[playhooks.Session] = None
        self.sent: set = set()
        self.closed = False


def setup(
    *,
    relay_url: Optional[str] = None,
    ingest_key: Optional[str] = None,
    consent_default: bool = False,
    player_id: Optional[str] = None,
    playfab_id: Optional[str] = None,
    character_id: Optional[str] = None,
    platform: Optional[str] = None,
) -> None:
    """Start playhooks for this game (once per process) and register its engine callbacks (again
    after each reload, which resets the engine's callback lists). Called by ``00playhooks.rpy``."""
    import renpy

    global _state
    persistent = renpy.game.persistent
    if persistent.playhooks_consent is None:
        persistent.playhooks_consent = bool(consent_default)
    if not persistent.playhooks_player_id:
        persistent.playhooks_player_id = str(uuid.uuid4())  # anonymous, one per install
    if not isinstance(persistent._playhooks_sent, dict):
        persistent._playhooks_sent = {}  # made here, in a .py module: a plain dict, not a revertable one
    with _lock:
        if _state is None:
            options = {
                "user_id": player_id or persistent.playhooks_player_id,
                "playfab_id": playfab_id or persistent.playhooks_player_id.replace("-", "")[:16].upper(),
                "character_id": character_id or "player",
                "platform": platform or _platform(renpy),
            }
            _state = _State(_make_tracker(renpy, relay_url, ingest_key), options)
            atexit.register(_exit)
    config = renpy.config
    for callbacks, function in (
        (config.after_load_callbacks, _after_load),
        (config.quit_callbacks, _flush),
    ):
        if function not in callbacks:
            callbacks.append(function)
    _chain_label_callback(renpy)
    if not any(isinstance(displayable, _focus_watcher_class(renpy)) for displayable in config.underlay):
        config.underlay.append(_focus_watcher_class(renpy)())


def _make_tracker(renpy: Any, relay_url: Optional[str], ingest_key: Optional[str]) -> Optional[playhooks.Tracker]:
    """The tracker: through the relay in a game given to players; in developer mode also direct,
    from the ``PLAYHOOKS_*`` variables, as ``Tracker.from_env``. None where it cannot run."""
    if getattr(renpy, "emscripten", False):
        print("playhooks: disabled in web builds (no threads, no sockets): nothing is recorded", file=sys.stderr)
        return None
    spool = os.path.join(renpy.config.savedir or "saves", "playhooks")
    environ = dict(os.environ)
    if relay_url and ingest_key:
        environ.update(PLAYHOOKS_RELAY_URL=relay_url, PLAYHOOKS_INGEST_KEY=ingest_key)
    secrets = [name for name in ("PLAYHOOKS_PLAYCAMP_API_KEY", "PLAYHOOKS_PLAYFAB_SECRET_KEY") if environ.get(name)]
    if secrets and not renpy.config.developer:
        print(
            f"playhooks: {', '.join(secrets)} is a server secret, refused outside developer mode:"
            " a game given to players sends through the studio's relay (playhooks_relay_url and"
            " playhooks_ingest_key in 00playhooks.rpy)",
            file=sys.stderr,
        )
        for name in [name for name in environ if name.startswith(("PLAYHOOKS_PLAYCAMP_", "PLAYHOOKS_PLAYFAB_"))]:
            del environ[name]  # direct sending, all of it: the relay goes in its place
    if secrets and renpy.config.developer:
        environ.pop("PLAYHOOKS_RELAY_URL", None)  # developer mode with the keys: direct, as from_env does
        environ.pop("PLAYHOOKS_INGEST_KEY", None)
    try:
        return playhooks.Tracker.from_env(environ=environ, spool_dir=spool)
    except playhooks.ConfigurationError as error:
        print(f"playhooks: not started: {error}", file=sys.stderr)
        return None


def _platform(renpy: Any) -> str:
    if getattr(renpy, "android", False):
        return "Android"
    if getattr(renpy, "ios", False):
        return "iOS"
    if getattr(renpy, "emscripten", False):
        return "Web"
    return "Other"


def _chain_label_callback(renpy: Any) -> None:
    """See each label reached: a session starts at ``start``. 8.0 has one callback (chained, never
    replaced); 8.1+ a list."""
    config = renpy.config
    try:
        callbacks = config.label_callbacks
    except Exception:  # 8.0: asking for an unknown config field raises
        callbacks = None
    if isinstance(callbacks, list):
        if _label not in callbacks:
            callbacks.append(_label)
        return
    previous = config.label_callback
    if getattr(previous, "_playhooks", False):
        return

    def chained(name: str, abnormal: bool) -> None:
        _label(name, abnormal)
        if previous is not None:
            previous(name, abnormal)

    chained._playhooks = True  # type: ignore[attr-defined]
    config.label_callback = chained


_FocusWatcher: Any = None


def _focus_watcher_class(renpy: Any) -> Any:
    """A displayable under every screen that sees the window's focus come and go: Ren'Py has no
    callback for it. While the window has no input focus, or is minimized, playtime pauses."""
    global _FocusWatcher
    if _FocusWatcher is not None:
        return _FocusWatcher
    pygame = getattr(renpy, "pygame", None)
    if pygame is None:
        import pygame_sdl2 as pygame  # Ren'Py up to 8.4 names its binding so

    focus_and_minimize = 2 | 4  # ACTIVEEVENT's states: input focus, and minimized

    class FocusWatcher(renpy.display.core.Displayable):
        def render(self, width: int, height: int, st: float, at: float) -> Any:
            return renpy.display.render.Render(0, 0)

        def event(self, ev: Any, x: int, y: int, st: float) -> None:
            if ev.type == pygame.ACTIVEEVENT and getattr(ev, "state", 0) & focus_and_minimize:
                (_resume if ev.gain else _pause)()
            return None

    _FocusWatcher = FocusWatcher
    return FocusWatcher


def _pause() -> None:
    if _consented() and _state.session is not None:  # type: ignore[union-attr]
        _state.tracker.on_session_pause(_state.session)  # type: ignore[union-attr]


def _resume() -> None:
    if _consented() and _state.session is not None:  # type: ignore[union-attr]
        _state.tracker.on_session_resume(_state.session)  # type: ignore[union-attr]


def _consented() -> bool:
    import renpy

    return bool(renpy.game.persistent.playhooks_consent) and _state is not None and _state.tracker is not None


def new_run() -> str:
    """A new game's run: the ``default`` of ``_playhooks_run``. Set with the store before the
    first statement, so a load or a reload that resumes at ``start`` restores it. (Set when
    ``start`` is reached, a resume there rolled it back and made another run, sending again.)"""
    return uuid.uuid4().hex


def _label(name: str, abnormal: bool) -> None:
    if name == "start":
        _start_session()


def _after_load() -> None:
    _start_session()


def _start_session() -> None:
    if not _consented():
        return
    state = _state
    with _lock:
        if state.session is None or state.session.ended:  # type: ignore[union-attr]
            state.session = state.tracker.on_session_start(**state.options)  # type: ignore[union-attr]


def _flush() -> None:
    """A quit, or a Shift+R reload (they cannot be told apart here): put what is queued on disk
    and send what can be sent in a moment; the session goes on."""
    import renpy

    renpy.exports.save_persistent()  # the sent keys, before a process that quits can lose them
    if _state is not None and _state.tracker is not None:
        _state.tracker.flush(_FLUSH_AT_QUIT)


def _exit() -> None:
    """The real end of the process: the session ends, once, and the tracker closes."""
    state = _state
    if state is None or state.tracker is None or state.closed:
        return
    state.closed = True
    state.tracker.close(_CLOSE_AT_EXIT)


def set_consent(value: bool) -> None:
    """Turn recording on or off (the preference screen's action does this): off ends the open
    session now, and records, spools and sends nothing more."""
    import renpy

    renpy.game.persistent.playhooks_consent = bool(value)
    if value:
        _start_session()
    elif _state is not None and _state.tracker is not None and _state.session is not None:
        _state.tracker.on_session_end(_state.session)
        _state.session = None


class Facade:
    """The store's ``playhooks``: the hooks, each call sent once whatever rollback, roll-forward
    or loading a save replays."""

    def on_character_event(self, event_name: str, *, body: Optional[Mapping[str, Any]] = None, **options: Any) -> None:
        """``$ playhooks.on_character_event("chapter_completed", character_id="eileen", body={...})``"""
        import renpy

        if not _consented():
            return
        key = _statement_key(renpy)
        if key is None:
            return  # this statement was sent before: a replay
        state = _state
        if state.session is None:  # type: ignore[union-attr]
            _start_session()
        plain = None if body is None else _plain(body)
        state.tracker.on_character_event(event_name, body=plain, session=state.session, **options)  # type: ignore[union-attr]

    def on_session_pause(self) -> None:
        _pause()

    def on_session_resume(self) -> None:
        _resume()

    def set_consent(self, value: bool) -> None:
        set_consent(value)

    def stats(self) -> Dict[str, Any]:
        return _state.tracker.stats() if _state is not None and _state.tracker is not None else {}

    def flush(self, timeout: float = 2.0) -> int:
        return _state.tracker.flush(timeout) if _state is not None and _state.tracker is not None else 0


def _statement_key(renpy: Any) -> Optional[str]:
    """This statement's key in this run, or None if it was sent before (the number is taken
    either way: a replay must take the same numbers as the first pass did)."""
    store = renpy.store
    store._playhooks_seq += 1
    filename, line = renpy.exports.get_filename_line()
    key = f"{store._playhooks_run}:{store._playhooks_seq}:{filename}:{line}"
    ledger = renpy.game.persistent._playhooks_sent
    with _lock:
        if key in _state.sent or key in ledger:  # type: ignore[union-attr]
            return None
        _state.sent.add(key)  # type: ignore[union-attr]
        ledger[key] = None
        while len(ledger) > _MAX_REMEMBERED:
            del ledger[next(iter(ledger))]
    return key


def _plain(value: Any) -> Any:
    """Store dicts and lists are rollback-aware subclasses: plain copies for the tracker."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
