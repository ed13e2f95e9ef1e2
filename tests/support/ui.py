"""Driving the /ui/ pages through the real app in-process: log in, read a form's CSRF token."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

PASSWORD = "a long enough passphrase"
# login: (role, FAMILY^GIVEN, RPPS-based practitioner id)
USERS = {"spec": ("specialist", "DUPONT^Jean", "810001234567"),
         "spec2": ("specialist", "LEROY^Marie", "810007654321"),
         "req": ("requester", "MARTIN^Paul", ""),
         "boss": ("admin", "DURAND^Anne", "")}


class Clock:
    """The services' clock, moved on by the test."""

    def __init__(self):
        self.now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


def client(app, base_url="http://testserver") -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False)


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(browser: TestClient, name: str, password: str = PASSWORD):
    form = browser.get("/ui/login")
    return browser.post("/ui/login", data={"login": name, "password": password,
                                           "csrf": csrf(form.text), "next": "/ui/"})


def logged_in(app, name: str) -> tuple[TestClient, str]:
    """A client logged in as `name` and its session's CSRF token."""
    browser = client(app)
    assert login(browser, name).status_code == 303
    return browser, csrf(browser.get("/ui/login", follow_redirects=True).text)
