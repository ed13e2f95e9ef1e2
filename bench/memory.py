"""Benchmark: memory of the image paths, against the size of what they read.

One run, two measures:
- `telederm wrap` of one large JPEG (default 50 Mpx): the command's peak RSS, against the
  target "2 x the file size + 150 MB" (the file in memory, its Pixel Data copy, the
  interpreter and its libraries);
- `telederm import` of many photos (default 200 of 3 Mpx) into a case of a running connector
  (real Orthanc, its worker uploading meanwhile): the command's RSS sampled every 50 ms; the
  peak over the last quarter of the run against the peak over the second quarter (the first
  holds the start-up and the first image's library loading): flat is a ratio near 1, no
  growth per image.
Results are appended to bench/RESULTS.md.

Run: .venv/bin/python bench/memory.py [--megapixels 50] [--count 200] [--import-megapixels 3]
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from results import append
from wrap import TELEDERM, corpus

MB = 1024 * 1024


def large_jpeg(megapixels: float) -> bytes:
    """A 4:3 baseline JPEG with noise texture, built channel by channel (little memory)."""
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    channels = [Image.effect_noise((width, height), 12).point(lambda v, o=o: v // 4 + o)
                for o in (140, 100, 80)]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, "JPEG", quality=92)
    return out.getvalue()


def rss(pid: int, field: str = "VmRSS") -> int:
    """Resident set size of a process (VmRSS), or its peak so far (VmHWM), bytes; 0 once it is
    gone. Read from /proc, not from getrusage: a child's ru_maxrss keeps the size of the
    benchmark process it was forked from."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def sampled(argv: list[str], env: dict | None = None, field: str = "VmRSS",
            every: float = 0.05) -> list[tuple[float, int]]:
    """Run a command, sampling `field` of its /proc status: (seconds since start, bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    samples = []
    while proc.poll() is None:
        samples.append((time.perf_counter() - start, rss(proc.pid, field)))
        time.sleep(every)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[1]} failed: the bench is void")
    return [s for s in samples if s[1]]


def main() -> None:
    from connector.demo import RecordingPeer, local_config
    from connector.runtime.server import RunningConnector

    bench_import = importlib.import_module("import")
    parser = argparse.ArgumentParser()
    parser.add_argument("--megapixels", type=float, default=50)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--import-megapixels", type=float, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="telederm-bench-memory-"))
    rows = []
    try:
        big = work / "big.jpg"
        big.write_bytes(large_jpeg(args.megapixels))
        size = big.stat().st_size
        peak = max(b for _, b in sampled([str(TELEDERM), "wrap", "--out", str(work / "out"),
                                          str(big)], field="VmHWM", every=0.005))
        target = 2 * size + 150 * MB
        rows.append((f"reference: 2 x file size + 150 MB ({args.megapixels:g}-Mpx JPEG of "
                     f"{size / MB:.1f} MB)", f"{target / MB:,.0f} MB", "1"))
        rows.append(("telederm wrap of that file: peak RSS", f"{peak / MB:,.0f} MB",
                     f"{peak / target:.3f}"))

        photos = work / "photos"
        photos.mkdir()
        corpus(photos, args.count, args.import_megapixels)
        token = secrets.token_urlsafe(16)
        ehr, accounting = RecordingPeer("ehr").start(), RecordingPeer("accounting").start()
        config = local_config(work / "connector", ehr_port=ehr.port,
                              accounting_port=accounting.port, token=token)
        try:
            with RunningConnector(config) as running:
                import httpx
                api = httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=120)
                case = bench_import.open_case(running, api, 1)
                env = {**os.environ, "TELEDERM_DATA_DIR": str(config.data_dir),
                       "TELEDERM_ORTHANC_URL": running.orthanc.url,
                       "TELEDERM_ORTHANC_PASSWORD": config.orthanc.password,
                       "TELEDERM_IMAGES_EXAMPLE_DEVICES": "true"}
                samples = sampled([str(TELEDERM), "import", str(photos), "--accession",
                                   case["accession"]], env)
        finally:
            ehr.stop()
            accounting.stop()
        length = samples[-1][0]
        first = max(b for t, b in samples if length / 4 <= t <= length / 2)
        last = max(b for t, b in samples if t >= length * 3 / 4)
        rows.append((f"telederm import of {args.count} photos of {args.import_megapixels:g} Mpx: "
                     f"peak RSS over the second quarter of the run ({length:.0f} s)",
                     f"{first / MB:,.0f} MB", "1"))
        rows.append(("  ... peak RSS over the last quarter", f"{last / MB:,.0f} MB",
                     f"{last / first:.3f}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    append("memory", "peak and running RSS read from /proc",
           ("measure", "value", "ratio to the reference above it"), rows)


if __name__ == "__main__":
    main()
