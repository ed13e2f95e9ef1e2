"""The case page names the patient's linked records (ADT^A24): another record of the same
person, whose cases stay apart, is shown beside the patient — and only while it is linked."""

from __future__ import annotations

from connector.workflow import open_case
from connector.workflow.commands import OpenCase
from tests.support import ui
from tests.support.store_samples import make_order


def test_the_case_page_shows_the_linked_record_while_it_is_linked(app, services):
    with services.unit() as uow:
        accession = open_case.handle(OpenCase(make_order("CMD-LINK-1"), "test"), uow).accession
        open_case.handle(OpenCase(make_order("CMD-LINK-2", patient_id="IPP-AUTRE",
                                             given="Helene"), "test"), uow)
        pk, other = (uow.identity.find([(i, "CHU_NIMES")])[(i, "CHU_NIMES")]
                     for i in ("IPP0012345", "IPP-AUTRE"))
        uow.identity.link(pk, other)
    browser, _ = ui.logged_in(app, "spec")
    page = browser.get(f"/ui/cases/{accession}").text
    assert "Dossiers liés (même personne)" in page and "IPP-AUTRE (CHU_NIMES)" in page
    with services.unit() as uow:
        uow.identity.unlink(pk, other)
    page = browser.get(f"/ui/cases/{accession}").text
    assert "Dossiers liés" not in page and "IPP-AUTRE" not in page
