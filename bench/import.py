"""Benchmark: photos brought into Orthanc by the connector's channels, against Orthanc's own rate.

One run, one real Orthanc (the connector's managed one), one real connector (HL7, API, outbox
worker), the same phone JPEGs (default 60 of 12 Mpx, bench/wrap.py's corpus):
- the reference: the same files wrapped beforehand (`telederm wrap`, not timed), uploaded
  straight to Orthanc's REST API (`POST /instances`) one after the other by one client;
- `telederm import DIR --accession A` into a case opened by an HL7 order: from the command's
  start until Orthanc holds every photo (the command prepares and records, the connector's
  worker uploads);
- the HTTP upload channel (`POST /api/cases/{accession}/images`, one photo per request, one
  client): from the first request until Orthanc holds every photo.
Each channel's rate is given as a ratio to the reference's. Results are appended to
bench/RESULTS.md.

Run: .venv/bin/python bench/import.py [--count 60] [--megapixels 12]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from results import append
from wrap import TELEDERM, corpus



def held(archive, study_uid: str) -> int:
    return len(archive.study_instances(study_uid)) if archive.find_study(study_uid) else 0


def wait_held(archive, study_uid: str, count: int, deadline: float = 1800) -> float:
    """Wall-clock time (perf_counter) when Orthanc holds `count` instances of the study."""
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        if held(archive, study_uid) >= count:
            return time.perf_counter()
        time.sleep(0.1)
    raise SystemExit(f"Orthanc did not hold the {count} photos in time: the bench is void")


def open_case(running, api: httpx.Client, n: int) -> dict:
    from connector.demo import demo_order
    from connector.hl7.client import send_message

    placer = f"BENCH-IMPORT-{n}"
    ack = send_message("127.0.0.1", running.hl7_port, demo_order(f"BI{n}", placer))
    if ack.code not in ("AA", "CA"):
        raise SystemExit(f"the order was refused ({ack.code}): the bench is void")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cases = api.get("/api/cases", params={"placer_order_number": placer}).json()
        if cases:
            return cases[0]
        time.sleep(0.1)
    raise SystemExit("the order opened no case: the bench is void")


def main() -> None:
    from connector.demo import RecordingPeer, local_config
    from connector.runtime.server import RunningConnector

    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--megapixels", type=float, default=12)
    args = parser.parse_args()
    n = args.count
    work = Path(tempfile.mkdtemp(prefix="telederm-bench-import-"))
    token = secrets.token_urlsafe(16)
    ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
    config = local_config(work / "connector", ehr_port=ehr.port, accounting_port=accounting.port,
                          token=token)
    rows = []
    try:
        photos = work / "photos"
        photos.mkdir()
        files = corpus(photos, n, args.megapixels)
        size = sum(p.stat().st_size for p in files) / n / 1024 / 1024
        wrapped = work / "wrapped"
        subprocess.run([str(TELEDERM), "wrap", "--out", str(wrapped), "--patient-id", "REF",
                        "--accession", "REF", *map(str, files)], check=True,
                       stdout=subprocess.DEVNULL)
        with RunningConnector(config) as running:
            archive = running.services.archive
            api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                               headers={"Authorization": f"Bearer {token}"}, timeout=120)

            # reference: straight to Orthanc's REST API, one client, one file after the other
            orthanc = httpx.Client(base_url=running.orthanc.url, timeout=120,
                                   auth=(config.orthanc.username, config.orthanc.password))
            start = time.perf_counter()
            for path in sorted(wrapped.iterdir()):
                orthanc.post("/instances", content=path.read_bytes(),
                             headers={"Content-Type": "application/dicom"}).raise_for_status()
            reference = n / (time.perf_counter() - start)
            rows.append((f"reference: {n} pre-wrapped files POSTed to Orthanc /instances, "
                         "one client", f"{reference:.2f} photos/s", "1"))

            # telederm import, from its start until Orthanc holds them
            case = open_case(running, api, 1)
            environ = {**os.environ, "TELEDERM_DATA_DIR": str(config.data_dir),
                       "TELEDERM_ORTHANC_URL": running.orthanc.url,
                       "TELEDERM_ORTHANC_PASSWORD": config.orthanc.password,
                       "TELEDERM_IMAGES_EXAMPLE_DEVICES": "true",
                       "TELEDERM_FACILITY_NAME": config.facility.name}
            start = time.perf_counter()
            subprocess.run([str(TELEDERM), "import", str(photos), "--accession",
                            case["accession"]], check=True, env=environ,
                           stdout=subprocess.DEVNULL)
            recorded = time.perf_counter()
            end = wait_held(archive, case["study_instance_uid"], n)
            rate = n / (end - start)
            rows.append((f"telederm import of {n} photos, start to all in Orthanc "
                         f"(command itself {recorded - start:.1f} s)", f"{rate:.2f} photos/s",
                         f"{rate / reference:.3f}"))

            # HTTP upload, one photo per request, one client
            case = open_case(running, api, 2)
            start = time.perf_counter()
            for path in files:
                api.post(f"/api/cases/{case['accession']}/images", data={"kind": "photo"},
                         files={"file": (path.name, path.read_bytes(), "image/jpeg")}
                         ).raise_for_status()
            answered = time.perf_counter()
            end = wait_held(archive, case["study_instance_uid"], n)
            rate = n / (end - start)
            rows.append((f"HTTP upload of {n} photos (one per request), first request to all "
                         f"in Orthanc (requests themselves {answered - start:.1f} s)",
                         f"{rate:.2f} photos/s", f"{rate / reference:.3f}"))
    finally:
        ehr.stop()
        accounting.stop()
        shutil.rmtree(work, ignore_errors=True)

    append("import", f"{n} JPEGs of {args.megapixels:g} Mpx, {size:.1f} MB each, Orthanc "
           "managed by the connector",
           ("measure", "value", "rate ratio to the straight REST upload"), rows)


if __name__ == "__main__":
    sys.exit(main())
