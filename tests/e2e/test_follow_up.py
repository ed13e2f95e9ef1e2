"""The in-person follow-up end to end (issue 14 item 4), on a real Orthanc and real MLLP peers:
a report with conduct "urgent consultation" makes each scheduling peer receive its configured
message once, and the requester's ORU says the visit was asked for (SIU^S12 at one, OMG^O19 at the other), with the urgency, the patient, the
requester, our accession and the dermatologist's text; the AA marks that follow-up
acknowledged, the AE of the other refused; a correction does not ask again, and a conduct
without a visit asks nothing."""

from __future__ import annotations

import secrets

import httpx
import pytest

from connector.config import Destination
from connector.demo import demo_order, demo_photo, local_config
from connector.hl7.client import send_message
from connector.runtime.server import RunningConnector
from tests.support.billing import RefusingPeer
from tests.support.orthanc import throwaway
from tests.support.peers import RecordingPeer
from tests.support.wait import wait_until

SPECIALIST = {"id": "810001234567", "name": "LEROY^Claire"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("follow-up")
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    rdv, agenda = RecordingPeer("rdv").start(), RefusingPeer("agenda").start()
    config = throwaway(local_config(work, ehr_port=ehr.port, accounting_port=accounting.port,
                                    token=token, stable_age=1))
    config = config.model_copy(update={"destinations": config.destinations + (
        Destination(name="rdv", role="scheduling", address=f"127.0.0.1:{rdv.port}"),
        Destination(name="agenda", role="scheduling", address=f"127.0.0.1:{agenda.port}",
                    follow_up_message="OMG^O19"),
    )})
    running = RunningConnector(config).start()
    api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield running, api, rdv, agenda, ehr
    api.close()
    running.stop()
    for peer in (ehr, accounting, rdv, agenda):
        peer.stop()


def _answered(running, api, placer: str, conduct: str) -> str:
    assert send_message("127.0.0.1", running.hl7_port,
                        demo_order(f"O-{placer}", placer)).code == "AA"
    [case] = api.get("/api/cases", params={"placer_order_number": placer}).json()
    accession = case["accession"]
    r = api.post(f"/api/cases/{accession}/images",
                 files={"file": ("p.jpg", demo_photo(False), "image/jpeg")})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY", 60,
               "the case to be READY")
    r = api.post(f"/api/cases/{accession}/report", json={
        "text": "Lésion suspecte de mélanome.\nExérèse rapide.", "conduct": conduct,
        "specialist": SPECIALIST})
    assert r.status_code == 201, r.text
    return accession


def _follow_ups(api, accession: str) -> dict:
    return {f["destination"]: f for f in api.get(f"/api/cases/{accession}").json()["follow_ups"]}


def test_urgent_consultation_asks_each_scheduling_peer_once_and_records_its_answer(env):
    running, api, rdv, agenda, ehr = env
    accession = _answered(running, api, "PL-FU-1", "urgent_visit")
    wait_until(lambda: {f["status"] for f in _follow_ups(api, accession).values()}
               == {"acknowledged", "refused"}, 60, "both scheduling answers")
    got = _follow_ups(api, accession)
    assert (got["rdv"]["status"], got["rdv"]["message_type"], got["rdv"]["urgency"]) == (
        "acknowledged", "SIU^S12", "urgent")
    assert (got["agenda"]["status"], got["agenda"]["message_type"]) == ("refused", "OMG^O19")
    assert "103" in got["agenda"]["reason"]

    (siu,) = [m for m in rdv.parsed() if str(m.segment("SCH")[1]).startswith(accession)]
    assert str(siu.segment("MSH")[9]) == "SIU^S12^SIU_S12"
    assert str(siu.segment("TQ1")[9]) == "A" and str(siu.segment("SCH")[7][0][0]) == "EMERGENCY"
    assert str(siu.segment("SCH")[26]) == "PL-FU-1"
    assert str(siu.segment("PID")[3][0][0]) == "IPP123456"
    assert [str(s[3]) for s in siu.segments("NTE")] == ["Lésion suspecte de mélanome.",
                                                      "Exérèse rapide."]
    (omg,) = [m for m in agenda.parsed() if str(m.segment("ORC")[2]).startswith(accession)]
    assert str(omg.segment("MSH")[9]) == "OMG^O19^OMG_O19" and str(omg.segment("TQ1")[9]) == "A"
    (oru,) = [m for m in ehr.parsed() if str(m.segment("MSH")[9]).startswith("ORU")
              and str(m.segment("OBR")[3]) == accession]
    assert [str(o[5][0][0]) for o in oru.segments("OBX")
            if str(o[3][0][0]) == "FOLLOWUP"] == ["requested-urgent"]

    got = api.get("/api/stats").json()["follow_ups"]
    assert got["by_status"]["acknowledged"] >= 1 and got["by_status"]["refused"] >= 1
    assert got["by_urgency"]["urgent"] >= 2

    # A correction keeps the visit already asked for: nothing new to the schedulers.
    before = len(rdv.messages), len(agenda.messages)
    r = api.post(f"/api/cases/{accession}/report/correct", json={
        "text": "Mélanome probable.", "conduct": "urgent_visit", "specialist": SPECIALIST,
        "reason": "précision"})
    assert r.status_code == 201, r.text
    wait_until(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60,
               "outbox drained")
    assert (len(rdv.messages), len(agenda.messages)) == before


def test_a_conduct_without_a_visit_asks_nothing(env):
    running, api, rdv, agenda, ehr = env
    before = len(rdv.messages), len(agenda.messages)
    accession = _answered(running, api, "PL-FU-2", "no_visit")
    wait_until(lambda: api.get("/api/stats").json()["outbox"]["pending"] == 0, 60,
               "outbox drained")
    assert _follow_ups(api, accession) == {}
    (oru,) = [m for m in ehr.parsed() if str(m.segment("MSH")[9]).startswith("ORU")
              and str(m.segment("OBR")[3]) == accession]
    assert all(str(o[3][0][0]) != "FOLLOWUP" for o in oru.segments("OBX"))
    assert (len(rdv.messages), len(agenda.messages)) == before
