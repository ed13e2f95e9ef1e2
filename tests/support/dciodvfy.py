"""dicom3tools' dciodvfy, the IOD checker every written DICOM file must pass."""

from __future__ import annotations

import subprocess


def dciodvfy_errors(path) -> list[str]:
    """The "Error" lines dciodvfy reports for a file (it writes to stderr)."""
    # errors="replace": dciodvfy echoes values in the file's own charset (ISO_IR 100 is Latin-1)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                         errors="replace", timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
