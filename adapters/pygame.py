"""playhooks for Pygame and pygame-ce: play sessions from the event loop you already have.

    from playhooks.adapters.pygame import PygameAdapter

    adapter = PygameAdapter(tracker, user_id="player-1")     # starts the session
    while running:
        for event in pygame.event.get():
            adapter.process(event)                             # focus, minimize, quit
            ...
        adapter.draw(screen)                                   # the overlay, if toggled on
        pygame.display.flip()

The adapter only watches: it never calls ``pygame.event.get``, ``set_blocked`` or anything that
changes pygame's state. Active time pauses when the window loses focus, is minimized or hidden (or,
on mobile, goes to the background) and resumes when it is back; the session ends once, on ``QUIT``
or ``WINDOWCLOSE``, or at interpreter exit if neither came. Only the ``WINDOW*`` events count: a
focus change on X11 also sends the legacy ``ACTIVEEVENT``, which would count it twice.
"""

import atexit
import logging
from typing import Any, Dict, List, Optional

try:
    import pygame
except ImportError as error:  # pragma: no cover - tested in a subprocess without pygame
    from playhooks import PlayhooksError

    raise PlayhooksError(
        "playhooks.adapters.pygame needs pygame or pygame-ce: pip install pygame (or pygame-ce)"
    ) from error

import playhooks

log = logging.getLogger("playhooks")

__all__ = ["PygameAdapter"]

IS_PYGAME_CE = bool(getattr(pygame, "IS_CE", False))
_STATS_REFRESH_SECONDS = 0.5  # the overlay reads stats() twice a second, not every frame


def _event_types(*names: str) -> frozenset:
    """Event numbers by name: pygame and pygame-ce number some events differently."""
    return frozenset(getattr(pygame, name) for name in names if hasattr(pygame, name))


_ENDS = _event_types("QUIT", "WINDOWCLOSE")
_FOCUS_LOST = _event_types("WINDOWFOCUSLOST")
_FOCUS_GAINED = _event_types("WINDOWFOCUSGAINED")
_HIDDEN = _event_types("WINDOWMINIMIZED", "WINDOWHIDDEN")
_SHOWN = _event_types("WINDOWSHOWN", "WINDOWMAXIMIZED")
# A restore gives focus back too: some systems (Win+D, then a click on the taskbar) send
# MINIMIZED, FOCUSLOST, RESTORED and never FOCUSGAINED.
_RESTORED = _event_types("WINDOWRESTORED")
_BACKGROUND = _event_types("APP_WILLENTERBACKGROUND", "APP_DIDENTERBACKGROUND")
_FOREGROUND = _event_types("APP_WILLENTERFOREGROUND", "APP_DIDENTERFOREGROUND")


class PygameAdapter:
    """Ties one player's session to a pygame window.

    Args:
        tracker: the tracker to report to.
        user_id: the player's id for PlayCamp.
        overlay_key: a key (``pygame.K_F3``) that toggles an on-screen panel of the tracker's
            live stats; None for no key. ``show_overlay`` starts it visible.
        **session_options: passed to ``on_session_start`` (``platform``, ``playfab_id``,
            ``character_id`` ...).
    """

    def __init__(
        self,
        tracker: playhooks.Tracker,
        user_id: str,
        *,
        overlay_key: Optional[int] = None,
        show_overlay: bool = False,
        **session_options: Any,
    ) -> None:
        self.tracker = tracker
        self.session = self.tracker.on_session_start(user_id, **session_options)
        self.overlay_key = overlay_key
        self.show_overlay = show_overlay
        self._focused = True
        self._minimized = False
        self._background = False
        self._ended = False
        self._font: Any = None
        self._panel: Any = None
        self._stats: Dict[str, Any] = {}
        self._stats_read_at = -_STATS_REFRESH_SECONDS
        atexit.register(self.end)

    @property
    def active(self) -> bool:
        """Whether play time is being counted now."""
        return self._focused and not self._minimized and not self._background and not self._ended

    def process(self, event: Any) -> None:
        """Look at one event from your loop. Never raises into the game."""
        kind = event.type
        if kind in _ENDS:
            self.end()
            return
        was_active = self.active
        if kind in _FOCUS_LOST:
            self._focused = False
        elif kind in _FOCUS_GAINED:
            self._focused = True
        elif kind in _HIDDEN:
            self._minimized = True
        elif kind in _RESTORED:
            self._minimized = False
            self._focused = True
        elif kind in _SHOWN:
            self._minimized = False
        elif kind in _BACKGROUND:
            self._background = True
        elif kind in _FOREGROUND:
            self._background = False
        elif kind == pygame.KEYDOWN and self.overlay_key is not None and getattr(event, "key", None) == self.overlay_key:
            self.show_overlay = not self.show_overlay
            self._panel = None  # fresh numbers when it shows again
            return
        else:
            return
        if was_active != self.active and self.session is not None:
            if self.active:
                self.tracker.on_session_resume(self.session)
            else:
                self.tracker.on_session_pause(self.session)

    def end(self) -> None:
        """End the session (once: later calls do nothing). QUIT and WINDOWCLOSE call it."""
        if self._ended:
            return
        self._ended = True
        atexit.unregister(self.end)
        if self.session is not None:
            self.tracker.on_session_end(self.session)

    def draw(self, surface: Any, now: Optional[float] = None) -> None:
        """Draw the stats panel in the top-left corner of ``surface`` when it is toggled on.

        The panel is rebuilt twice a second; other frames only blit it. Never raises into the game.
        """
        if not self.show_overlay:
            return
        try:
            now = self.tracker.settings.clock.monotonic() if now is None else now
            if self._panel is None or now - self._stats_read_at >= _STATS_REFRESH_SECONDS:
                self._stats, self._stats_read_at = self.tracker.stats(), now
                self._panel = self._render_panel(self._overlay_lines())
            surface.blit(self._panel, (8, 8))
        except Exception:  # a build without pygame.font, say: the game goes on without the panel
            log.exception("the playhooks overlay cannot be drawn; it is turned off")
            self.show_overlay = False

    def _render_panel(self, lines: List[str]) -> Any:
        if self._font is None:
            pygame.font.init()
            self._font = pygame.font.Font(None, 20)
        rendered = [self._font.render(line, True, (235, 235, 235)) for line in lines]
        panel = pygame.Surface(
            (max(text.get_width() for text in rendered) + 16, sum(text.get_height() for text in rendered) + 12),
            pygame.SRCALPHA,
        )
        panel.fill((10, 12, 20, 190))
        y = 6
        for text in rendered:
            panel.blit(text, (8, y))
            y += text.get_height()
        return panel

    def _overlay_lines(self) -> List[str]:
        stats = self._stats
        seconds = int(self.session.active_seconds) if self.session is not None else 0
        state = "ended" if self._ended else "playing" if self.active else "paused"
        errors = stats.get("last_error") or {}
        lines = [
            f"playhooks  session {seconds // 60:d}:{seconds % 60:02d}  {state}",
            f"sent {stats['confirmed_by_service'] if stats.get('spool_folder') else stats.get('handed_to_sinks', 0)}"
            f"  pending {stats.get('pending', 0)}"
            f"  dropped {sum(stats.get('dropped', {}).values())}",
        ]
        for sink, error in sorted(errors.items()):
            lines.append(f"{sink}: {error[:60]}")
        return lines

    def __repr__(self) -> str:
        state = "ended" if self._ended else "active" if self.active else "paused"
        return f"<PygameAdapter {'pygame-ce' if IS_PYGAME_CE else 'pygame'} {state}>"
