"""Benchmark: one whole case, order to delivered ORU and DFT, against Orthanc's own floor.

Issue 17 asks the round trip (an order, 3 photos, a stable study, a report, the ORU and the
DFT delivered) to take at most 1 s of machine time beyond `stable_age`, the wait Orthanc
imposes before it calls a study complete. One run, one real Orthanc (the connector's managed
one), one real connector (MLLP, API, outbox worker) and two real MLLP peers:
- the reference, Orthanc's floor: the same 3 photos wrapped beforehand (`telederm wrap`, not
  timed) and POSTed straight to Orthanc's REST API, then polled until Orthanc reports the study
  stable (`IsStable`): what any client pays for a stable study of 3 photos, `stable_age`
  included;
- the connector: the order sent over MLLP, the 3 photos uploaded through the API, the case
  polled until READY (Orthanc's plugin told the connector the study is stable), the report
  posted, until the requester's peer holds the ORU and the accounting peer the DFT.
Each round is repeated (`--rounds`); the medians are compared: the connector's time beyond the
reference is the figure the issue bounds (target <= 1 s), and the ratio of the two is given.
Results are appended to bench/RESULTS.md.

Run: .venv/bin/python bench/round_trip.py [--rounds 5] [--stable-age 2]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from results import append
from wrap import TELEDERM, corpus

PHOTOS = 3
REPORT = {"text": "Naevus bénin, pas de signe de malignité.", "conduct": "no_visit",
          "specialist": {"id": "810001234567", "name": "LEROY^Claire"}}


def poll(predicate, what: str, deadline: float = 120):
    """Wait for `predicate`, looking every 20 ms (demo.wait_for's 0.2 s would be measured)."""
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"{what} did not happen within {deadline} s: the bench is void")


def reference_round(orthanc: httpx.Client, wrapped: list[Path]) -> float:
    """Seconds from the first POST until Orthanc calls the study stable."""
    start = time.perf_counter()
    for path in wrapped:
        orthanc.post("/instances", content=path.read_bytes(),
                     headers={"Content-Type": "application/dicom"}).raise_for_status()
    study = orthanc.post("/tools/lookup", content=_study_uid(path)).json()[0]["ID"]
    poll(lambda: orthanc.get(f"/studies/{study}").json().get("IsStable"), "Orthanc's stable study")
    seconds = time.perf_counter() - start
    orthanc.delete(f"/studies/{study}").raise_for_status()  # the next round stores them anew
    return seconds


def _study_uid(path: Path) -> str:
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID


def connector_round(running, api: httpx.Client, ehr, accounting, photos: list[Path],
                    n: int) -> dict[str, float]:
    """Seconds from the order sent until each phase ended; `total` when the ORU and the DFT
    are each held by their peer."""
    from connector.demo import demo_order
    from connector.hl7.client import send_message

    placer = f"BENCH-RT-{n}"
    orus, dfts = len(ehr.messages), len(accounting.messages)
    start = time.perf_counter()
    # a patient per round: the yearly limit makes a fifth act for one patient unbillable
    order = demo_order(f"RT{n}", placer).replace("IPP123456", f"IPP-RT-{n:04d}")
    ack = send_message("127.0.0.1", running.hl7_port, order)
    if ack.code != "AA":
        raise SystemExit(f"the order was refused ({ack.code}): the bench is void")
    accession = poll(lambda: api.get("/api/cases", params={"placer_order_number": placer}
                                     ).json(), "the case")[0]["accession"]
    phases = {"case": time.perf_counter() - start}
    for path in photos:
        api.post(f"/api/cases/{accession}/images", data={"kind": "photo"},
                 files={"file": (path.name, path.read_bytes(), "image/jpeg")}
                 ).raise_for_status()
    phases["uploads"] = time.perf_counter() - start
    poll(lambda: api.get(f"/api/cases/{accession}").json()["status"] == "READY",
         "the stable study (case READY)")
    phases["ready"] = time.perf_counter() - start
    api.post(f"/api/cases/{accession}/report", json=REPORT).raise_for_status()
    phases["report"] = time.perf_counter() - start
    poll(lambda: len(ehr.messages) > orus and len(accounting.messages) > dfts,
         "the ORU and the DFT delivered")
    phases["total"] = time.perf_counter() - start
    return phases


def main() -> None:
    from connector.demo import RecordingPeer, local_config
    from connector.runtime.server import RunningConnector

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stable-age", type=int, default=2)
    parser.add_argument("--megapixels", type=float, default=12)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="telederm-bench-rt-"))
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = local_config(work / "connector", ehr_port=ehr.port, accounting_port=accounting.port,
                          token=token, stable_age=args.stable_age)
    try:
        (work / "photos").mkdir()
        photos = corpus(work / "photos", PHOTOS, args.megapixels)
        wrapped_dir = work / "wrapped"
        subprocess.run([str(TELEDERM), "wrap", "--out", str(wrapped_dir), "--patient-id", "REF",
                        "--accession", "REF", *map(str, photos)], check=True,
                       stdout=subprocess.DEVNULL)
        wrapped = sorted(wrapped_dir.iterdir())
        with RunningConnector(config) as running:
            api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                               headers={"Authorization": f"Bearer {token}"}, timeout=120)
            orthanc = httpx.Client(base_url=running.orthanc.url, timeout=120,
                                   auth=(config.orthanc.username, config.orthanc.password))
            references, trips = [], []
            for n in range(args.rounds):  # interleaved, so both see the same machine load
                references.append(reference_round(orthanc, wrapped))
                trips.append(connector_round(running, api, ehr, accounting, photos, n))
    finally:
        ehr.stop()
        accounting.stop()
        shutil.rmtree(work, ignore_errors=True)
    reference = statistics.median(references)
    phase = {name: statistics.median(t[name] for t in trips) for name in trips[0]}
    trip = phase["total"]
    steps = (f"case opened {phase['case']:.2f} s, photos uploaded {phase['uploads']:.2f} s, "
             f"READY {phase['ready']:.2f} s, report taken {phase['report']:.2f} s")
    append("round_trip", f"stable_age {args.stable_age} s, {PHOTOS} photos of "
           f"{args.megapixels:g} Mpx, median of {args.rounds} rounds",
           ("measure", "value", "ratio to Orthanc's floor"), [
               (f"reference: {PHOTOS} pre-wrapped photos POSTed to Orthanc until it calls the "
                "study stable", f"{reference:.2f} s", "1"),
               (f"connector: order, photos, stable study, report, ORU and DFT delivered "
                f"({steps})",
                f"{trip:.2f} s", f"{trip / reference:.2f}"),
               ("connector's time beyond Orthanc's floor (target <= 1 s)",
                f"{trip - reference:.2f} s", "—"),
               (f"connector's time beyond stable_age ({args.stable_age} s)",
                f"{trip - args.stable_age:.2f} s", "—")])


if __name__ == "__main__":
    main()
