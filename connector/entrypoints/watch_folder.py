"""Watched folder: images a dermatoscope (or any capture software) exports into a folder are
attached to their case.

Which case: a sidecar JSON file beside the image (`<name>.json` or `<stem>.json`, an object
with `accession` and optionally `kind`, `site`, `laterality`, `description`), else the file name
matched by `watch.pattern` (a regular expression with a named group `accession`; optional groups
`kind`, `site`, `laterality` are used when present). A DICOM Part-10 file needs neither: it is
matched like a C-STORE (receive_object), by its own AccessionNumber or PatientID, unless a
sidecar names the case.

When: a file is taken once it is stable, i.e. its size and modification time (and its
sidecar's) are the same at two successive polls, so a file still being written is left alone.
Hidden files and temporary names (`.tmp`, `.part`, `.partial`, `.crdownload`, `~`) are ignored.

Outcome: on success the file (and its sidecar) moves to `done/`; when the connector refuses it,
to `failed/`, with `<name>.error.txt` holding a one-line reason. A file is moved only after the
database transaction that attached it has committed; if the process dies in between, the file
is taken again at the next start, and since SOP Instance UIDs derive from the case and the
content, the second take adds nothing and only moves the file. A temporary failure (database
or disk unavailable) leaves the file where it is, to be tried again.

A file name longer than MAX_NAME_BYTES is refused without being read: `failed/<name>.error.txt`
would pass the file system's limit (255 bytes), so it moves as `long-name-<digest><ext>`
beside its `.error.txt`. Names may carry patient data, so the log never shows one; and one
file that cannot be handled never stops the poll from taking the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ..bootstrap import Services
from ..domain.errors import ConnectorError, StoreUnavailable
from ..workflow import attach_image, receive_object
from ..workflow.commands import AttachImage, ReceiveObject

log = logging.getLogger("connector.watch")

DONE, FAILED = "done", "failed"
SIDECAR_KEYS = frozenset({"accession", "kind", "site", "laterality", "description"})
# Room left under NAME_MAX (255) for "-N" of a taken name, ".error.txt" and a ".json" sidecar.
MAX_NAME_BYTES = 200
_IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~", ".error.txt", ".json")
ACTOR = "folder"


class SidecarError(ConnectorError):
    code = "bad-sidecar"
    http_status = 422


@dataclass(frozen=True)
class Taken:
    """What happened to one file: `done` or `failed` (with the reason), and where it went."""

    name: str
    outcome: str
    moved_to: Path
    accession: str = ""
    reason: str = ""


@dataclass(frozen=True)
class _Description:
    accession: str = ""
    kind: str = ""
    site: str = ""
    laterality: str = ""
    description: str = ""


class FolderWatcher:
    """Polls `folder`; `poll_once()` takes the files that have become stable."""

    def __init__(self, services: Services, folder: Path, *, pattern: str, kind: str = "photo",
                 interval: float = 2.0):
        self.services = services
        self.folder = Path(folder)
        self.pattern = re.compile(pattern)
        self.kind = kind
        self.interval = interval
        self._previous: dict[str, tuple[int, int]] = {}

    def run_forever(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; the file in hand is finished before returning."""
        log.info("watching %s every %g s", self.folder, self.interval)
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - e.g. the folder unmounted: log, try again later
                log.exception("watched folder poll failed")
            stop.wait(self.interval)

    def poll_once(self) -> list[Taken]:
        snapshot = self._snapshot()
        previous, self._previous = self._previous, snapshot
        taken = []
        for name in sorted(snapshot):
            if _ignored(name):
                continue
            sidecars = [n for n in _sidecar_names(name) if n in snapshot]
            if all(n in previous and previous[n] == snapshot[n] for n in [name, *sidecars]):
                try:
                    result = self._take(self.folder / name, [self.folder / n for n in sidecars])
                except Exception:  # noqa: BLE001 - one file must not stop the others
                    log.exception("a watched file could not be handled; the others go on")
                    result = None
                if result is None:
                    self._previous.pop(name, None)  # temporary failure: wait two polls again
                else:
                    taken.append(result)
        return taken

    # --- one file ---------------------------------------------------------------------------
    def _take(self, path: Path, sidecars: list[Path]) -> Taken | None:
        if len(path.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            err = SidecarError(f"the file name is longer than {MAX_NAME_BYTES} bytes",
                               where="file name", hint="export with shorter file names")
            receive_object.refused(self.services, actor=ACTOR, reason=err, sop_instance_uid="",
                                  via="folder")
            target = self._move(path, sidecars, FAILED, reason=err.one_line())
            return Taken(path.name, "failed", target, reason=err.one_line())
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None  # taken away meanwhile
        except OSError as exc:
            log.warning("cannot read a watched file: %s", exc.strerror or exc)
            return None
        try:
            what = self._describe(path.name, sidecars[0] if sidecars else None)
            if data[128:132] == b"DICM":
                with self.services.unit() as uow:
                    got = receive_object.handle(ReceiveObject(
                        data, ACTOR, accession=what.accession or None, source="folder"), uow)
            else:
                if not what.accession:
                    raise SidecarError(
                        "no accession for this file: no sidecar JSON and the file name does "
                        "not match watch.pattern", where="file name",
                        hint="add <name>.json with an accession, or name the file like "
                             "TD00000001_photo.jpg")
                [got] = attach_image.attach(self.services, [AttachImage(
                    what.accession, data, ACTOR, kind=what.kind or self.kind, site=what.site,
                    laterality=what.laterality, description=what.description)])
        except StoreUnavailable as exc:
            log.warning("watched file left for a retry: %s", exc.text)
            return None
        except ConnectorError as err:
            receive_object.refused(self.services, actor=ACTOR, reason=err, sop_instance_uid="",
                                  via="folder")
            target = self._move(path, sidecars, FAILED, reason=err.one_line())
            return Taken(path.name, "failed", target, reason=err.one_line())
        target = self._move(path, sidecars, DONE)
        accession = getattr(got, "accession", what.accession)
        log.info("watched file attached to %s (%s)", accession,
                 "new" if getattr(got, "created", True) else "already attached")
        return Taken(path.name, "done", target, accession=accession)

    def _describe(self, name: str, sidecar: Path | None) -> _Description:
        values: dict[str, str] = {}
        if sidecar is not None:
            values = _read_sidecar(sidecar)
        if not values.get("accession"):
            m = self.pattern.search(name)
            if m:
                found = {k: v for k, v in m.groupdict().items()
                         if k in SIDECAR_KEYS and v}
                values = {**found, **values}
        return _Description(**values)

    def _move(self, path: Path, sidecars: list[Path], where: str, *, reason: str = "") -> Path:
        folder = self.folder / where
        folder.mkdir(exist_ok=True)
        target = _free_name(folder, _kept_name(path.name))
        if reason:
            error = folder / f"{target.name}.error.txt"
            error.write_text(reason.replace("\n", " ") + "\n", encoding="utf-8")
        os.replace(path, target)
        for sidecar in sidecars:
            if sidecar.name == f"{path.name}.json":
                dest = folder / f"{target.name}.json"  # stays paired with the moved file
            else:
                dest = _free_name(folder, sidecar.name)
            try:
                os.replace(sidecar, dest)
            except FileNotFoundError:
                pass
        return target

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        out = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return out
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out[entry.name] = (st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                continue
        return out


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(_IGNORED_SUFFIXES)


def _sidecar_names(name: str) -> list[str]:
    """`photo.jpg.json` first, then `photo.json`."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return list(dict.fromkeys([f"{name}.json", f"{stem}.json"]))


def _read_sidecar(path: Path) -> dict[str, str]:
    where = path.name
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"sidecar is not readable JSON ({type(exc).__name__})", where=where,
                           hint="write a JSON object like {\"accession\": \"TD00000001\"}") from None
    if not isinstance(raw, dict):
        raise SidecarError("sidecar is not a JSON object", where=where)
    unknown = sorted(set(raw) - SIDECAR_KEYS)
    if unknown:
        raise SidecarError(f"unknown key(s) {unknown} in the sidecar", where=where,
                           hint="allowed keys: " + ", ".join(sorted(SIDECAR_KEYS)))
    if not all(isinstance(v, str) for v in raw.values()):
        raise SidecarError("sidecar values must be strings", where=where)
    return {k: v.strip() for k, v in raw.items()}


def _kept_name(name: str) -> str:
    """The name a file keeps in done/ or failed/: its own, or a short one for a name too long
    (its extension kept when it is a short one)."""
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    ext = Path(name).suffix
    return f"long-name-{digest}{ext if 1 < len(ext) <= 8 else ''}"


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name` with -1, -2 ... before its extension when that is taken."""
    target = folder / name
    stem, dot, ext = name.partition(".")
    n = 0
    while target.exists():
        n += 1
        target = folder / (f"{stem}-{n}{dot}{ext}")
    return target
