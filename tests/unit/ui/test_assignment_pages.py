"""The care network on the /ui/ pages: a specialist's worklist shows the cases of the pools
they read with pool, assignee, deadline and the overdue flag; the case page's "take" and
"hand back" forms go through `assign_case` as the API does.

The routing file: pool `derm` (members spec and spec2 of tests.support.ui) for routine
requests, pool `urgences` (a member with no user here) for stat ones; routine due in 1 h.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import shutil

import pytest
from sqlalchemy import select

from connector.bootstrap import build
from connector.config import default_mappings_dir
from connector.demo import local_config
from connector.domain.model import Priority
from connector.entrypoints.ui import passwords
from connector.ports import free_port
from connector.store.schema import audit
from connector.workflow import open_case, refuse_order
from connector.workflow.commands import DeclineCase, OpenCase
from tests.support import ui
from tests.support.store_samples import make_order

SPEC, SPEC2 = ui.USERS["spec"][2], ui.USERS["spec2"][2]
OTHER = "810009999999"

ROUTING = f"""
default_pool = "derm"

[deadlines]
stat = "2h"
urgent = "1h"
routine = "1h"
grace = "24h"

[[pool]]
id = "derm"
label = "Dermatologie CHU"
members = ["{SPEC}", "{SPEC2}"]

[[pool]]
id = "urgences"
label = "Urgences dermatologiques"
members = ["{OTHER}"]

[[rule]]
pool = "urgences"
priority = ["stat"]
"""


@pytest.fixture
def services(tmp_path):
    """As tests/unit/ui/conftest.py's, on the shipped mappings with the routing file above."""
    mappings = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), mappings)
    (mappings / "routing.toml").write_text(ROUTING, encoding="utf-8")
    config = local_config(tmp_path / "var", ehr_port=free_port(), accounting_port=free_port(),
                          token=secrets.token_urlsafe(8))
    svc = build(config.model_copy(update={"mappings_dir": mappings}))
    svc.clock = ui.Clock()
    with svc.unit() as uow:
        for login, (role, name, rpps) in ui.USERS.items():
            uow.users.add(login=login, name=name, role=role, practitioner_id=rpps,
                          password=passwords.hash_password(ui.PASSWORD), now=uow.moment.iso)
    yield svc
    svc.store.close()


@pytest.fixture
def cases(services) -> dict[str, str]:
    """A routine case (pool derm, assigned to spec: first listed on a tie) and a stat one."""
    with services.unit() as uow:
        routine = open_case.handle(OpenCase(make_order("CMD-R"), "test"), uow).accession
        stat = open_case.handle(OpenCase(make_order("CMD-S", priority=Priority.STAT), "test"),
                                uow).accession
    return {"routine": routine, "stat": stat}


def _row(page: str, accession: str) -> str:
    match = re.search(rf'<tr data-accession="{accession}"[^>]*>.*?</tr>', page, re.S)
    return match.group(0) if match else ""


def _assignment(services, accession: str):
    with services.reading() as uow:
        return uow.routing.assignment(accession)


def _csrf_of(page: str, form_id: str) -> str:
    html = page[page.index(f'id="{form_id}"'):]
    return ui.csrf(html[:html.index("</form>")])


def test_a_specialist_sees_their_pools_cases_with_pool_assignee_and_deadline(app, cases):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get("/ui/").text
    row = _row(page, cases["routine"])
    assert "Dermatologie CHU" in row and "DUPONT Jean (vous)" in row
    assert "02/03/2026" in row and "En retard" not in row and 'class="overdue"' not in row
    assert _row(page, cases["stat"]) == ""
    assert browser.get(f"/ui/cases/{cases['stat']}").status_code == 404


def test_an_admin_sees_every_pool(app, cases):
    browser, _ = ui.logged_in(app, "boss")
    page = browser.get("/ui/", headers={"Accept-Language": "en"}).text
    assert "Urgences dermatologiques" in _row(page, cases["stat"])
    assert OTHER in _row(page, cases["stat"])  # a member with no user: named by IdNatPS
    assert "DUPONT Jean" in _row(page, cases["routine"])


def test_a_case_past_its_deadline_is_flagged_on_the_worklist_and_its_page(app, services,
                                                                          cases):
    browser, _ = ui.logged_in(app, "spec")
    services.clock.now += dt.timedelta(hours=1, minutes=1)
    row = _row(browser.get("/ui/").text, cases["routine"])
    assert 'class="overdue"' in row and "En retard" in row
    assert 'id="overdue"' in browser.get(f"/ui/cases/{cases['routine']}").text


def test_take_then_hand_back_move_the_case_and_are_audited(app, services, cases):
    accession = cases["routine"]
    browser, _ = ui.logged_in(app, "spec2")
    page = browser.get(f"/ui/cases/{accession}").text
    assert 'id="release-form"' not in page  # spec holds it
    r = browser.post(f"/ui/cases/{accession}/take", data={"csrf": _csrf_of(page, "take-form")})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=taken")
    assert _assignment(services, accession).assigned_to == SPEC2
    page = browser.get(r.headers["location"]).text
    assert "Demande prise" in page and 'id="take-form"' not in page
    r = browser.post(f"/ui/cases/{accession}/release",
                     data={"csrf": _csrf_of(page, "release-form")})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=released")
    assert _assignment(services, accession).assigned_to == SPEC  # the other member present
    with services.reading() as uow:
        actions = uow._conn.execute(select(audit.c.action, audit.c.actor)
                                    .where(audit.c.accession == accession)).all()
    assert ("case.taken", "specialist:spec2") in actions
    assert ("case.released", "specialist:spec2") in actions


def test_take_without_the_session_csrf_token_changes_nothing(app, services, cases):
    browser, _ = ui.logged_in(app, "spec2")
    r = browser.post(f"/ui/cases/{cases['routine']}/take", data={"csrf": "forged"})
    assert r.status_code == 403
    assert _assignment(services, cases["routine"]).assigned_to == SPEC


def test_take_of_a_case_declined_meanwhile_shows_the_conflict(app, services, cases):
    accession = cases["routine"]
    browser, _ = ui.logged_in(app, "spec2")
    page = browser.get(f"/ui/cases/{accession}").text
    with services.unit() as uow:
        refuse_order.decline(DeclineCase(accession, "hors champ", "test"), uow)
    r = browser.post(f"/ui/cases/{accession}/take", data={"csrf": _csrf_of(page, "take-form")})
    assert r.status_code == 409 and "no longer waits for an answer" in r.text
    assert _assignment(services, accession).assigned_to == SPEC


def test_a_requester_may_not_take_a_case(app, services, cases):
    browser, token = ui.logged_in(app, "req")
    r = browser.post(f"/ui/cases/{cases['routine']}/take", data={"csrf": token})
    assert r.status_code == 403
    assert _assignment(services, cases["routine"]).assigned_to == SPEC


def test_an_admin_hands_back_anyones_case(app, services, cases):
    browser, _ = ui.logged_in(app, "boss")
    page = browser.get(f"/ui/cases/{cases['routine']}").text
    assert 'id="take-form"' not in page  # an admin takes nothing for themselves
    r = browser.post(f"/ui/cases/{cases['routine']}/release",
                     data={"csrf": _csrf_of(page, "release-form")})
    assert r.status_code == 303
    assert _assignment(services, cases["routine"]).assigned_to == SPEC2


def test_a_specialist_cannot_take_a_case_of_a_pool_they_do_not_read(app, services, cases):
    browser, token = ui.logged_in(app, "spec")
    r = browser.post(f"/ui/cases/{cases['stat']}/take", data={"csrf": token})
    assert r.status_code == 404  # the page does not tell them the case exists
    assert _assignment(services, cases["stat"]).assigned_to == OTHER
