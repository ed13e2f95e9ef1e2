"""Wait for a condition with a deadline instead of sleeping for a guessed time."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, what: str, *, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy and return that; raise TimeoutError
    naming `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
