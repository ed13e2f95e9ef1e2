"""What the billing tests send and read: `Billing` (the `billing` fixture's services, peers and
drop folder), an accounting peer that refuses everything (AE), and builders for orders.

Inputs go through the real doors (`hl7_intake.handle` with wire bytes, `record_report`,
`withdraw_report`) and outputs are read where the outside world sees them (the peers, the drop
folder, the store). The outbox worker runs with `worker.run_once`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from connector.domain.model import PersonName, Practitioner
from connector.hl7.ack import AckResult, build_ack, read_ack
from connector.hl7.errors import Hl7Error
from connector.hl7.parse import encode, parse
from connector.store import cases
from connector.store.schema import charges, outbox
from connector.runtime import worker
from connector.workflow import record_report
from connector.workflow.commands import RecordReport
from connector.entrypoints import hl7_intake
from connector.bootstrap import Services
from tests.support.peers import RecordingPeer
from tests.support.services import archive_holds
from tests.support.wait import wait_until

DEADLINE = 30
REQUESTER = "801234567897"
SPECIALIST = Practitioner("810001234567", PersonName("LEROY", "Claire"))
_numbers = itertools.count(1)


class RefusingPeer(RecordingPeer):
    """An accounting system that records every message and answers AE (ERR 103 at FT1^1^7)."""

    def _handle(self, raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        self.messages.append(raw.decode("utf-8"))
        error = Hl7Error("unknown charge code", hl7_code=103, location="FT1^1^7")
        return encode(build_ack(msg, "AE", [error], f"REF{len(self.messages)}",
                                time.strftime("%Y%m%d%H%M%S"), sending=("REFUSING", "")))


def segment(name: str, fields: dict[int, str]) -> str:
    values = [""] * (max(fields) + 1 if fields else 1)
    for n, value in fields.items():
        values[n] = value
    return "|".join([name, *values[1:]])


def order(placer: str, *, control: str = "NW", patient: str = "IPP-B-1", patient_class: str = "O",
          service: str = "TELEDERM^Télé-expertise dermatologie^L", performed_at: str = "",
          attending: str = "", obx: tuple[str, ...] = (), control_id: str = "",
          facility: str = "CHU_DEMO") -> bytes:
    """An ORM^O01 as an EHR sends it (MSH-4 = the requesting site, ORC-12 the requester)."""
    control_id = control_id or f"B{next(_numbers)}-{placer}"
    requester = f"{REQUESTER}^MARTIN^Jean"
    segments = [
        f"MSH|^~\\&|DPI_HOPITAL|{facility}|TELEDERM|TELEDERM|20261124080000||ORM^O01^ORM_O01|"
        f"{control_id}|P|2.5|||||FRA|UNICODE UTF-8",
        f"PID|1||{patient}^^^CHU_DEMO^PI||DUPONT^Hélène||19580312|F",
        segment("PV1", {1: "1", 2: patient_class, 7: attending}),
        segment("ORC", {1: control, 2: f"{placer}^DPI_HOPITAL", 9: "20261124075500",
                        12: requester}),
        segment("OBR", {1: "1", 2: f"{placer}^DPI_HOPITAL", 4: service, 7: performed_at,
                        13: "Lésion pigmentée", 16: requester}),
        *obx,
        *((CONSENT,) if control == "NW" else ()),  # after the test's OBX: their numbers hold
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


# The patient's consent, which every new order must carry (mappings/hl7/orm_o01.toml).
CONSENT = "OBX|9|CWE|CONSENT^Consentement du patient^L||Y^Oui^HL70136||||||F"


def majoration(n: int, code: str) -> str:
    return f"OBX|{n}|CE|MAJORATION^Majoration NGAP^L||{code}^^NGAP"


@dataclass
class Billing:
    services: Services
    ehr: RecordingPeer
    accounting: RecordingPeer
    drop: Path

    def send(self, raw: bytes) -> AckResult:
        return read_ack(hl7_intake.handle(self.services, raw, "test"))

    def open_case(self, placer: str, **kwargs) -> str:
        ack = self.send(order(placer, **kwargs))
        assert ack.code == "AA", [e.text for e in ack.errors]
        with self.services.store.engine.connect() as conn:
            return cases.find_by_placer(conn, "DPI_HOPITAL|" + kwargs.get("facility", "CHU_DEMO"),
                                        placer)

    def answer(self, accession: str, specialist: Practitioner = SPECIALIST):
        """The specialist answers (an open case is first given an image and its study called
        stable, as an upload and the archive would)."""
        with self.services.store.engine.connect() as conn:
            status = cases.load(conn, accession).status.value
        if status in ("OPEN", "IMAGES_PENDING"):
            archive_holds(self.services, accession)
        with self.services.unit() as uow:
            return record_report.handle(
                RecordReport(accession, "Naevus bénin.", "no_visit", specialist, "test"), uow)

    def drain(self, *destinations: str) -> None:
        """Run the worker until the destinations have no pending item left."""
        def idle():
            worker.run_once(self.services)
            with self.services.store.engine.connect() as conn:
                return not conn.execute(select(outbox.c.id).where(
                    outbox.c.status == "pending",
                    outbox.c.destination.in_(destinations))).first()
        wait_until(idle, DEADLINE, f"{', '.join(destinations)} drained")

    def lines(self, accession: str) -> list[dict]:
        with self.services.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(charges).where(charges.c.accession == accession).order_by(charges.c.id))]

    def outbox(self, destination: str) -> list[dict]:
        with self.services.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(outbox).where(outbox.c.destination == destination)
                .order_by(outbox.c.id))]


def payload(item: dict) -> dict:
    return json.loads(item["payload"])
