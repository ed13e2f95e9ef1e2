"""The case page's forms without a browser: decline, a refused answer shown again with what
was typed, an answer refused while the images are still arriving, two specialists declining the same case (the second gets the stale page), and the
correction of an answered case."""

from __future__ import annotations

import re

import pytest

from connector.reports.signing import verify
from connector.workflow import open_case
from connector.workflow.commands import OpenCase
from tests.support import ui
from tests.support.services import archive_holds
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


def test_an_answer_before_the_images_are_stable_is_refused_and_keeps_what_was_typed(
        app, services, accession):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    assert 'id="images-not-stable"' in page and '<button id="sign-send" disabled>' in page
    r = browser.post(f"/ui/cases/{accession}/report", data={
        **_form(page, "answer-form"), "text": "Naevus bénin, à revoir.", "conduct": "no_visit"})
    assert r.status_code == 409 and "Avis non envoyé" in r.text
    assert "Naevus bénin, à revoir." in r.text
    with services.reading() as uow:
        assert uow.reports.count(accession) == 0
    assert archive_holds(services, accession) == "READY"
    ready = browser.get(f"/ui/cases/{accession}").text
    assert 'id="images-not-stable"' not in ready and '<button id="sign-send">' in ready


@pytest.fixture
def answered(app, services, accession) -> str:
    """The case answered through its page's form (its images stored and stable)."""
    archive_holds(services, accession)
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    r = browser.post(f"/ui/cases/{accession}/report", data={
        **_form(page, "answer-form"), "text": "Naevus bénin.", "conduct": "no_visit"})
    assert r.status_code == 303, r.text
    return accession


def test_an_answered_case_shows_the_correction_form_and_a_correction_is_a_new_signed_version(
        app, services, answered):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{answered}").text
    assert 'id="correct-form"' in page and 'id="answer-form"' not in page
    r = browser.post(f"/ui/cases/{answered}/report/correct", data={
        **_form(page, "correct-form"), "text": "Naevus dysplasique, exérèse.",
        "conduct": "no_visit", "reason": "relecture des photos"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=corrected")
    assert "Correction signée et envoyée" in browser.get(r.headers["location"]).text
    with services.reading() as uow:
        row = uow.reports.latest(answered)
        assert (row.version, row.status, row.text) == (2, "C", "Naevus dysplasique, exérèse.")
        assert uow.queries.case_detail(answered)["status"] == "AMENDED"
    got = verify(row.pdf, trust=(services.config.reports.signing_cert,))
    assert got.intact and got.valid and got.trusted
    # The same form posted again is stale: version 2 exists now.
    again = browser.post(f"/ui/cases/{answered}/report/correct", data={
        **_form(page, "correct-form"), "text": "autre", "conduct": "no_visit", "reason": "x"})
    assert again.status_code == 409


def test_a_correction_without_a_reason_shows_the_form_again_and_records_nothing(
        app, services, answered):
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{answered}").text
    r = browser.post(f"/ui/cases/{answered}/report/correct", data={
        **_form(page, "correct-form"), "text": "Naevus dysplasique.", "conduct": "no_visit",
        "reason": "  "})
    assert r.status_code == 422 and "reason is empty" in r.text
    assert "Naevus dysplasique." in r.text and 'id="correct-form"' in r.text
    with services.reading() as uow:
        assert uow.reports.count(answered) == 1
