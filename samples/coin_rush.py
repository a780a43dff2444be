#!/usr/bin/env python
"""Coin Rush: a small arcade game that reports its play through playhooks.

What it shows:
- ``PygameAdapter`` in an ordinary pygame loop: the play session starts with the game, pauses
  while the window is out of focus or minimized, and ends once, when the window closes.
- Character events with bodies worth having: ``coin_collected``, ``level_completed``,
  ``player_died`` and ``game_over``.
- Where the payloads go. With no ``PLAYHOOKS_*`` variables set, the game starts playhooks' local
  emulator of PlayCamp and PlayFab in-process, sends to it over HTTP, and prints what it recorded
  when you quit, and where its live page was (while the game runs, that page shows each request
  as it arrives). With them set (see the README), it sends there instead.

Controls: arrow keys or WASD to move, F3 toggles the telemetry overlay, Esc quits (Ctrl-C in the
terminal too: the session still ends and is sent). Collect every coin to clear a level. Spikes cost
a life; the third one ends the run.

    python samples/coin_rush.py              # play in a window
    python samples/coin_rush.py --headless   # no screen: an autopilot plays 15 s (--frames 900)
"""

import argparse
import collections
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

import playhooks  # noqa: E402
from playhooks.adapters.pygame import PygameAdapter  # noqa: E402
from playhooks.testing import ManualClock  # noqa: E402

WIDTH, HEIGHT = 640, 480
FPS = 60
HEADLESS_FRAMES = 900  # headless without --frames: 15 s of game time
PROGRESS_SECONDS = 5  # headless, a line of progress every 5 s of game time
PLAYER_SIZE = 22
PLAYER_SPEED = 240  # pixels per second
COIN_RADIUS = 8
FIRST_LEVEL_COINS = 6  # and two more each level
SPIKE_SIZE = 20
SPIKE_SPEED = 110  # pixels per second, and 15 more each level
LIVES = 3
SAFE_SECONDS = 1.5  # after losing a life, spikes pass through you this long
GAME_OVER_SECONDS = 2.0
BACKGROUND = (18, 22, 38)
COLORS = {"player": (90, 220, 255), "coin": (255, 210, 60), "spike": (240, 80, 90), "text": (230, 230, 240)}

# The sample's player ids. A real game uses the ids PlayFab gave the player and their character.
PLAYFAB_ID = "C01A5A3F1E7B2D90"
CHARACTER_ID = "7E4B0C9D12A3F655"


class Game:
    """The rules: where things are, what touching them does, and which events that reports.

    Args:
        report: called like ``Tracker.on_character_event`` for each thing worth recording.
        rng: the random source, seeded for a repeatable autopilot run.
    """

    def __init__(self, report, rng):
        self.report = report
        self.rng = rng
        self.score = 0
        self.lives = LIVES
        self.level = 0
        self.game_over_for = 0.0
        self.next_level()

    def next_level(self):
        self.level += 1
        self.level_time = 0.0
        self.deaths_this_level = 0
        self.player = [WIDTH / 2, HEIGHT / 2]
        self.safe_for = SAFE_SECONDS
        self.coins = [self.free_spot(margin=30) for _ in range(FIRST_LEVEL_COINS + 2 * (self.level - 1))]
        speed = SPIKE_SPEED + 15 * (self.level - 1)
        self.spikes = []
        for _ in range(self.level + 1):
            angle = self.rng.uniform(0, 2 * math.pi)
            x, y = self.free_spot(margin=60)
            self.spikes.append([x, y, speed * math.cos(angle), speed * math.sin(angle)])

    def free_spot(self, margin):
        """A random point not too close to the player."""
        while True:
            x, y = self.rng.uniform(margin, WIDTH - margin), self.rng.uniform(margin, HEIGHT - margin)
            if math.hypot(x - self.player[0], y - self.player[1]) > 120:
                return x, y

    def step(self, dt, direction):
        """Advance the game by ``dt`` seconds with the player pushing in ``direction`` (dx, dy)."""
        if self.game_over_for > 0:
            self.game_over_for -= dt
            if self.game_over_for <= 0:
                self.score, self.lives, self.level = 0, LIVES, 0
                self.next_level()
            return
        self.level_time += dt
        self.safe_for = max(0.0, self.safe_for - dt)
        dx, dy = direction
        length = math.hypot(dx, dy) or 1.0
        half = PLAYER_SIZE / 2
        self.player[0] = min(WIDTH - half, max(half, self.player[0] + PLAYER_SPEED * dt * dx / length))
        self.player[1] = min(HEIGHT - half, max(half, self.player[1] + PLAYER_SPEED * dt * dy / length))
        self.move_spikes(dt)
        self.collect_coins()
        if self.safe_for == 0 and self.touching_spike():
            self.lose_life()
        if not self.coins:
            self.report(
                "level_completed",
                body={"level": self.level, "score": self.score, "seconds": round(self.level_time, 1), "deaths": self.deaths_this_level},
            )
            self.next_level()

    def move_spikes(self, dt):
        for spike in self.spikes:
            spike[0] += spike[2] * dt
            spike[1] += spike[3] * dt
            if not SPIKE_SIZE / 2 <= spike[0] <= WIDTH - SPIKE_SIZE / 2:
                spike[2] = -spike[2]
            if not SPIKE_SIZE / 2 <= spike[1] <= HEIGHT - SPIKE_SIZE / 2:
                spike[3] = -spike[3]

    def collect_coins(self):
        reach = COIN_RADIUS + PLAYER_SIZE / 2
        for coin in [c for c in self.coins if math.hypot(c[0] - self.player[0], c[1] - self.player[1]) < reach]:
            self.coins.remove(coin)
            self.score += 10 * self.level
            self.report("coin_collected", body={"level": self.level, "score": self.score, "coins_left": len(self.coins)})

    def touching_spike(self):
        reach = (SPIKE_SIZE + PLAYER_SIZE) / 2 - 3
        return any(math.hypot(s[0] - self.player[0], s[1] - self.player[1]) < reach for s in self.spikes)

    def lose_life(self):
        self.lives -= 1
        self.deaths_this_level += 1
        self.report(
            "player_died",
            body={"level": self.level, "score": self.score, "lives_left": self.lives, "cause": "spike",
                  "x": round(self.player[0]), "y": round(self.player[1])},
        )
        self.safe_for = SAFE_SECONDS
        if self.lives == 0:
            self.report("game_over", body={"level": self.level, "score": self.score})
            self.game_over_for = GAME_OVER_SECONDS

    def autopilot(self):
        """A direction that heads for the nearest coin and shies away from close spikes."""
        x, y = self.player
        if not self.coins:
            return 0.0, 0.0
        cx, cy = min(self.coins, key=lambda c: math.hypot(c[0] - x, c[1] - y))
        dx, dy = cx - x, cy - y
        norm = math.hypot(dx, dy) or 1.0
        dx, dy = dx / norm, dy / norm
        for sx, sy, _, _ in self.spikes:
            distance = math.hypot(sx - x, sy - y)
            if distance < 70:
                dx += 1.6 * (x - sx) / distance
                dy += 1.6 * (y - sy) / distance
        return dx, dy

    def draw(self, screen, font):
        screen.fill(BACKGROUND)
        for cx, cy in self.coins:
            pygame.draw.circle(screen, COLORS["coin"], (round(cx), round(cy)), COIN_RADIUS)
        h = SPIKE_SIZE / 2
        for sx, sy, _, _ in self.spikes:
            pygame.draw.polygon(screen, COLORS["spike"], [(sx, sy - h), (sx + h, sy + h), (sx - h, sy + h)])
        if self.safe_for == 0 or int(self.safe_for * 10) % 2 == 0:  # blink while safe
            half = PLAYER_SIZE / 2
            pygame.draw.rect(screen, COLORS["player"], (self.player[0] - half, self.player[1] - half, PLAYER_SIZE, PLAYER_SIZE))
        hud = f"level {self.level}   score {self.score}   lives {self.lives}"
        text = font.render(hud, True, COLORS["text"])
        screen.blit(text, (WIDTH - text.get_width() - 10, 10))
        if self.game_over_for > 0:
            over = font.render("game over", True, COLORS["spike"])
            screen.blit(over, ((WIDTH - over.get_width()) // 2, HEIGHT // 2))


def make_tracker(clock):
    """The services from PLAYHOOKS_* variables if any is set; else the local emulator, in-process."""
    settings = {"clock": clock} if clock is not None else {}
    # Any of them, not only the keys: a URL set without its key is an error to show, not to ignore.
    if any(value for name, value in os.environ.items() if name.startswith("PLAYHOOKS_") and name != "PLAYHOOKS_SPOOL_DIR"):
        return playhooks.Tracker.from_env(**settings), None, None
    from playhooks.emulator import Emulator

    emulator = Emulator().start()
    spool = tempfile.mkdtemp(prefix="coin-rush-spool-")  # the sample's payloads are not worth keeping
    sinks = [playhooks.PlayCamp("sample:not-a-real-key", emulator.url), playhooks.PlayFab("SAMPLE", "not-a-real-key", emulator.url)]
    return playhooks.Tracker(sinks, spool_dir=spool, **settings), emulator, spool


def keyboard_direction():
    keys = pygame.key.get_pressed()
    dx = (keys[pygame.K_RIGHT] or keys[pygame.K_d]) - (keys[pygame.K_LEFT] or keys[pygame.K_a])
    dy = (keys[pygame.K_DOWN] or keys[pygame.K_s]) - (keys[pygame.K_UP] or keys[pygame.K_w])
    return dx, dy


def print_recorded(emulator, out):
    sessions, events = emulator.sessions, emulator.events
    counts = collections.Counter(event["EventName"] for event in events)
    out.write(f"\nThe local emulator recorded {len(sessions)} PlayCamp session(s):\n")
    for session in sessions:
        out.write(json.dumps(session, indent=2) + "\n")
    out.write(f"and {len(events)} PlayFab character events: ")
    out.write(", ".join(f"{name} x{count}" for name, count in sorted(counts.items())) + "\n")
    if events:
        out.write("the last one: " + json.dumps(events[-1]) + "\n")
    # The page closes with the game: `playhooks emulate` serves one that stays, for a game pointed at it.
    out.write(f"The emulator's live page was {emulator.page_url} (it closed with the game; `playhooks emulate` keeps one open)\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Coin Rush, a playhooks sample.")
    parser.add_argument("--headless", action="store_true", help="no window or sound; an autopilot plays")
    parser.add_argument(
        "--frames", type=int, help=f"quit after this many frames (default: {HEADLESS_FRAMES} headless, else when closed)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed for the level layouts")
    parser.add_argument("--overlay", action="store_true", help="start with the telemetry overlay shown (F3)")
    parser.add_argument("--screenshot", metavar="PNG", help="with --frames: save the last frame to this file")
    arguments = parser.parse_args(argv)
    if arguments.frames is not None and arguments.frames < 1:
        parser.error("--frames must be 1 or more")
    if arguments.headless:  # SDL reads these when pygame.init() runs
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
        if arguments.frames is None:  # no window to close: without an end it would play forever
            arguments.frames = HEADLESS_FRAMES

    # Headless, the game runs as fast as it can in simulated time: the session lasts as long as
    # the frames it played, whatever the machine.
    clock = ManualClock(wall=time.time()) if arguments.headless else None
    try:
        tracker, emulator, spool = make_tracker(clock)
    except playhooks.ConfigurationError as error:  # a PLAYHOOKS_* variable to fix, named in the message
        parser.error(str(error))
    interrupted = False
    try:
        pygame.init()
        screen = pygame.display.set_mode((WIDTH, HEIGHT))
        pygame.display.set_caption("Coin Rush - playhooks sample")
        font = pygame.font.Font(None, 26)
        frame_clock = pygame.time.Clock()
        adapter = PygameAdapter(
            tracker,
            user_id="coin-rush-player",
            overlay_key=pygame.K_F3,
            show_overlay=arguments.overlay,
            platform="Other",
            playfab_id=PLAYFAB_ID,
            character_id=CHARACTER_ID,
        )
        game = Game(tracker.on_character_event, random.Random(arguments.seed))
        if arguments.headless:
            seconds = arguments.frames / FPS
            print(f"Coin Rush, headless: the autopilot plays {seconds:g} s of game time; Ctrl-C stops it", flush=True)
        frame = 0
        running = True
        while running:
            if arguments.headless:
                dt = 1 / FPS
                clock.advance(dt)
            else:
                dt = min(frame_clock.tick(FPS) / 1000, 0.05)
            for event in pygame.event.get():
                if event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE:
                    pygame.event.post(pygame.event.Event(pygame.QUIT))  # leave the way a closed window does
                adapter.process(event)  # the adapter ends the session on QUIT: the game just stops
                if event.type == pygame.QUIT:
                    running = False
            if adapter.active:  # out of focus or minimized, the game waits, as its playtime does
                game.step(dt, game.autopilot() if arguments.headless else keyboard_direction())
            game.draw(screen, font)
            adapter.draw(screen)
            pygame.display.flip()
            frame += 1
            if arguments.headless and frame % (PROGRESS_SECONDS * FPS) == 0:  # the HUD, with no screen
                print(f"{frame // FPS:5d} s   level {game.level}   score {game.score}   lives {game.lives}", flush=True)
            if frame == arguments.frames:
                if arguments.screenshot:
                    pygame.image.save(screen, arguments.screenshot)
                pygame.event.post(pygame.event.Event(pygame.QUIT))
    except KeyboardInterrupt:  # Ctrl-C stops a game as closing its window does: no traceback
        interrupted = True
    finally:  # even if the game crashes: end the session, send what can be sent
        pygame.quit()
        pending = tracker.close(timeout=5)
        if emulator is not None:
            print_recorded(emulator, sys.stdout)
            emulator.stop()
            shutil.rmtree(spool, ignore_errors=True)
    if pending:
        print(f"{pending} payload(s) not sent yet: they wait in the spool for the next run")
    return 130 if interrupted else 0  # 130: the shell's status for a program ended by Ctrl-C (SIGINT)


if __name__ == "__main__":
    sys.exit(main())
