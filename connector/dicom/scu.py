"""DICOM C-STORE SCU: send finished Part-10 files to a peer (the hospital PACS), with pynetdicom.

Why: a site that keeps its images in its own PACS wants the case's study there too, as the very
objects the connector archived. So nothing is converted on the way: the association proposes
exactly the (SOP Class, Transfer Syntax) pairs of the files, one presentation context per pair
(Dermoscopic Photography included: pynetdicom's default storage contexts lack it), and each
file's dataset is sent as the bytes on disk (`STORE_SEND_CHUNKED_DATASET`: pynetdicom then
streams the encoded dataset instead of decoding and re-encoding it, and needs an exactly
matching accepted context, which is what we propose).

What the caller gets:

- `send()` returns one `Sent` per file, in order, with the DIMSE status the peer answered
  (warnings such as 0xB000 count as stored, as PS3.4 B.2.3 says the object was kept), and
  hands each one to `on_result` as soon as it is known, so a caller can record what the peer
  took before a later file fails or the association drops;
- a file whose context the peer refused is reported with `status=None` and a comment: sending
  it again will not help until the PACS is configured to take that SOP class or syntax;
- `PeerUnavailable` (retryable) when the peer cannot be reached, does not answer, rejects the
  association transiently or aborts it before every file was answered: the outbox tries again
  later, with the files `on_result` did not see stored;
- `PeerRefused` (not retryable) when the peer permanently rejects the association (wrong
  called AE title, calling AE not allowed): an operator must fix the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pydicom.misc import is_dicom
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

from connector.domain.errors import ConnectorError, DomainError

from .uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["MAX_CONTEXTS", "PeerRefused", "PeerUnavailable", "Sent", "send"]

log = logging.getLogger(__name__)

# Send files as encoded on disk; only path-based sends are affected, and the connector's other
# DICOM code (the SCP, the wrappers) sends no files.
_config.STORE_SEND_CHUNKED_DATASET = True

MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context ids are odd numbers 1..255
_SUCCESS = 0x0000
_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)  # stored, with a warning (PS3.4 B.2.3, PS3.7 C)


class PeerUnavailable(ConnectorError):
    """The peer could not take the objects now (down, silent, busy): try again later."""

    code = "dicom-peer-unavailable"
    http_status = 503


class PeerRefused(ConnectorError):
    """The peer permanently rejected the association: its configuration or ours must change."""

    code = "dicom-peer-refused"
    http_status = 502
    retryable = False


@dataclass(frozen=True)
class Sent:
    """The outcome for one file."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    status: int | None  # the peer's DIMSE status; None when the file could not be offered
    comment: str = ""  # the peer's ErrorComment, or why the file was not offered

    @property
    def stored(self) -> bool:
        return self.status == _SUCCESS or self.status in _WARNINGS


@dataclass(frozen=True)
class _Object:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def send(files: Sequence[str | Path], *, ae_title: str, host: str, port: int,
         calling_ae_title: str = "TELEDERM", timeout: float = 30,
         on_result: Callable[[Sent], None] | None = None) -> list[Sent]:
    """C-STORE every file to `ae_title` at `host:port` over one association.

    `timeout` bounds connecting, the association negotiation and each answer; `on_result` is
    called with each file's outcome, in order, as the peer answers it (an exception it raises
    aborts the send: the association is released and the exception propagates). Raises
    DomainError for a file that is not DICOM Part-10 (checked for all files before connecting),
    PeerUnavailable or PeerRefused as described in the module docstring.
    """
    objects = [_read_meta(Path(f)) for f in files]
    if not objects:
        return []
    pairs = sorted({(o.sop_class_uid, o.transfer_syntax_uid) for o in objects})
    if len(pairs) > MAX_CONTEXTS:
        raise DomainError(f"{len(pairs)} SOP class and transfer syntax pairs are more than one "
                          f"association can propose ({MAX_CONTEXTS})", where="files",
                          hint="send the objects in smaller batches")
    ae = AE(ae_title=calling_ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID  # the connector, not pynetdicom
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]
    where = f"{ae_title}@{host}:{port}"
    assoc = ae.associate(host, port, contexts=contexts, ae_title=ae_title)
    refused = "presentation context not accepted by the peer (SOP class or transfer syntax)"
    results: list[Sent] = []

    def answered(sent: Sent) -> None:
        results.append(sent)
        if on_result is not None:
            on_result(sent)

    if not assoc.is_established:
        if _accepted_without_contexts(assoc):  # pynetdicom then aborts: nothing can be offered
            for obj in objects:
                answered(_outcome(obj, None, refused))
            return results
        if assoc.is_rejected and _permanent(assoc):
            raise PeerRefused(f"the DICOM peer rejected the association ({_reason(assoc)})",
                              where=where, hint="check the peer's AE title and that it "
                                                f"accepts calls from {calling_ae_title}")
        raise PeerUnavailable(f"the DICOM peer did not accept an association ({_reason(assoc)})",
                              where=where, hint="the objects are sent again later")
    accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0]))
                for c in assoc.accepted_contexts}
    try:
        for obj in objects:
            if (obj.sop_class_uid, obj.transfer_syntax_uid) not in accepted:
                answered(_outcome(obj, None, refused))
                continue
            status = assoc.send_c_store(obj.path)
            if "Status" not in status:  # timeout, abort or an invalid answer
                raise PeerUnavailable(
                    f"the DICOM peer gave no answer for object {len(results) + 1} of "
                    f"{len(objects)}", where=where, hint="the objects are sent again later")
            answered(_outcome(obj, int(status.Status), str(status.get("ErrorComment", ""))))
    finally:
        if assoc.is_established:
            assoc.release()
    log.info("C-STORE to %s: %d of %d stored", where, sum(r.stored for r in results),
             len(results))
    return results


def _read_meta(path: Path) -> _Object:
    """The identity of a Part-10 file from its File Meta Information only."""
    if not path.is_file() or not is_dicom(path):
        raise DomainError(f"{path.name} is not a DICOM Part-10 file", where=str(path),
                          hint="send files written by the connector (preamble and DICM)")
    meta = read_file_meta_info(path)
    missing = [kw for kw in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                             "TransferSyntaxUID") if kw not in meta]
    if missing:
        raise DomainError(f"{path.name} lacks {', '.join(missing)} in its file meta",
                          where=str(path), hint="rewrite the file with its file meta")
    return _Object(path, str(meta.MediaStorageSOPClassUID),
                   str(meta.MediaStorageSOPInstanceUID), str(meta.TransferSyntaxUID))


def _outcome(obj: _Object, status: int | None, comment: str) -> Sent:
    return Sent(obj.path, obj.sop_class_uid, obj.sop_instance_uid, obj.transfer_syntax_uid,
                status, comment)


def _accepted_without_contexts(assoc) -> bool:
    answer = assoc.acceptor.primitive
    return answer is not None and answer.result == 0x00


def _permanent(assoc) -> bool:
    """A-ASSOCIATE-RJ result 1 is rejected-permanent, 2 rejected-transient (PS3.8 9.3.4)."""
    rejection = assoc.acceptor.primitive
    return rejection is not None and rejection.result == 0x01


def _reason(assoc) -> str:
    if assoc.is_rejected:
        primitive = assoc.acceptor.primitive
        return f"rejected: {primitive.reason_str}" if primitive is not None else "rejected"
    if assoc.is_aborted:
        return "aborted"
    return "no answer or connection refused"
