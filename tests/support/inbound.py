"""What the inbound HL7 tests send and read: `Inbound` (the `inbound` fixture's services on a
real SQLite file, with real MLLP peers for the requester's EHR and the accounting feed; no
Orthanc: archive jobs stay queued, on their own line, and `open_case` says what the archive
would once it held the images), and builders for what the hospital
sends: orders (ORM/OMG/OMI, NW/CA/XO), identity messages (ADT A08/A31/A40) and reports
(ORU^R01, MDM^T02/T10).

Messages go through the listener's handler (`hl7_intake.handle`, wire bytes in, ACK bytes
out); results are read where the outside world sees them (ACKs, peers, the store's read models).
"""

from __future__ import annotations

import itertools
import json
import socket
from dataclasses import dataclass

from sqlalchemy import select

from connector.demo import demo_photo
from connector.hl7.ack import AckResult, read_ack
from connector.hl7.mllp import FrameReader, frame
from connector.store import cases, queries
from connector.store.schema import audit, outbox
from connector.runtime import worker
from connector.workflow import attach_image
from connector.workflow.commands import AttachImage
from connector.entrypoints import hl7_intake
from connector.bootstrap import Services
from tests.support.peers import RecordingPeer
from tests.support.services import archive_holds
from tests.support.wait import wait_until

REQUESTER = "801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"
DERMATOLOGIST = "810001234567&LEROY&Claire&&&&&&&1.2.250.1.71.4.2.1&ISO"
SENDER = "DPI_HOPITAL|CHU_DEMO"
CONSENT = "OBX|1|CWE|CONSENT^Consentement du patient à la télé-expertise^L||Y^Oui^HL70136||||||F"
_ids = itertools.count(1)


class MllpSocket:
    """One MLLP connection to a listener on this machine: each message sent waits for its ACK."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = FrameReader()

    def send(self, raw: bytes) -> AckResult:
        self.sock.sendall(frame(raw))
        acks: list = []
        while not acks:
            data = self.sock.recv(65536)
            assert data, "the listener closed the connection"
            acks = self.reader.feed(data)
        return read_ack(acks[0])

    def close(self) -> None:
        self.sock.close()


def segment(name: str, fields: dict[int, str]) -> str:
    values = [""] * (max(fields) + 1 if fields else 1)
    for n, value in fields.items():
        values[n] = value
    return "|".join([name, *values[1:]])


def msh(message_type: str, control_id: str, app: str = "DPI_HOPITAL",
        facility: str = "CHU_DEMO") -> str:
    return (f"MSH|^~\\&|{app}|{facility}|TELEDERM|TELEDERM|20261124080000||{message_type}|"
            f"{control_id}|P|2.5|||||FRA|UNICODE UTF-8")


def pid(patient: str = "IPP-1", name: str = "DUPONT^Hélène", birth: str = "19580312",
        sex: str = "F", issuer: str = "CHU_DEMO&1.2.250.1.999.1&ISO") -> str:
    return f"PID|1||{patient}^^^{issuer}^PI||{name}^^^^^L||{birth}|{sex}"


def wire(*segments: str) -> bytes:
    return ("\r".join(s for s in segments if s) + "\r").encode("utf-8")


def order(placer: str, *, control: str = "NW", message_type: str = "ORM^O01^ORM_O01",
          patient: str = "IPP-1", name: str = "DUPONT^Hélène",
          question: str = "Lésion pigmentée",
          notes: tuple[str, ...] = (), priority: str = "R", requester: str = REQUESTER,
          patient_class: str = "O", control_id: str = "", extra: tuple[str, ...] = ()) -> bytes:
    """An order as an EHR sends it; OMG/OMI get a TQ1 with the priority, ORM carries it in
    OBR-27.6 (TQ)."""
    control_id = control_id or f"O{next(_ids)}-{control}-{placer}"
    timing = message_type.startswith(("OMG", "OMI"))
    return wire(
        msh(message_type, control_id), pid(patient, name),
        segment("PV1", {1: "1", 2: patient_class}),
        segment("ORC", {1: control, 2: f"{placer}^DPI_HOPITAL", 9: "20261124075500",
                        12: requester}),
        segment("TQ1", {1: "1", 9: priority}) if timing else "",
        segment("OBR", {1: "1", 2: f"{placer}^DPI_HOPITAL",
                        4: "TELEDERM^Télé-expertise dermatologie^L", 13: question,
                        16: requester, **({} if timing else {27: f"^^^^^{priority}"})}),
        *[f"NTE|{n}||{text}" for n, text in enumerate(notes, start=1)],
        CONSENT if control == "NW" else "",
        *extra)


def adt(trigger: str, *, patient: str = "IPP-1", name: str = "DUPONT^Hélène",
        birth: str = "19580312", sex: str = "F", prior: str = "", control_id: str = "") -> bytes:
    structure = {"A08": "ADT_A01", "A31": "ADT_A05", "A40": "ADT_A39"}.get(trigger, "ADT_A01")
    control_id = control_id or f"ADT{next(_ids)}-{trigger}"
    return wire(msh(f"ADT^{trigger}^{structure}", control_id, app="SIH_IDENTITE"),
                f"EVN|{trigger}|20261124090000", pid(patient, name, birth, sex),
                "PV1|1|N" if trigger != "A40" else "",
                f"MRG|{prior}^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI" if prior else "")


def oru(*, accession: str = "", placer: str = "", text: tuple[str, ...] = ("Naevus bénin.",),
        status: str = "F", conduct: str = "no_visit", control_id: str = "",
        specialist: str = DERMATOLOGIST) -> bytes:
    control_id = control_id or f"ORU{next(_ids)}"
    obx = [segment("OBX", {1: str(n), 2: "TX", 3: "REPORT^Compte rendu^L", 5: line, 11: status})
           for n, line in enumerate(text, start=1)]
    if conduct:
        obx.append(segment("OBX", {1: str(len(obx) + 1), 2: "CE", 3: "CONDUCT^Conduite^L",
                                   5: f"{conduct}^^L", 11: status}))
    ref = {2: f"{placer}^DPI_HOPITAL" if placer else "", 3: accession}
    return wire(msh("ORU^R01^ORU_R01", control_id, app="RIS_DERMATO", facility="CABINET"),
                pid(), segment("ORC", {1: "RE", **ref}),
                segment("OBR", {1: "1", **ref, 4: "TELEDERM", 25: status, 32: specialist}),
                *obx)


def mdm(trigger: str, *, accession: str, text: str = "Naevus bénin.\\.br\\Contrôle à un an.",
        completion: str = "AU", control_id: str = "") -> bytes:
    control_id = control_id or f"MDM{next(_ids)}-{trigger}"
    return wire(msh(f"MDM^{trigger}^MDM_T02", control_id, app="DOC_DERMATO", facility="CABINET"),
                f"EVN|{trigger}|20261124100000", pid(), "PV1|1|O",
                segment("TXA", {1: "1", 2: "CR", 3: "TX", 12: f"DOC-{control_id}",
                                15: accession, 17: completion,
                                22: "810001234567^LEROY^Claire^^^^^^ASIP-SANTE-PS&"
                                    "1.2.250.1.71.4.2.1&ISO"}),
                segment("OBX", {1: "1", 2: "FT", 3: "REPORT^Compte rendu^L", 5: text, 11: "F"}))


@dataclass
class Inbound:
    services: Services
    ehr: RecordingPeer
    accounting: RecordingPeer

    def send(self, raw: bytes) -> AckResult:
        return read_ack(self.send_raw(raw))

    def send_raw(self, raw: bytes) -> bytes:
        return hl7_intake.handle(self.services, raw, "test")

    def open_case(self, placer: str, *, images: int = 0, stable: bool = True,
                  **kwargs) -> str:
        """Open a case by its order; with `images`, attach them and (unless `stable` is
        False) let the archive call the study stable, so the case is READY for a report."""
        ack = self.send(order(placer, **kwargs))
        assert ack.code == "AA", [e.text for e in ack.errors]
        accession = self.accession(placer)
        for n in range(images):
            attach_image.attach(self.services, [AttachImage(accession, demo_photo(n % 2 == 1),
                                                            "test")])
        if images and stable:
            assert archive_holds(self.services, accession) == "READY"
        return accession

    def accession(self, placer: str) -> str:
        with self.services.store.engine.connect() as conn:
            return cases.find_by_placer(conn, SENDER, placer)

    def case(self, accession: str) -> dict:
        with self.services.store.engine.connect() as conn:
            return queries.case_detail(conn, accession)

    def cases_of(self, patient_id: str) -> list[dict]:
        with self.services.store.engine.connect() as conn:
            return queries.list_cases(conn, patient_id=patient_id).items

    def outbox(self, kind: str, accession: str | None = None) -> list[dict]:
        query = select(outbox).where(outbox.c.kind == kind)
        if accession:
            query = query.where(outbox.c.accession == accession)
        with self.services.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(outbox.c.id))]

    def audit(self, action: str) -> list[dict]:
        with self.services.store.engine.connect() as conn:
            rows = conn.execute(select(audit).where(audit.c.action == action)
                                .order_by(audit.c.id)).all()
        return [{**dict(r._mapping), "detail": json.loads(r.detail)} for r in rows]

    def drain(self, destination: str) -> None:
        """Run the worker until `destination` has nothing pending."""
        def idle():
            worker.run_once(self.services)
            with self.services.store.engine.connect() as conn:
                return not conn.execute(select(outbox.c.id).where(
                    outbox.c.status == "pending", outbox.c.destination == destination)).first()
        wait_until(idle, 30, f"{destination} drained")
