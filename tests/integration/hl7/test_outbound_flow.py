"""Outbound HL7 to the requester through the real outbox, worker and MLLP peers, on a real SQLite
file (no Orthanc: archive jobs stay queued on their own line):

- order status messages (OK, SC/IP, SC/CM, CR, OC) in each configured structure, in the order
  of the case's life, once each;
- the report as ORU^R01 or as MDM^T02 / T10 / T04, with TXA-12 the SOP Instance UID of the
  report's Encapsulated PDF;
- what the worker does with the peer's answer: AA done; AE parked in dead letters for an
  operator; AR, an ACK for another message, a hang-up or a refused connection retried later
  with back-off (a settable clock moves time on: no timed assertion, no sleep).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
import socket
import threading

import pytest
from sqlalchemy import select

from connector.config import Destination, load_config
from connector.domain.errors import DomainError, StateConflict
from connector.domain.model import Order, Patient, PersonName, Practitioner, practitioner_by_id
from connector.domain.states import CaseEvent
from connector.hl7.ack import build_ack, read_ack
from connector.hl7.mllp import frame
from connector.hl7.parse import encode, parse
from connector.store import cases, outbox
from connector.domain.moment import iso
from connector.store.schema import outbox as outbox_table
from connector.store.schema import reports
from connector.runtime import worker
from connector.workflow import (mark_ready, open_case, record_report, refuse_order,
                                withdraw_report)
from connector.workflow.commands import (CancelCase, DeclineCase, MarkReady, OpenCase, RecordReport,
                                        WithdrawReport)
from connector.entrypoints import hl7_intake
from connector.bootstrap import build
from connector.ports import free_port
from tests.support.net import unused_url
from tests.support.peers import RecordingPeer
from tests.support.cli import EXAMPLE_DEVICES

SPECIALIST = Practitioner("810001234567", PersonName("LEROY", "Claire"), "1.2.250.1.71.4.2.1",
                          id_type="IDNPS")
REQUESTER = Practitioner("801234567897", PersonName("MARTIN", "Jean"), "1.2.250.1.71.4.2.1",
                         id_type="IDNPS")
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)
_ids = itertools.count(1)


class Clock:
    """The services' clock, moved on by the test."""

    def __init__(self):
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class ScriptedPeer(RecordingPeer):
    """An EHR on the real MLLP listener that answers each message with the next code of
    `script` (then AA); "OTHER" is an AA whose MSA-2 names another message."""

    def __init__(self, name: str, script: list[str]):
        super().__init__(name)
        self.script = list(script)

    def _handle(self, raw: bytes, peer: str) -> bytes:
        msg = parse(raw)
        self.messages.append(raw.decode("utf-8"))
        code = self.script.pop(0) if self.script else "AA"
        text = build_ack(msg, "AA" if code == "OTHER" else code, [], f"P{len(self.messages)}",
                         "20261124080000")
        if code == "OTHER":
            text = text.replace(f"|{msg.control_id}", "|SOMEONE-ELSE")
        return encode(text)


class HangingUpPeer:
    """A plain TCP peer that reads each framed message and closes the connection without an
    answer, `hang_ups` times, then answers AA."""

    def __init__(self, hang_ups: int):
        self.hang_ups = hang_ups
        self.messages: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "HangingUpPeer":
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\x1c\x0d"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue
                raw = data[1:-2]
                self.messages.append(raw.decode("utf-8"))
                if len(self.messages) > self.hang_ups:
                    ack = build_ack(parse(raw), "AA", [], "H1", "20261124080000")
                    conn.sendall(frame(encode(ack)))

    def stop(self) -> None:
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.server.close()
        self._thread.join(5)


def services_for(tmp_path, *destinations: Destination, clock: Clock | None = None):
    base = load_config(None, environ={**EXAMPLE_DEVICES, 
        "TELEDERM_DATA_DIR": str(tmp_path / "data"), "TELEDERM_ORTHANC_URL": unused_url(),
        "TELEDERM_FACILITY_NAME": "TELEDERM_TEST"})
    services = build(base.model_copy(update={"destinations": destinations}))
    services.clock = clock or Clock()
    return services


@pytest.fixture
def peers():
    started = []

    def start(peer):
        started.append(peer.start())
        return peer

    yield start
    for peer in started:
        peer.stop()


def ehr(peer, **options) -> Destination:
    return Destination(name="ehr", role="requester", address=f"127.0.0.1:{peer.port}", **options)


def new_order(placer: str) -> Order:
    patient = Patient("IPP-OUT-1", PersonName("DUPONT", "Hélène"), "CHU_DEMO", "19580312", "F")
    return Order("DPI_HOPITAL|CHU_DEMO", placer, patient, REQUESTER, "Lésion pigmentée")


def open_ready_case(services, placer: str) -> str:
    """Open a case (as an accepted order), give it an image and let the archive call it stable."""
    with services.unit() as uow:
        case = open_case.handle(OpenCase(new_order(placer), "test"), uow)
        case.apply(CaseEvent.IMAGE_RECEIVED)
        uow.cases.save_status(case, uow.moment.iso)
    with services.unit() as uow:
        assert mark_ready.handle(MarkReady(case.study_uid, "test"), uow) == "READY"
    return case.accession


def drain(services, destination: str = "ehr") -> None:
    """Run the worker until `destination` has nothing pending that is due."""
    for _ in range(200):
        worker.run_once(services)
        with services.store.engine.connect() as conn:
            due = conn.execute(select(outbox_table.c.id).where(
                outbox_table.c.status == "pending", outbox_table.c.destination == destination,
                outbox_table.c.next_attempt_at <= iso(services.now()))).first()
        if due is None:
            return
    raise AssertionError(f"{destination} never drained")


def items(services, destination: str = "ehr") -> list:
    with services.store.engine.connect() as conn:
        return conn.execute(select(outbox_table).where(
            outbox_table.c.destination == destination).order_by(outbox_table.c.id)).all()


def summary(peer) -> list[tuple[str, str, str, str]]:
    """(MSH-9, MSH-10, ORC-1, ORC-5) of what the peer received, in order."""
    out = []
    for m in peer.parsed():
        orc = m.segment("ORC")
        out.append((str(m.segment("MSH")(9)), str(m.segment("MSH")(10)), str(orc(1)),
                    str(orc(5))))
    return out


# --- order status and report, in the order of the case's life ---------------------------------

def test_orm_status_messages_frame_the_oru_in_the_order_of_the_case(tmp_path, peers):
    peer = peers(RecordingPeer("ehr"))
    services = services_for(tmp_path, ehr(peer, order_status="ORM^O01"))
    accession = open_ready_case(services, "PL-OUT-1")
    study_uid = cases_study(services, accession)  # read before the unit holds the writer
    with services.unit() as uow:
        assert mark_ready.handle(MarkReady(study_uid, "again"), uow) == "READY"
    with services.unit() as uow:
        got = record_report.handle(
            RecordReport(accession, "Naevus bénin.", "no_visit", SPECIALIST, "test"), uow)
    drain(services)
    assert summary(peer) == [
        ("ORM^O01^ORM_O01", f"ST{accession}OK", "OK", "SC"),
        ("ORM^O01^ORM_O01", f"ST{accession}IP", "SC", "IP"),   # once, though READY twice
        ("ORU^R01^ORU_R01", got.oru_control_id, "RE", ""),
        ("ORM^O01^ORM_O01", f"ST{accession}CMV1", "SC", "CM"),
    ]
    assert [i.status for i in items(services)] == ["done"] * 4
    ok = peer.parsed()[0]
    assert (str(ok.segment("ORC")(2)), str(ok.segment("ORC")(3))) == ("PL-OUT-1", accession)
    assert (ok["MSH.F3"], ok["MSH.F5"], ok["MSH.F6"]) == ("TELEDERM_TEST", "DPI_HOPITAL",
                                                          "CHU_DEMO")


def test_without_order_status_the_requester_gets_the_report_only(tmp_path, peers):
    peer = peers(RecordingPeer("ehr"))
    services = services_for(tmp_path, ehr(peer))
    accession = open_ready_case(services, "PL-OUT-2")
    with services.unit() as uow:
        record_report.handle(
            RecordReport(accession, "Naevus bénin.", "no_visit", SPECIALIST, "test"), uow)
    drain(services)
    assert [s[0] for s in summary(peer)] == ["ORU^R01^ORU_R01"]


def test_mdm_final_correction_and_withdrawal_with_omg_status(tmp_path, peers):
    peer = peers(RecordingPeer("ehr"))
    services = services_for(tmp_path, ehr(peer, report_message="MDM^T02",
                                          order_status="OMG^O19"))
    accession = open_ready_case(services, "PL-OUT-3")
    with services.unit() as uow:
        record_report.handle(
            RecordReport(accession, "Naevus bénin.", "no_visit", SPECIALIST, "test"), uow)
    with services.unit() as uow:
        record_report.handle(RecordReport(accession, "Naevus bénin, à surveiller.", "no_visit",
                                          SPECIALIST, "test", correction=True), uow)
    with services.unit() as uow:
        withdrawn = withdraw_report.handle(WithdrawReport(accession, "mauvais dossier", "test"),
                                           uow)
    assert withdrawn.oru_control_id == f"MDM{accession}W2"
    drain(services)
    assert [(s[0], s[1]) for s in summary(peer)] == [
        ("OMG^O19^OMG_O19", f"ST{accession}OK"),
        ("OMG^O19^OMG_O19", f"ST{accession}IP"),
        ("MDM^T02^MDM_T02", f"MDM{accession}V1"),
        ("OMG^O19^OMG_O19", f"ST{accession}CMV1"),
        ("MDM^T10^MDM_T02", f"MDM{accession}V2"),
        ("MDM^T04^MDM_T02", f"MDM{accession}W2"),
        ("OMG^O19^OMG_O19", f"ST{accession}IPW2"),   # in progress again
    ]
    with services.store.engine.connect() as conn:
        uids = [r.sop_uid for r in conn.execute(select(reports.c.sop_uid).where(
            reports.c.accession == accession).order_by(reports.c.version))]
    messages = peer.parsed()
    t02, t10, t04 = messages[2], messages[4], messages[5]
    assert t02.extract_field("TXA", 1, 12, 1, 1) == uids[0]  # the Encapsulated PDF's UID
    assert t10.extract_field("TXA", 1, 12, 1, 1) == uids[1]
    assert t10.extract_field("TXA", 1, 13, 1, 1) == uids[0]
    assert (t04.extract_field("TXA", 1, 12, 1, 1), str(t04.segment("TXA")(19)),
            str(t04.segment("TXA")(21))) == (uids[1], "CA", "mauvais dossier")
    assert [{str(o(11)) for o in m.segments("OBX")} for m in (t02, t10, t04)] == [
        {"F"}, {"C"}, {"D"}]


def cases_study(services, accession: str) -> str:
    with services.store.engine.connect() as conn:
        return cases.load(conn, accession).study_uid


# --- cancel (CR) and refusal (OC) ---------------------------------------------------------------

def orm(placer: str, control: str) -> bytes:
    consent = ("\rOBX|1|CWE|CONSENT^Consentement du patient à la télé-expertise^L||Y^Oui^HL70136"
               "||||||F" if control == "NW" else "")
    text = (f"MSH|^~\\&|DPI_HOPITAL|CHU_DEMO|TELEDERM|TELEDERM|20261124080000||ORM^O01^ORM_O01|"
            f"OUT{next(_ids)}|P|2.5|||||FRA|UNICODE UTF-8\r"
            "PID|1||IPP-OUT-2^^^CHU_DEMO^PI||DUPONT^Hélène||19580312|F\r"
            "PV1|1|O\r"
            f"ORC|{control}|{placer}^DPI_HOPITAL|||||||20261124075500|||"
            "801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO\r"
            f"OBR|1|{placer}^DPI_HOPITAL||TELEDERM^Télé-expertise dermatologie^L|||||||||"
            "Lésion||||801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO"
            f"{consent}\r")
    return text.encode("utf-8")


def test_a_cancel_request_is_answered_cr_once(tmp_path, peers):
    peer = peers(RecordingPeer("ehr"))
    services = services_for(tmp_path, ehr(peer, order_status="ORM^O01"))
    ack = read_ack(hl7_intake.handle(services, orm("PL-OUT-4", "NW"), "test"))
    assert ack.code == "AA", [e.text for e in ack.errors]
    for _ in range(2):  # a resent cancel changes nothing
        assert read_ack(hl7_intake.handle(services, orm("PL-OUT-4", "CA"), "test")).code == "AA"
    drain(services)
    crs = [s for s in summary(peer) if s[2] == "CR"]
    assert len(crs) == 1 and crs[0][0] == "ORM^O01^ORM_O01" and crs[0][3] == "CA"
    assert summary(peer)[-1] == crs[0]


def test_the_dermatologist_declines_and_the_requester_reads_oc_with_the_reason(tmp_path, peers):
    peer = peers(RecordingPeer("ehr"))
    services = services_for(tmp_path, ehr(peer, order_status="ORU^R01"))
    accession = open_ready_case(services, "PL-OUT-5")
    with services.unit() as uow:
        got = refuse_order.decline(DeclineCase(accession, "Photos floues, merci de reprendre",
                                               "dermato", specialist=SPECIALIST), uow)
    assert (got.status, got.status_control_id) == ("REJECTED", f"ST{accession}OC")
    drain(services)
    oc = peer.parsed()[-1]
    orc = oc.segment("ORC")
    assert (str(oc.segment("MSH")(9)), str(orc(1)), str(orc(5))) == (
        "ORU^R01^ORU_R01", "OC", "CA")
    assert (orc.extract_field(1, 16, 1, 1), orc.extract_field(1, 16, 1, 2)) == (
        "DECLINED", "Photos floues, merci de reprendre")
    assert orc.extract_field(1, 19, 1, 1) == SPECIALIST.id
    with pytest.raises(StateConflict), services.unit() as uow:  # rejected: not refused again
        refuse_order.cancel(CancelCase(accession, "again", "operator"), uow)


def test_an_operator_cancels_an_answered_case_credits_it_and_sends_oc(tmp_path, peers):
    peer, compta = peers(RecordingPeer("ehr")), peers(RecordingPeer("compta"))
    services = services_for(tmp_path, ehr(peer, order_status="ORM^O01"),
                            Destination(name="compta", role="accounting", transport="mllp",
                                        address=f"127.0.0.1:{compta.port}"))
    accession = open_ready_case(services, "PL-OUT-6")
    with services.unit() as uow:
        record_report.handle(
            RecordReport(accession, "Naevus bénin.", "no_visit", SPECIALIST, "test"), uow)
    with services.unit() as uow:
        got = refuse_order.cancel(CancelCase(accession, "Demande en double", "admin"), uow)
    assert got.status == "CANCELLED" and got.dft_control_id
    drain(services)
    drain(services, "compta")
    last = peer.parsed()[-1].segment("ORC")
    assert (str(last(1)), last.extract_field(1, 16, 1, 1)) == ("OC", "CANCELLED")
    assert [str(m.segment("FT1")(6)) for m in compta.parsed()] == ["CG", "CD"]


def test_identifiers_go_back_whole_in_report_withdrawal_and_both_billing_batches(tmp_path,
                                                                                 peers):
    peer, compta = peers(RecordingPeer("ehr")), peers(RecordingPeer("compta"))
    services = services_for(tmp_path, ehr(peer, report_message="MDM^T02"),
                            Destination(name="compta", role="accounting", transport="mllp",
                                        address=f"127.0.0.1:{compta.port}"))
    order = new_order("PL-OUT-ID")
    patient = Patient("IPP123456", order.patient.name, "1.2.250.1.999.1", "19580312", "F",
                      id_details=(("IPP123456", "1.2.250.1.999.1", "CHU_DEMO", "PI"),))
    with services.unit() as uow:
        case = open_case.handle(OpenCase(replace(order, patient=patient), "test"), uow)
        case.apply(CaseEvent.IMAGE_RECEIVED)
        uow.cases.save_status(case, uow.moment.iso)
    with services.unit() as uow:
        mark_ready.handle(MarkReady(case.study_uid, "test"), uow)
    posted = practitioner_by_id("810001234567", PersonName("LEROY", "Claire"),
                                idnatps_authority="1.2.250.1.71.4.2.1")  # as the API builds it
    with services.unit() as uow:
        record_report.handle(RecordReport(case.accession, "Naevus.", "no_visit", posted, "t"), uow)
    with services.unit() as uow:
        withdraw_report.handle(WithdrawReport(case.accession, "mauvais dossier", "t"), uow)
    drain(services)
    drain(services, "compta")
    whole_pid3 = "IPP123456^^^CHU_DEMO&1.2.250.1.999.1&ISO^PI"
    xcn = "810001234567^LEROY^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^^^^IDNPS"
    requester = "801234567897^MARTIN^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^^^^IDNPS"
    for raw in peer.messages + compta.messages:
        segments = {s.split("|")[0]: s.split("|") for s in raw.split("\r") if s}
        assert segments["PID"][3] == whole_pid3
    for raw in peer.messages:  # MDM T02 then T04: TXA-5 and OBR-32
        segments = {s.split("|")[0]: s.split("|") for s in raw.split("\r") if s}
        assert segments["TXA"][5] == xcn
        assert segments["OBR"][32] == "810001234567&LEROY&Claire&&&&&&&1.2.250.1.71.4.2.1&ISO"
    charge, credit = compta.messages
    for batch in (charge, credit):  # TE2 then RQD: FT1-20 performed by
        ft1 = [s.split("|") for s in batch.split("\r") if s.startswith("FT1|")]
        assert [(f[6], f[20]) for f in ft1] == [("CG" if batch is charge else "CD", xcn),
                                                ("CG" if batch is charge else "CD", requester)]


def test_an_empty_or_long_reason_is_refused(tmp_path):
    services = services_for(tmp_path)
    with pytest.raises(DomainError) as exc, services.unit() as uow:
        refuse_order.decline(DeclineCase("TD00000001", "  ", "x"), uow)
    assert exc.value.where == "reason"
    with pytest.raises(DomainError) as exc, services.unit() as uow:
        refuse_order.cancel(CancelCase("TD00000001", "x" * 200, "x"), uow)
    assert exc.value.where == "reason"
    for bad in ("x" * 200, "mauvais\x00dossier", " \r\n "):  # withdrawals follow the same rule
        with pytest.raises(DomainError) as exc, services.unit() as uow:
            withdraw_report.handle(WithdrawReport("TD00000001", bad, "x"), uow)
        assert exc.value.where == "reason"


# --- the peer's answer, as the worker sees it ---------------------------------------------------

def one_status(tmp_path, destination: Destination, clock: Clock):
    services = services_for(tmp_path, destination, clock=clock)
    with services.unit() as uow:
        open_case.handle(OpenCase(new_order(f"PL-ACK-{next(_ids)}"), "test"), uow)
    return services


def test_ae_from_the_peer_parks_the_message_for_an_operator(tmp_path, peers):
    peer = peers(ScriptedPeer("ehr", ["AE"]))
    clock = Clock()
    services = one_status(tmp_path, ehr(peer, order_status="ORM^O01"), clock)
    worker.run_once(services)
    (item,) = items(services)
    assert (item.status, item.attempts) == ("dead", 1)
    assert "peer answered AE" in item.last_error
    clock.advance(3600)
    worker.run_once(services)
    assert len(peer.messages) == 1  # never resent on its own
    with services.store.engine.begin() as conn:  # an operator queues it again: accepted this time
        assert outbox.retry(conn, item.id, services.now())
    worker.run_once(services)
    assert items(services)[0].status == "done" and len(peer.messages) == 2


@pytest.mark.parametrize("answer,error", [("AR", "peer answered AR"),
                                          ("OTHER", "ACK is for message 'SOMEONE-ELSE'"),
                                          ("HANGUP", "closed the connection")])
def test_ar_wrong_msa2_or_no_ack_is_retried_with_back_off(tmp_path, peers, answer, error):
    peer = peers(HangingUpPeer(2) if answer == "HANGUP" else ScriptedPeer("ehr", [answer] * 2))
    clock = Clock()
    services = one_status(tmp_path, ehr(peer, order_status="ORM^O01"), clock)
    delays = []
    for attempt in (1, 2):
        attempted_at = clock.now
        worker.run_once(services)
        (item,) = items(services)
        assert (item.status, item.attempts) == ("pending", attempt)
        assert error in item.last_error
        due = dt.datetime.strptime(item.next_attempt_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.timezone.utc)
        assert due > attempted_at
        delays.append((due - attempted_at).total_seconds())
        worker.run_once(services)  # not due yet: nothing is sent
        assert items(services)[0].attempts == attempt
        clock.now = due
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0  # exponential, with jitter
    worker.run_once(services)
    assert items(services)[0].status == "done"
    assert len({m for m in peer.messages}) == 1  # the same bytes (same MSH-10) every time
    assert len(peer.messages) == 3


def test_a_peer_that_is_down_is_retried_later(tmp_path):
    clock = Clock()
    services = one_status(tmp_path, Destination(name="ehr", role="requester", transport="mllp",
                                                address=f"127.0.0.1:{free_port()}",
                                                order_status="ORM^O01"), clock)
    worker.run_once(services)
    (item,) = items(services)
    assert (item.status, item.attempts) == ("pending", 1)
    assert "connection refused" in item.last_error


def test_a_peer_slower_than_its_ack_timeout_is_retried_later(tmp_path):
    """`ack_timeout` of the destination bounds the wait for an ACK; the item stays pending."""
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    port = silent.getsockname()[1]
    try:
        services = services_for(tmp_path, Destination(
            name="ehr", role="requester", address=f"127.0.0.1:{port}", order_status="ORM^O01",
            ack_timeout=0.5))
        with services.unit() as uow:
            open_case.handle(OpenCase(new_order("PL-SLOW"), "test"), uow)
        worker.run_once(services)
        [item] = items(services)
        assert (item.status, item.attempts) == ("pending", 1)
        assert "no ACK within 0.5 s" in item.last_error
    finally:
        for sock in (*held, silent):
            sock.close()


# --- the specialist side when a case is cancelled or declined -----------------------------------

def timer_statuses(services, accession: str) -> list[str]:
    with services.reading() as uow:
        return [t["status"] for t in uow.routing.timers_of(accession)]


def test_a_cancelled_or_declined_case_gets_ca_on_the_specialist_side_and_loses_its_timers(
        tmp_path, peers):
    peer, spec = peers(RecordingPeer("ehr")), peers(RecordingPeer("spec"))
    services = services_for(tmp_path, ehr(peer, order_status="ORM^O01"),
                            Destination(name="spec", role="specialist",
                                        address=f"127.0.0.1:{spec.port}"))
    assert read_ack(hl7_intake.handle(services, orm("PL-OUT-9", "NW"), "test")).code == "AA"
    with services.reading() as uow:
        cancelled = uow.cases.find_by_placer("DPI_HOPITAL|CHU_DEMO", "PL-OUT-9")
    declined = open_ready_case(services, "PL-OUT-10")
    assert timer_statuses(services, cancelled) == timer_statuses(services, declined) == [
        "pending"]  # the shipped routing.toml's reminder

    assert read_ack(hl7_intake.handle(services, orm("PL-OUT-9", "CA"), "test")).code == "AA"
    with services.unit() as uow:
        refuse_order.decline(DeclineCase(declined, "Hors champ", "dermato",
                                         specialist=SPECIALIST), uow)
    drain(services, "spec")
    got = [(str(m.segment("ORC")(3)), str(m.segment("ORC")(1)), str(m.segment("MSH")(10)))
           for m in spec.parsed()]
    assert got == [(cancelled, "NW", f"SP{cancelled}A1"), (declined, "NW", f"SP{declined}A1"),
                   (cancelled, "CA", f"SP{cancelled}A2"), (declined, "CA", f"SP{declined}A2")]
    assert timer_statuses(services, cancelled) == timer_statuses(services, declined) == [
        "cancelled"]
