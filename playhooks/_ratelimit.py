"""A sliding-window rate limit per key: at most ``limit`` requests in any ``window`` seconds."""

import collections
import math
import threading
import time
from typing import Callable, Deque, Dict, Optional


class RateLimiter:
    """Counts requests per key; ``check`` says how long a refused caller must wait.

    Args:
        limit: requests allowed per window and key.
        window: the window, in seconds.
        clock: monotonic seconds; injectable for tests.

    Raises:
        ValueError: a limit under 1 (it could only refuse everything) or a window of no time.
    """

    def __init__(self, limit: int, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"rate limit: must be a whole number >= 1 (got {limit!r})")
        if not window > 0:
            raise ValueError(f"rate window: must be more than 0 seconds (got {window!r})")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)

    def check(self, key: str) -> Optional[int]:
        """Count a request for ``key``: None if allowed, else whole seconds to wait (at least 1)."""
        now = self._clock()
        with self._lock:
            seen = self._seen[key]
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) < self.limit:
                seen.append(now)
                return None
            return max(1, math.ceil(seen[0] + self.window - now))

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
