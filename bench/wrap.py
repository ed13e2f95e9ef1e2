"""Benchmark: `telederm wrap` of a batch of phone JPEGs, against DCMTK and `cp` in the same run.

Measures, on the same files (default 200 JPEGs of 12 Mpx, about 3 MB each, with an EXIF block
and a comment the connector cuts, each file different by its comment):
- the reference: a shell loop of DCMTK `img2dcm` (one process per file, as a site script does);
- the physical floor: `cp` of the same files into another folder (read + write, no hashing);
- `telederm wrap` of them all in one command: the whole command (Python start-up included)
  against the `img2dcm` loop, and its throughput past start-up (from the first file written to
  the last) against `cp`'s.

All three read the files from the page cache (they were just written) and write into the same
file system. Results are appended to bench/RESULTS.md.

Run: .venv/bin/python bench/wrap.py [--count 200] [--megapixels 12]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import append

TELEDERM = Path(sys.executable).with_name("telederm")


def phone_jpeg(megapixels: float) -> bytes:
    """A 4:3 photo with skin-like texture and fine detail, baseline 4:2:0 at quality 92 (what a
    phone writes), with an EXIF block naming a camera."""
    import numpy as np
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = width * 3 // 4
    rng = np.random.default_rng(17)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([200 + 20 * np.sin(x / 37.0), 150 + 25 * np.sin(y / 53.0),
                     120 + 15 * np.cos((x + y) / 71.0)], axis=-1)
    noise = rng.normal(0, 7, (height, width, 3))
    pixels = np.clip(base + noise, 0, 255).astype("uint8")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "BenchPhone", "Model 12", 1
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def corpus(folder: Path, count: int, megapixels: float) -> list[Path]:
    """`count` files, each the same photo with its own COM segment after SOI (its own bytes)."""
    photo = phone_jpeg(megapixels)
    paths = []
    for i in range(count):
        comment = f"bench photo {i:05d}".encode()
        data = photo[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + photo[2:]
        path = folder / f"IMG_{i:05d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def timed(argv: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def wrap_run(files: list[Path], out: Path) -> tuple[float, float]:
    """Whole command time, and the time from the first file written to the end."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(TELEDERM), "wrap", "--out", str(out), "--patient-id", "P1",
                             "--patient-name", "DOE^JANE", *map(str, files)],
                            stdout=subprocess.PIPE, text=True)
    first = None
    for _ in proc.stdout:
        if first is None:
            first = time.perf_counter()
    if proc.wait() != 0:
        raise SystemExit("telederm wrap failed: the bench is void")
    end = time.perf_counter()
    return end - start, end - first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--megapixels", type=float, default=12)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="telederm-bench-wrap-"))
    try:
        src = work / "src"
        src.mkdir()
        files = corpus(src, args.count, args.megapixels)
        total = sum(p.stat().st_size for p in files)
        per_file = total / len(files)

        dcmtk_out = work / "dcmtk"
        dcmtk_out.mkdir()
        loop = 'for f in "$@"; do img2dcm -q "$f" "$OUT/$(basename "$f" .jpg).dcm" || exit 1; done'
        env = {**os.environ, "OUT": str(dcmtk_out), "TCP_NODELAY": "1"}
        img2dcm = timed(["sh", "-c", loop, "sh", *map(str, files)], env=env)

        cp_out = work / "cp"
        cp_time = timed(["cp", "-r", str(src), str(cp_out)])
        cp_rate = total / cp_time

        ours_out = work / "ours"
        whole, past_start = wrap_run(files, ours_out)
        ours_rate = per_file * (len(files) - 1) / past_start
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = 1024 * 1024
    rows = [
        (f"reference: img2dcm shell loop, {len(files)} files", f"{img2dcm:.2f} s", "1", "—"),
        (f"cp -r of the same {total / mb:,.0f} MB", f"{cp_time:.2f} s ({cp_rate / mb:,.0f} MB/s)",
         f"{cp_time / img2dcm:.3f}", "1"),
        ("telederm wrap, whole command (start-up included)", f"{whole:.2f} s",
         f"{whole / img2dcm:.3f}", "—"),
        ("telederm wrap, past start-up (first file written to last)",
         f"{past_start:.2f} s ({ours_rate / mb:,.0f} MB/s)", "—", f"{ours_rate / cp_rate:.3f}"),
    ]
    append("wrap", f"{len(files)} JPEGs of {args.megapixels:g} Mpx, {per_file / mb:.1f} MB each",
           ("measure", "value", "time ratio to img2dcm loop", "throughput ratio to cp"), rows)


if __name__ == "__main__":
    main()
