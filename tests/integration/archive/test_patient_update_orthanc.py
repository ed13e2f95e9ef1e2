"""ADT^A08 / A40 against a real managed Orthanc: the stored study takes the new demographics
(and, for a merge, the surviving PatientID) through the outbox job `archive.update_patient`,
which waits while Orthanc is down, keeps every UID, does nothing the second time, and repairs an
attempt interrupted between deleting an instance and storing its new version."""

from __future__ import annotations

import json

from sqlalchemy import select

from connector.archive.client import ArchiveClient
from connector.config import load_config
from connector.demo import demo_photo
from connector.domain.model import PersonName, Practitioner
from connector.hl7.ack import read_ack
from connector.store import cases
from connector.store.schema import outbox
from connector.runtime import worker
from connector.workflow import attach_image, record_report, update_patient
from connector.workflow.commands import AttachImage, RecordReport
from connector.entrypoints import hl7_intake
from connector.bootstrap import build
from connector.store.files import write_durably
from tests.support.services import archive_holds
from tests.support.wait import wait_until
from tests.support.cli import EXAMPLE_DEVICES

PATIENT_TAGS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex")


def msh(message_type: str, control_id: str) -> str:
    return (f"MSH|^~\\&|DPI_HOPITAL|CHU_DEMO|TELEDERM|TELEDERM|20261124080000||{message_type}|"
            f"{control_id}|P|2.5|||||FRA|UNICODE UTF-8")


def pid(patient: str, name: str, birth: str, sex: str) -> str:
    return f"PID|1||{patient}^^^CHU_DEMO^PI||{name}^^^^^L||{birth}|{sex}"


def wire(*segments: str) -> bytes:
    return ("\r".join(s for s in segments if s) + "\r").encode("utf-8")


def new_order() -> bytes:
    requester = "801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"
    return wire(msh("ORM^O01^ORM_O01", "ORM-ARCH-1"),
                pid("IPP-ARCH", "DUPONT^Hélène", "19580312", "F"), "PV1|1|O",
                f"ORC|NW|PL-ARCH^DPI_HOPITAL|||||||20261124075500|||{requester}",
                "OBR|1|PL-ARCH^DPI_HOPITAL||TELEDERM^Télé-expertise^L|||||||||Lésion",
                "OBX|1|CWE|CONSENT^Consentement^L||Y^Oui^HL70136||||||F")


def adt(trigger: str, control_id: str, patient: str, name: str, birth: str, sex: str,
        prior: str = "") -> bytes:
    return wire(msh(f"ADT^{trigger}", control_id), f"EVN|{trigger}",
                pid(patient, name, birth, sex), f"MRG|{prior}^^^CHU_DEMO^PI" if prior else "")


def test_patient_update_and_merge_rewrite_the_stored_study(orthanc_factory, tmp_path):
    orthanc = orthanc_factory()
    config = load_config(None, environ={**EXAMPLE_DEVICES, "TELEDERM_DATA_DIR": str(tmp_path / "data"),
                                        "TELEDERM_WORKLIST_ENABLED": "false",
                                        "TELEDERM_ORTHANC_URL": orthanc.url})
    services = build(config)
    services.archive = ArchiveClient(orthanc.url, orthanc.username, orthanc.password)
    archive = services.archive

    def send(raw: bytes) -> None:
        ack = read_ack(hl7_intake.handle(services, raw, "test"))
        assert ack.code == "AA", [e.text for e in ack.errors]

    def jobs() -> list:
        with services.store.engine.connect() as conn:
            return conn.execute(select(outbox).where(outbox.c.kind == update_patient.KIND)
                                .order_by(outbox.c.id)).all()

    def drain() -> None:
        def idle():
            worker.run_once(services)
            with services.store.engine.connect() as conn:
                return not conn.execute(select(outbox.c.id).where(
                    outbox.c.status == "pending", outbox.c.destination == "archive")).first()
        wait_until(idle, 60, "the archive line drained")

    def stored() -> tuple[dict, list[dict]]:
        study_id = archive.find_study(case.study_uid)
        study = archive._request("get", f"studies/{study_id}").json()
        return study["PatientMainDicomTags"], archive.study_patient_tags(case.study_uid)

    send(new_order())
    with services.store.engine.connect() as conn:
        case = cases.load(conn, cases.find_by_placer(conn, "DPI_HOPITAL|CHU_DEMO", "PL-ARCH"))
    for dermoscopy in (False, True):
        attach_image.attach(services, [AttachImage(case.accession, demo_photo(dermoscopy),
                                                   "test")])
    drain()  # the photos stored; then the study's stable event, which no plugin sends here
    assert archive_holds(services, case.accession) == "READY"
    with services.unit() as uow:
        record_report.handle(RecordReport(
            case.accession, "Naevus bénin.", "no_visit",
            Practitioner("810001234567", PersonName("LEROY", "Claire")), "test"), uow)
    drain()
    before = archive.study_instances(case.study_uid)
    assert len(before) == 3  # two photos and the report's Encapsulated PDF
    uids = {(i["SOPInstanceUID"], i["SOPClassUID"]) for i in before}

    # A08 while Orthanc is down: the job fails, stays queued, and completes once it is back.
    orthanc.managed.stop()
    send(adt("A08", "ADT-1", "IPP-ARCH", "MARTIN^Éloïse", "19580313", "O"))
    worker.run_once(services)
    (job,) = jobs()
    assert (job.status, job.attempts) == ("pending", 1)
    assert "unreachable" in job.last_error
    orthanc.managed.start()
    drain()
    assert jobs()[0].status == "done"
    study_tags, instances = stored()
    assert {k: study_tags.get(k) for k in PATIENT_TAGS} == {
        "PatientID": "IPP-ARCH", "PatientName": "MARTIN^Éloïse",
        "PatientBirthDate": "19580313", "PatientSex": "O"}
    assert len(instances) == 3
    assert {i["PatientName"] for i in instances} == {"MARTIN^Éloïse"}
    after = archive.study_instances(case.study_uid)  # same study, same objects, same UIDs
    assert {(i["SOPInstanceUID"], i["SOPClassUID"]) for i in after} == uids
    assert {i["AccessionNumber"] for i in after} == {case.accession}
    # Done twice changes nothing.
    assert update_patient.perform(services, jobs()[0].payload) == "unchanged"

    # A40: the study moves to the surviving patient in Orthanc, UIDs kept, the prior gone.
    send(adt("A40", "ADT-2", "IPP-SURV", "MARTIN^Éloïse", "19580313", "O", prior="IPP-ARCH"))
    drain()
    study_tags, instances = stored()
    assert study_tags["PatientID"] == "IPP-SURV"
    assert {i["PatientID"] for i in instances} == {"IPP-SURV"}
    assert {i["SOPInstanceUID"] for i in instances} == {u for u, _ in uids}
    patients = [archive._request("get", f"patients/{p}").json()["MainDicomTags"]["PatientID"]
                for p in archive._request("get", "patients").json()]
    assert patients == ["IPP-SURV"]

    # An attempt interrupted after deleting an instance (its new version only on disk) is
    # finished by the next one.
    send(adt("A31", "ADT-3", "IPP-SURV", "MARTIN-DURAND^Éloïse", "19580313", "O"))
    with services.store.engine.connect() as conn:
        target = update_patient.archive_tags(cases.load(conn, case.accession).order.patient)
    first = archive.study_patient_tags(case.study_uid)[0]
    write_durably(config.data_dir / update_patient.SPOOL / case.accession
                  / f"{first['SOPInstanceUID']}.dcm",
                  archive.modified_instance(first["orthanc_id"], target))
    assert archive.delete_instance(first["orthanc_id"])
    assert len(archive.study_patient_tags(case.study_uid)) == 2
    drain()
    study_tags, instances = stored()
    assert study_tags["PatientName"] == "MARTIN-DURAND^Éloïse"
    assert {i["SOPInstanceUID"] for i in instances} == {u for u, _ in uids}
    assert {i["PatientName"] for i in instances} == {"MARTIN-DURAND^Éloïse"}
    assert not list((config.data_dir / update_patient.SPOOL / case.accession).glob("*.dcm"))
    assert [json.loads(j.payload) for j in jobs()] == [{"accession": case.accession}] * 3
    services.store.engine.dispose()
