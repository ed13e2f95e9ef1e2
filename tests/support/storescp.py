"""DCMTK's storescp as the hospital PACS of the tests: a real DICOM peer on a free loopback
port, writing what it receives bit for bit (`+B`) under a name of its own for each object
(`+uf`), so an object sent twice shows as two files. It runs a command after each object
(`-xcr`, synchronously with `-xs`) that logs the file's name, which gives the order of arrival.
Importable as `from tests.support.storescp import StoreScp`."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from pydicom.filereader import read_file_meta_info

from connector.ports import free_port

START_TIMEOUT = 15  # seconds storescp gets to listen
_LOGGED = "received "


class StoreScp:
    """storescp on `port` (a free one by default), writing into `folder`; `start` again after
    `stop` to bring the same peer back on the same port (an outage)."""

    def __init__(self, folder: Path, ae_title: str, port: int | None = None):
        self.folder = folder
        self.ae_title = ae_title
        self.port = port or free_port()
        self.log = folder.with_name(folder.name + ".log")
        self.process: subprocess.Popen | None = None

    def start(self) -> "StoreScp":
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["storescp", "--aetitle", self.ae_title, "+xa", "+B", "+uf", "-xs",
                 "-xcr", f"echo {_LOGGED}#f", "-od", str(self.folder), str(self.port)],
                env={**os.environ, "TCP_NODELAY": "1"}, stdout=log,
                stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"storescp did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def arrivals(self) -> list[str]:
        """SOP Instance UID of each object received, in the order it arrived (repeats kept)."""
        if not self.log.exists():
            return []
        names = [line[len(_LOGGED):].strip() for line in self.log.read_text().splitlines()
                 if line.startswith(_LOGGED)]
        return [str(read_file_meta_info(self.folder / n).MediaStorageSOPInstanceUID)
                for n in names]

    def received(self) -> dict[str, Path]:
        """SOP Instance UID -> the file storescp wrote for it."""
        return {str(read_file_meta_info(p).MediaStorageSOPInstanceUID): p
                for p in self.folder.iterdir() if p.is_file()}


def dataset_bytes(data: bytes) -> bytes:
    """The encoded dataset after a Part-10 file's File Meta Information (what C-STORE
    carries), from the file's bytes."""
    group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, after DICM
    return data[144 + group_length:]
