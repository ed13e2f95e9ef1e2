"""ADT^A24 / A37 over a real MLLP socket into the connector's HL7 intake (IHE PAM-FR link /
unlink patient information): two records said to be one person stay two records — each case
on its own, nothing rewritten in the archive — and a lookup by an identifier of either finds
the cases of the whole linked group; an unlink takes one link back. Unknown records are AA and
counted; identifiers naming two records are refused at the PID they are in."""

from __future__ import annotations

import pytest

from connector.demo import demo_photo
from connector.entrypoints import hl7_intake
from connector.store import identity
from connector.workflow import attach_image
from connector.workflow.commands import AttachImage
from tests.support.inbound import MllpSocket, msh, order, wire

AUTHORITY = "CHU_DEMO&1.2.250.1.999.1&ISO"
NIR = "279035121518989"
INS = "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"


def pid(ipps: tuple[str, ...], name: str = "DUPONT^Hélène", birth: str = "19580312") -> str:
    """PID-3 with these IPPs (`NIR`: the INS instead, its identity not qualified)."""
    ids = "~".join(f"{i}^^^{INS}" if i == NIR else f"{i}^^^{AUTHORITY}^PI" for i in ipps)
    return f"PID|1||{ids}||{name}^^^^^L||{birth}|F" if ipps else "PID|1||||^^^^^L"


def link(trigger: str, control_id: str, first: tuple[str, ...], second: tuple[str, ...] | None,
         ) -> bytes:
    return wire(msh(f"ADT^{trigger}^ADT_{trigger}", control_id, app="SIH_IDENTITE"),
                f"EVN|{trigger}", pid(first), "PV1|1|N",
                pid(second) if second is not None else "")


@pytest.fixture
def hl7(inbound, listener_on):
    listener = listener_on(lambda raw, peer: hl7_intake.handle(inbound.services, raw, peer))
    sock = MllpSocket(listener.port)
    yield sock
    sock.close()


def test_a24_links_two_records_and_a37_unlinks_them(inbound, hl7):
    def accepted(raw: bytes) -> None:
        ack = hl7.send(raw)
        assert ack.code == "AA", [e.text for e in ack.errors]

    def group(ipp: str) -> list[str]:
        return sorted(c["accession"] for c in inbound.cases_of(ipp))

    for n in (1, 2, 3):
        accepted(order(f"PL-L{n}", patient=f"IPP-L{n}", name=f"DUPONT^Hélène{n}"))
    one, two, three = (inbound.accession(f"PL-L{n}") for n in (1, 2, 3))
    # the first two have images: a link must rewrite nothing in the archive
    attach_image.attach(inbound.services, [AttachImage(a, demo_photo(False), "test")
                                           for a in (one, two)])
    assert group("IPP-L1") == [one]

    accepted(link("A24", "A24-1", ("IPP-L1",), ("IPP-L2",)))
    assert group("IPP-L1") == group("IPP-L2") == sorted([one, two])
    detail = inbound.case(one)
    assert (detail["patient"]["id"], detail["patient"]["name"]) == ("IPP-L1", "DUPONT^Hélène1")
    assert detail["patient"]["linked"] == [
        {"id": "IPP-L2", "issuer": "1.2.250.1.999.1", "name": "DUPONT^Hélène2"}]
    assert inbound.case(two)["patient"]["id"] == "IPP-L2"  # each case stays on its record
    assert inbound.outbox("archive.update_patient") == []
    assert {a["accession"] for a in inbound.audit("patient.linked")} == {one, two}

    # Links are followed from record to record; linking again changes nothing.
    accepted(link("A24", "A24-2", ("IPP-L2",), ("IPP-L3",)))
    accepted(link("A24", "A24-3", ("IPP-L2",), ("IPP-L1",)))
    assert group("IPP-L1") == group("IPP-L3") == sorted([one, two, three])

    # A37 takes back the one link it names.
    accepted(link("A37", "A37-1", ("IPP-L1",), ("IPP-L2",)))
    assert group("IPP-L1") == [one]
    assert group("IPP-L2") == sorted([two, three])
    assert inbound.case(one)["patient"]["linked"] == []

    # A record unknown here: AA, nothing changes, counted.
    accepted(link("A24", "A24-4", ("IPP-L1",), ("IPP-NOBODY",)))
    assert group("IPP-L1") == [one]
    with inbound.services.reading() as uow:
        assert uow.queries.health(True)["identity"]["unknown_patient_events"] == 1

    # The second PID's identifiers name two records: AE at that PID's repetition, an incident;
    # a link without its second PID: AE at the second PID.
    update = wire(msh("ADT^A08^ADT_A01", "A08-L3", app="SIH_IDENTITE"), "EVN|A08",
                  pid(("IPP-L3", NIR), name="DUPONT^Hélène3"))
    accepted(update)
    for raw, expected in [
            (link("A24", "A24-5", ("IPP-L1",), ("IPP-L2", NIR)), ("205", "PID^2^3^2")),
            (link("A24", "A24-6", ("IPP-L1",), None), ("101", "PID^2^3"))]:
        ack = hl7.send(raw)
        assert ack.code == "AE"
        assert (ack.errors[0].hl7_code, ack.errors[0].location) == expected
    with inbound.services.reading() as uow:
        assert [i["location"] for i in uow.queries.health(True)["identity"]
                ["latest_conflicts"]] == ["PID^2^3^2"]
    assert group("IPP-L1") == [one]


def test_a_merge_gives_the_surviving_record_the_links_of_the_prior_one(inbound, hl7):
    for n in (1, 2, 3):
        assert hl7.send(order(f"PL-M{n}", patient=f"IPP-M{n}")).code == "AA"
    accessions = sorted(inbound.accession(f"PL-M{n}") for n in (1, 2, 3))
    assert hl7.send(link("A24", "A24-M", ("IPP-M1",), ("IPP-M3",))).code == "AA"
    merge = wire(msh("ADT^A40^ADT_A39", "A40-M", app="SIH_IDENTITE"), "EVN|A40",
                 pid(("IPP-M2",)), f"MRG|IPP-M3^^^{AUTHORITY}")
    assert hl7.send(merge).code == "AA"
    assert sorted(c["accession"] for c in inbound.cases_of("IPP-M1")) == accessions
    with inbound.services.store.engine.connect() as conn:
        (pk,) = {p for p in identity.find(conn, [("IPP-M1", "1.2.250.1.999.1")]).values()}
        (survivor,) = identity.linked(conn, pk)
        assert identity.find(conn, [("IPP-M2", "1.2.250.1.999.1")]) == {
            ("IPP-M2", "1.2.250.1.999.1"): survivor}
