"""Small helpers shared by the workflow steps: time formats and the data folder layout."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path


def dicom_dt(moment: dt.datetime) -> str:
    """YYYYMMDDHHMMSS in local time, as HL7 TS and DICOM DA+TM expect."""
    return moment.astimezone().strftime("%Y%m%d%H%M%S")


def write_durably(path: Path, data: bytes) -> None:
    """Write a file and fsync it before the transaction that refers to it commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
