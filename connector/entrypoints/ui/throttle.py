"""Slowing down password guessing on the login page.

Each failed login counts against the login tried and against the client's address, for
WINDOW_SECONDS. Past FREE_FAILURES, every attempt on either key waits before its password is
even checked: 0.5 s, then twice as long at each further failure, at most MAX_DELAY_SECONDS.
Waiting before the check (not after a failure) matters: a guesser cannot tell a right guess
by its quick answer and give up on the slow ones. The counts live in the serving process (a
restart forgets them; several workers each count their own), which bounds guessing to a few
hundred tries an hour per login instead of thousands a second; every failure is also an
audit row, for whoever watches the trail.
"""

from __future__ import annotations

import threading
import time

WINDOW_SECONDS = 15 * 60
FREE_FAILURES = 3
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0
MAX_KEYS = 10_000


class LoginThrottle:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, ()) if now - t < WINDOW_SECONDS]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def failures(self, *keys: str) -> int:
        """The most failures any of `keys` has in the window."""
        with self._lock:
            now = self._clock()
            return max((len(self._recent(k, now)) for k in keys), default=0)

    def delay(self, *keys: str) -> float:
        """How long the next attempt on these keys waits before its password is checked."""
        extra = self.failures(*keys) - FREE_FAILURES
        return 0.0 if extra < 0 else min(FIRST_DELAY_SECONDS * 2 ** extra, MAX_DELAY_SECONDS)

    def failed(self, *keys: str) -> None:
        with self._lock:
            now = self._clock()
            if len(self._failures) > MAX_KEYS:  # many logins tried: forget the stale ones
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                self._failures[key] = self._recent(key, now) + [now]
