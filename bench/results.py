"""Appending a section to bench/RESULTS.md, the same way for every benchmark script."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def append(name: str, facts: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print and append one section: `## name — when (python, machine, CPUs, facts; load)`,
    then a table of `rows` under `columns`. The load average is stated because this machine is
    shared: a section's ratios compare figures taken at the same time, its times do not travel."""
    lines = [
        f"\n## {name} — {dt.datetime.now().isoformat(timespec='seconds')} "
        f"({platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, {facts}; "
        f"load average {os.getloadavg()[0]:.1f}: the machine is shared, compare ratios)\n",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *["| " + " | ".join(row) + " |" for row in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a") as fh:
        fh.write(text)
