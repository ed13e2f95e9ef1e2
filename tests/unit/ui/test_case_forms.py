"""The case page's forms without a browser: decline, a refused answer shown again with what
was typed, and two specialists declining the same case (the second gets the stale page)."""

from __future__ import annotations

import re

import pytest

from connector.workflow import open_case
from connector.workflow.commands import OpenCase
from tests.support import ui
from tests.support.store_samples import make_order


@pytest.fixture
def accession(services) -> str:
    with services.unit() as uow:
        return open_case.handle(OpenCase(make_order("CMD-UI-1"), "test"), uow).accession


def _form(page: str, form_id: str) -> dict:
    """The hidden fields of one form of the page, as the browser would post them."""
    html = page[page.index(f'id="{form_id}"'):]
    html = html[:html.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def _status(services, accession: str) -> str:
    with services.reading() as uow:
        return uow.queries.case_detail(accession)["status"]


def test_a_decline_rejects_the_case_and_says_so_on_the_page(app, services, accession):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    r = browser.post(f"/ui/cases/{accession}/decline",
                     data={**_form(page, "decline-form"), "reason": "hors champ de la télé-expertise"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=declined")
    assert _status(services, accession) == "REJECTED"
    shown = browser.get(r.headers["location"]).text
    assert "Demande déclinée" in shown and 'id="decline-form"' not in shown


def test_two_specialists_declining_the_same_case_the_second_gets_the_stale_page(
        app, services, accession):
    first, _ = ui.logged_in(app, "spec")
    second, _ = ui.logged_in(app, "spec2")
    forms = [_form(b.get(f"/ui/cases/{accession}").text, "decline-form") for b in (first, second)]
    assert first.post(f"/ui/cases/{accession}/decline",
                      data={**forms[0], "reason": "photos inexploitables"}).status_code == 303
    late = second.post(f"/ui/cases/{accession}/decline",
                       data={**forms[1], "reason": "autre raison"})
    assert late.status_code == 409 and "Rien n’a été envoyé" in late.text
    assert _status(services, accession) == "REJECTED"


@pytest.mark.parametrize("fields, expected", [
    ({"reason": "   "}, "reason is empty"),
    ({"reason": "x" * 200}, "longer than 199"),
])
def test_a_bad_decline_reason_shows_the_form_again_with_the_error(app, services, accession,
                                                                  fields, expected):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    r = browser.post(f"/ui/cases/{accession}/decline", data={**_form(page, "decline-form"),
                                                               **fields})
    assert r.status_code == 422 and expected in r.text and 'id="decline-form"' in r.text
    assert _status(services, accession) == "OPEN"


@pytest.mark.parametrize("fields, expected", [
    ({"text": "  ", "conduct": "no_visit"}, "the opinion is empty"),
    ({"text": "Naevus bénin.", "conduct": "not_a_conduct"}, "not_a_conduct"),
])
def test_a_refused_answer_keeps_what_was_typed_and_records_nothing(app, services, accession,
                                                                   fields, expected):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    r = browser.post(f"/ui/cases/{accession}/report", data={**_form(page, "answer-form"),
                                                              **fields})
    assert r.status_code == 422 and expected in r.text
    assert fields["text"].strip() in r.text
    with services.reading() as uow:
        assert uow.reports.count(accession) == 0
