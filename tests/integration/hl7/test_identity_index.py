"""Issue 12, done when: the patient identity is an index, over real MLLP sockets into a running
connector (its outbox worker on a real Orthanc). An order keyed on a qualified INS, then an
A08 with the IPP alone, an A08 with the INS alone, an A47 changing the IPP and an A40 merging a
second patient: after each, the case and its study in Orthanc carry the latest demographics,
every UID kept, every stored object dciodvfy-clean. Identities that contradict a known patient
are refused AE at the PID field at fault, change nothing, and are counted with the events
about unknown patients in the health report."""

from __future__ import annotations

import requests

from sqlalchemy import select

from connector.archive.client import ArchiveClient
from connector.bootstrap import build
from connector.config import load_config
from connector.demo import demo_photo
from connector.hl7.ack import AckResult
from connector.runtime.server import RunningConnector
from connector.store import cases
from connector.store.schema import outbox
from connector.workflow import attach_image
from connector.workflow.commands import AttachImage
from tests.support.cli import EXAMPLE_DEVICES
from tests.support.dciodvfy import dciodvfy_errors
from tests.support.inbound import CONSENT, REQUESTER, MllpSocket, msh, segment, wire
from tests.support.wait import wait_until

NIR = "279035121518989"
INS = f"{NIR}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
IPP_AUTHORITY = "CHU_DEMO&1.2.250.1.999.1&ISO"
SENDER = "DPI_HOPITAL|CHU_DEMO"


def ipp(value: str) -> str:
    return f"{value}^^^{IPP_AUTHORITY}^PI"


def pid(ids: str, name: str, birth: str = "19790321", sex: str = "F",
        status: str = "QUAL") -> str:
    return segment("PID", {1: "1", 3: ids, 5: f"{name}^^^^^L", 7: birth, 8: sex, 32: status})


def order(placer: str, ids: str, name: str, **traits) -> bytes:
    return wire(msh("ORM^O01^ORM_O01", f"ORD-{placer}"), pid(ids, name, **traits),
                "PV1|1|O",
                segment("ORC", {1: "NW", 2: f"{placer}^DPI_HOPITAL", 9: "20261124075500",
                                12: REQUESTER}),
                segment("OBR", {1: "1", 2: f"{placer}^DPI_HOPITAL",
                                4: "TELEDERM^Télé-expertise dermatologie^L", 13: "Lésion",
                                16: REQUESTER}),
                CONSENT)


def adt(trigger: str, control_id: str, ids: str, name: str, prior: str = "",
        **traits) -> bytes:
    return wire(msh(f"ADT^{trigger}", control_id, app="SIH_IDENTITE"), f"EVN|{trigger}",
                pid(ids, name, **traits), f"MRG|{prior}" if prior else "")


class Connector:
    def __init__(self, running: RunningConnector, archive: ArchiveClient, tmp_path):
        self.running, self.services, self.archive = running, running.services, archive
        self.tmp_path = tmp_path
        self.sock = MllpSocket(running.hl7_port)

    def send(self, raw: bytes) -> AckResult:
        return self.sock.send(raw)

    def accepted(self, raw: bytes) -> None:
        ack = self.send(raw)
        assert ack.code == "AA", [e.text for e in ack.errors]

    def case(self, placer: str):
        with self.services.store.engine.connect() as conn:
            return cases.load(conn, cases.find_by_placer(conn, SENDER, placer))

    def drained(self) -> None:
        def idle():
            with self.services.store.engine.connect() as conn:
                return not conn.execute(select(outbox.c.id).where(
                    outbox.c.status == "pending", outbox.c.destination == "archive")).first()
        wait_until(idle, 90, "the archive line drained")

    def health(self) -> dict:
        with self.services.reading() as uow:
            return uow.queries.health(True)

    def study(self, case) -> list[dict]:
        """Each stored instance's patient tags (the study is complete: every UID, from the
        archive's own listing), after checking every file with dciodvfy."""
        instances = self.archive.study_patient_tags(case.study_uid)
        for entry in instances:
            path = self.tmp_path / f"{entry['SOPInstanceUID']}.dcm"
            path.write_bytes(self.archive.instance_file(entry["orthanc_id"]))
            assert dciodvfy_errors(path) == [], entry["SOPInstanceUID"]
        return instances

    def uids(self, case) -> set[str]:
        return {i["SOPInstanceUID"] for i in self.archive.study_instances(case.study_uid)}


def start(orthanc_factory, tmp_path) -> tuple[RunningConnector, ArchiveClient]:
    orthanc = orthanc_factory()
    config = load_config(None, environ={
        **EXAMPLE_DEVICES, "TELEDERM_DATA_DIR": str(tmp_path / "data"),
        "TELEDERM_WORKLIST_ENABLED": "false", "TELEDERM_ORTHANC_MANAGED": "false",
        "TELEDERM_ORTHANC_URL": orthanc.url, "TELEDERM_HL7_LISTEN": "127.0.0.1:0",
        "TELEDERM_HTTP_LISTEN": "127.0.0.1:0"})
    archive = ArchiveClient(orthanc.url, orthanc.username, orthanc.password)
    services = build(config)
    services.archive = archive
    return RunningConnector(config, services), archive


def patient_of(instances: list[dict]) -> set[tuple[str, str, str, str]]:
    return {(i["PatientID"], i["PatientName"], i["PatientBirthDate"], i["PatientSex"])
            for i in instances}


def others_of(instances: list[dict]) -> set[tuple[tuple[str, str], ...]]:
    """The Other Patient IDs Sequence of each instance, as (PatientID, IssuerOfPatientID)."""
    return {tuple((item["PatientID"], item.get("IssuerOfPatientID", ""))
                  for item in i["OtherPatientIDsSequence"]) for i in instances}


def test_every_identifier_finds_the_patient_and_identity_events_reach_orthanc(
        orthanc_factory, tmp_path):
    running, archive = start(orthanc_factory, tmp_path)
    with running:
        c = Connector(running, archive, tmp_path)
        # An order keyed on a qualified INS (PID-32 QUAL), the IPP alongside; two images.
        c.accepted(order("PL-A", f"{ipp('IPP-A')}~{INS}", "DUPONT^Hélène"))
        first = c.case("PL-A")
        assert (first.order.patient.id, first.order.patient.other_ids) == (
            NIR, (("IPP-A", "1.2.250.1.999.1"),))
        attach_image.attach(c.services, [AttachImage(first.accession, demo_photo(d), "test")
                                         for d in (False, True)])
        c.drained()
        uids = c.uids(first)
        assert len(uids) == 2
        assert patient_of(c.study(first)) == {(NIR, "DUPONT^Hélène", "19790321", "F")}
        assert others_of(c.study(first)) == {(("IPP-A", "1.2.250.1.999.1"),)}

        def after(control_id: str, raw: bytes, expected: tuple[str, str, str, str]) -> None:
            c.accepted(raw)
            c.drained()
            p = c.case("PL-A").order.patient
            assert (p.id, p.name.hl7(), p.birth_date, p.sex) == expected, control_id
            assert patient_of(c.study(first)) == {expected}, control_id
            assert others_of(c.study(first)) == {p.other_ids}, control_id
            assert c.uids(first) == uids, control_id

        # A08 from a system that holds only the IPP: found through the index, INS kept.
        after("A08-IPP", adt("A08", "A08-IPP", ipp("IPP-A"), "MARTIN^Hélène", status=""),
              (NIR, "MARTIN^Hélène", "19790321", "F"))
        # A08 with the INS alone: the same patient, the IPP kept.
        after("A08-INS", adt("A08", "A08-INS", INS, "MARTIN^Hélène Marie", birth="19790312"),
              (NIR, "MARTIN^Hélène Marie", "19790312", "F"))
        assert c.case("PL-A").order.patient.other_ids == (("IPP-A", "1.2.250.1.999.1"),)
        # A47: the IPP is replaced; the old one finds nobody any more.
        after("A47", adt("A47", "A47-1", f"{ipp('IPP-A2')}~{INS}", "MARTIN^Hélène Marie",
                         birth="19790312", prior=ipp("IPP-A")),
              (NIR, "MARTIN^Hélène Marie", "19790312", "F"))
        assert c.case("PL-A").order.patient.other_ids == (("IPP-A2", "1.2.250.1.999.1"),)
        assert c.health()["identity"]["unknown_patient_events"] == 0
        c.accepted(adt("A08", "A08-OLD", ipp("IPP-A"), "MARTIN^Hélène", status=""))
        assert c.health()["identity"]["unknown_patient_events"] == 1
        assert c.case("PL-A").order.patient.name.hl7() == "MARTIN^Hélène Marie"

        # A second patient (another record, another study), then merged into the first.
        c.accepted(order("PL-B", ipp("IPP-B"), "MARTIN^Helene", birth="19790312",
                         status="PROV"))
        second = c.case("PL-B")
        attach_image.attach(c.services, [AttachImage(second.accession, demo_photo(False),
                                                     "test")])
        c.drained()
        second_uids = c.uids(second)
        assert patient_of(c.study(second)) == {("IPP-B", "MARTIN^Helene", "19790312", "F")}
        merged = (NIR, "MARTIN-DURAND^Hélène Marie", "19790312", "F")
        after("A40", adt("A40", "A40-1", f"{ipp('IPP-A2')}~{INS}", "MARTIN-DURAND^Hélène Marie",
                         birth="19790312", prior=ipp("IPP-B")), merged)
        p = c.case("PL-B").order.patient
        assert (p.id, p.name.hl7(), p.birth_date, p.sex) == merged
        assert patient_of(c.study(second)) == {merged}
        # the prior IPP finds the patient and is sent nowhere: not in the merged study
        assert others_of(c.study(second)) == {(("IPP-A2", "1.2.250.1.999.1"),)}
        assert c.uids(second) == second_uids
        # The prior IPP still finds the surviving patient.
        after("A08-B", adt("A08", "A08-B", ipp("IPP-B"), "DURAND^Hélène Marie", birth="19790312",
                           status=""),
              (NIR, "DURAND^Hélène Marie", "19790312", "F"))
        assert c.case("PL-B").order.patient.name.hl7() == "DURAND^Hélène Marie"
        # ... and stays retired: the message that still names it does not make it sent again
        assert c.case("PL-B").order.patient.other_ids == (("IPP-A2", "1.2.250.1.999.1"),)

        # Collisions: refused AE at the field at fault, nothing changed, incidents recorded.
        c.accepted(order("PL-C", ipp("IPP-C"), "LEROY^Anne", birth="19800101", status="PROV"))
        before = c.case("PL-A").order.patient
        refusals = [
            # an identifier claimed by two patients: IPP-C is the other patient's
            (adt("A08", "A08-TWO", f"{ipp('IPP-C')}~{INS}", "DURAND^Hélène Marie"),
             ("205", "PID^1^3^1")),
            # the qualified INS already known with another name, birth date and IPP
            (order("PL-D", f"{ipp('IPP-D')}~{INS}", "BERNARD^Lucie", birth="19900101"),
             ("205", "PID^1^3^1")),
            # same identifiers, another birth date
            (order("PL-E", f"{ipp('IPP-A2')}~{INS}", "DURAND^Hélène Marie", birth="19900101"),
             ("207", "PID^1^7")),
            # a change of identifier to one that belongs to another patient
            (adt("A47", "A47-TWO", ipp("IPP-C"), "DURAND^Hélène Marie", prior=ipp("IPP-A2")),
             ("205", "PID^1^3^1")),
        ]
        for raw, (code, location) in refusals:
            ack = c.send(raw)
            assert ack.code == "AE", location
            assert (ack.errors[0].hl7_code, ack.errors[0].location) == (code, location)
            assert "DURAND" not in ack.errors[0].text and NIR not in ack.errors[0].text
        assert c.case("PL-A").order.patient == before
        assert c.case("PL-C").order.patient.name.hl7() == "LEROY^Anne"
        with c.services.store.engine.connect() as conn:
            assert cases.find_by_placer(conn, SENDER, "PL-D") is None
        identity = c.health()["identity"]
        assert identity["conflicts"] == 4
        assert [i["control_id"] for i in identity["latest_conflicts"]] == [
            "A47-TWO", "ORD-PL-E", "ORD-PL-D", "A08-TWO"]
        assert any("identity incident" in p for p in c.health()["problems"])
        served = requests.get(f"http://127.0.0.1:{running.http_port}/api/health", timeout=10)
        assert served.json()["identity"] == {**identity, "unknown_patient_events": 1}
        c.sock.close()


def test_identity_status_transitions_move_the_identifier_between_ipp_and_ins(inbound):
    """PROV -> QUAL makes the INS the identifier (the IPP alongside), QUAL -> VALI makes the INS
    unusable again (kept, sent nowhere) and the IPP the identifier; each queues the archive
    update of the case, whose PatientID changes."""
    def send(raw: bytes) -> None:
        ack = inbound.send(raw)
        assert ack.code == "AA", [e.text for e in ack.errors]

    send(order("PL-S", f"{ipp('IPP-S')}~{INS}", "DUPONT^Hélène", status="PROV"))
    accession = inbound.accession("PL-S")
    with inbound.services.store.engine.connect() as conn:
        attached = cases.load(conn, accession).order.patient
    assert (attached.id, attached.ins, attached.ins_usable) == ("IPP-S", NIR, False)
    attach_image.attach(inbound.services, [AttachImage(accession, demo_photo(False), "test")])
    seen = []
    for n, (status, ids, identifier, usable) in enumerate([
            ("QUAL", f"{ipp('IPP-S')}~{INS}", NIR, True),
            ("VALI", ipp("IPP-S"), "IPP-S", False),  # the INS left out: kept, unusable
            ("QUAL", INS, NIR, True)]):
        send(adt("A31", f"A31-S{n}", ids, "DUPONT^Hélène", status=status))
        with inbound.services.store.engine.connect() as conn:
            p = cases.load(conn, accession).order.patient
        assert (p.id, p.ins, p.identity_status, p.ins_usable) == (identifier, NIR, status,
                                                                  usable), status
        seen.append(len(inbound.outbox("archive.update_patient", accession)))
    assert seen == [1, 2, 3]


def test_an_ipp_of_another_facility_finds_the_patient_and_an_account_number_does_not(inbound):
    """PID-3 repetitions beyond the chosen IPP (another facility's IPP, untyped or PI) are the
    patient's identifiers too: a later A08 carrying only that one updates the same case."""
    other = "IPP-ALES^^^CH_ALES&1.2.250.1.999.2&ISO^PI"
    account = "ACC-5^^^CHU_DEMO&1.2.250.1.999.1&ISO^AN"
    ack = inbound.send(order("PL-O", f"{ipp('IPP-O')}~{other}~{account}", "BLANC^Anne",
                             status="PROV"))
    assert ack.code == "AA", [e.text for e in ack.errors]
    accession = inbound.accession("PL-O")
    with inbound.services.store.engine.connect() as conn:
        pk = cases.find_patient(conn, "IPP-O", "1.2.250.1.999.1")
        assert cases.find_patient(conn, "IPP-ALES", "1.2.250.1.999.2") == pk is not None
        assert cases.find_patient(conn, "ACC-5", "1.2.250.1.999.1") is None
    ack = inbound.send(adt("A08", "A08-O", "IPP-ALES^^^CH_ALES&1.2.250.1.999.2&ISO^PI",
                           "BLANC^Anne-Marie", status="PROV"))
    assert ack.code == "AA", [e.text for e in ack.errors]
    with inbound.services.store.engine.connect() as conn:
        assert cases.load(conn, accession).order.patient.name.given == "Anne-Marie"
