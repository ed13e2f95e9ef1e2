"""Loopback addresses for tests."""

from __future__ import annotations

from connector.ports import free_port


def unused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"
