"""A medical manager reads /ui/dashboard in headless Chromium: the figures and the four plots
(drawn on the server as SVG) of a generated history of 240 cases with known answers
(tests/support/history.py), served over real HTTP by uvicorn. A specialist may not open it.

The screenshot goes to tests/artifacts/ui/dashboard.png (git-ignored)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import uvicorn

from connector.bootstrap import build
from connector.config import load_config
from connector.entrypoints.api.app import create_app
from connector.ports import free_port
from tests.support.cli import telederm, write_config
from tests.support.history import build_history
from tests.support.wait import wait_until
from tests.support.cli import EXAMPLE_DEVICES

playwright = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "tests" / "artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is never used
PASSWORD = "a long enough passphrase"
PLOTS = ("turnaround", "weekly", "outcomes", "sla")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard")
    config = write_config(tmp / "telederm.toml", tmp / "data")
    for login, role, extra in (("direction", "manager", ()),
                               ("jdupont", "specialist", ("--id", "810001234567"))):
        added = telederm("users", "add", login, "--role", role, "--name", "MARTIN^Anne",
                         *extra, "--password-stdin", "--config", config, stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
    services = build(load_config(config, environ=EXAMPLE_DEVICES))
    build_history(services)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    services.store.engine.dispose()


def _login(page, base: str, login: str, target: str) -> None:
    page.goto(f"{base}{target}")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")


def test_dashboard_shows_the_figures_and_draws_the_four_plots_for_a_manager(site):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(locale="fr-FR", viewport={"width": 1280, "height": 1400},
                                    extra_http_headers={"Accept-Language": "fr"})
            _login(page, site, "direction", "/ui/dashboard?from=2026-01-01&to=2026-01-31")
            page.wait_for_selector("#plot-sla svg")
            assert page.url.endswith("/ui/dashboard?from=2026-01-01&to=2026-01-31")
            assert page.inner_text("#opened") == "240"
            assert page.inner_text("#answered") == "192"
            assert page.inner_text("#median") == "25.0 h"
            assert page.inner_text("#without-visit") == "109 (57 %)"
            assert "photos inexploitables" in page.inner_text("#reasons")
            for name in PLOTS:
                svg = page.locator(f"#plot-{name} svg")
                box = svg.bounding_box()
                assert box and box["width"] > 200 and box["height"] > 100, (name, box)
                # Bars are drawn as paths: more than the axes' own few.
                assert svg.locator("path").count() >= 8, name
            assert "Délai de réponse" in page.inner_text("#plot-turnaround")
            assert "Demandes reçues par semaine" in page.inner_text("#plot-weekly")
            assert "2026-W03" in page.inner_text("#plot-weekly")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            empty = browser.new_page()
            _login(empty, site, "direction", "/ui/dashboard?from=2020-01-01&to=2020-01-31")
            empty.wait_for_selector("#empty")
            assert empty.locator("figure.plot").count() == 0

            specialist = browser.new_page()
            _login(specialist, site, "jdupont", "/ui/dashboard")
            specialist.wait_for_load_state()
            assert specialist.locator("#plot-sla").count() == 0
            assert specialist.locator("#nav-dashboard").count() == 0
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 20_000
