"""Repeated failed logins slow every next attempt on that login (or from that address) down,
before the password is checked, and each failure is audited with the count."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from connector.entrypoints.ui.throttle import FIRST_DELAY_SECONDS, FREE_FAILURES, LoginThrottle
from connector.store.schema import audit
from tests.support import ui


def _timed_login(client, login: str, password: str):
    started = time.monotonic()
    response = ui.login(client, login, password)
    return response.status_code, time.monotonic() - started


def test_failures_past_the_free_ones_slow_the_next_attempts_even_the_right_one(app, services):
    client = ui.client(app)
    fast = [_timed_login(client, "spec", "wrong guess") for _ in range(FREE_FAILURES)]
    assert [code for code, _ in fast] == [401] * FREE_FAILURES
    assert max(took for _, took in fast) < FIRST_DELAY_SECONDS  # scrypt alone is quicker
    slowed = _timed_login(client, "spec", "wrong guess")  # 4th: waits 0.5 s, then fails
    assert slowed[0] == 401 and slowed[1] >= FIRST_DELAY_SECONDS
    right = _timed_login(client, "spec", ui.PASSWORD)  # waits 1 s before being let in
    assert right[0] == 303 and right[1] >= 2 * FIRST_DELAY_SECONDS

    with services.store.engine.connect() as conn:
        rows = conn.execute(select(audit.c.detail).where(audit.c.action == "ui.login_failed")
                            .order_by(audit.c.id)).scalars().all()
    details = [json.loads(d) for d in rows]
    assert [d["failures"] for d in details] == [1, 2, 3, 4]
    assert details[-1]["slowed_seconds"] == FIRST_DELAY_SECONDS
    assert all("wrong guess" not in d for d in rows)


def test_the_address_counts_across_logins_and_old_failures_are_forgotten():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for n in range(FREE_FAILURES):
        throttle.failed(f"login:user{n}", "client:10.0.0.9")
    assert throttle.delay("login:someone-else", "client:10.0.0.9") == FIRST_DELAY_SECONDS
    assert throttle.delay("login:someone-else", "client:10.0.0.10") == 0
    now[0] = 15 * 60 + 1
    assert throttle.delay("login:someone-else", "client:10.0.0.9") == 0
