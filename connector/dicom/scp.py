"""DICOM C-STORE SCP for capture devices (DICOM dermatoscopes, camera bridges), with pynetdicom.

Why: a device that speaks DICOM sends its images as they are; we take them over the network the
way a PACS would, then let the workflow attach them to the right case. This module owns the
transport only (pynetdicom's shape, STYLE.md 1): it accepts associations, and for each C-STORE
hands the object, as the bytes the peer sent, to one `receiver` callable and turns its answer
into the DIMSE status.

Handler contract (EVT_C_STORE), written once here:

- runs on the association's thread, so the peer waits while it runs: the receiver must only
  persist (file fsynced, database row committed) and answer, never call the archive;
- `receiver(Received) -> Answer`: `Answer(0x0000)` only once the object is durable;
  a failure status otherwise, with a short `comment` (ErrorComment, no patient data);
- an exception in the receiver becomes 0xA700 (Refused: out of resources, the sender may
  retry later) with a generic comment; it never reaches pynetdicom (which would answer 0xC211).

Associations calling another AE title than ours are rejected (called AE title not recognised),
and so are those from a calling AE title not in `calling_aes` when the site lists any (calling
AE title not recognised). AE titles are names, not proof: with `ssl_context` the SCP speaks
DICOM over TLS (PS3.15 B.1), which can also require a client certificate.
Presentation contexts: VL Photographic Image, Dermoscopic Photography Image (added explicitly:
it is not in pynetdicom's default storage contexts) and Secondary Capture Image, each with JPEG
Baseline, Explicit VR Little Endian, Implicit VR Little Endian and RLE Lossless. Accepted
sockets get TCP_NODELAY (without it, each small PDU waits ~40-90 ms for a delayed ACK).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import (DermoscopicPhotographyImageStorage, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless,
                         SecondaryCaptureImageStorage, VLPhotographicImageStorage)
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from .uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["CANNOT_UNDERSTAND", "DATASET_MISMATCH", "OUT_OF_RESOURCES", "SOP_CLASSES", "SUCCESS",
           "TRANSFER_SYNTAXES", "Answer", "Received", "StoreScp"]

log = logging.getLogger(__name__)

SOP_CLASSES = (VLPhotographicImageStorage, DermoscopicPhotographyImageStorage,
               SecondaryCaptureImageStorage)
TRANSFER_SYNTAXES = (JPEGBaseline8Bit, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                     RLELossless)

# C-STORE statuses (PS3.4 B.2.3).
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700    # Refused: out of resources (we could not persist: retry later)
DATASET_MISMATCH = 0xA900    # Error: data set does not match SOP class
CANNOT_UNDERSTAND = 0xC000   # Error: cannot understand (here: no case to attach it to)

_COMMENT_MAX = 64  # ErrorComment is LO


@dataclass(frozen=True)
class Received:
    """One object as the peer sent it."""

    data: bytes              # DICOM Part-10 bytes: preamble, file meta, dataset as encoded
    sop_class_uid: str       # from the C-STORE request
    sop_instance_uid: str    # from the C-STORE request
    transfer_syntax: str     # of the presentation context
    calling_ae: str
    peer: str                # "host:port"


@dataclass(frozen=True)
class Answer:
    status: int
    comment: str = ""        # ErrorComment for a failure; never patient data

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


Receiver = Callable[[Received], Answer]


class _NoDelayServer(ThreadedAssociationServer):
    """pynetdicom's threaded server, with Nagle's algorithm off on each accepted socket."""

    def get_request(self):
        client, address = super().get_request()
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # e.g. a socket type without TCP options: harmless
            pass
        return client, address


class StoreScp:
    """`start()` binds (port 0 picks a free one, see `.port`) and serves on background threads;
    `stop()` closes the listening socket and waits for running associations to finish."""

    def __init__(self, host: str, port: int, ae_title: str, receiver: Receiver, *,
                 calling_aes: Sequence[str] = (), ssl_context: ssl.SSLContext | None = None,
                 max_associations: int = 10, network_timeout: float = 60):
        self.host, self.port = host, port
        self.ae_title = ae_title
        self.receiver = receiver
        self.ssl_context = ssl_context
        self._ae = AE(ae_title=ae_title)
        self._ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID  # the connector's
        self._ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        self._ae.maximum_associations = max_associations
        self._ae.require_called_aet = True  # a peer calling another AE title is rejected
        self._ae.require_calling_aet = list(calling_aes)  # empty: any calling AE title
        self._ae.network_timeout = network_timeout
        self._ae.add_supported_context(Verification)
        for sop_class in SOP_CLASSES:
            self._ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        self._server: _NoDelayServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StoreScp:
        """Bind and serve; raises OSError when the address cannot be bound."""
        self._server = self._ae.make_server(
            (self.host, self.port), ssl_context=self.ssl_context,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)], server_class=_NoDelayServer)
        self._ae._servers.append(self._server)  # as AE.start_server does; shutdown() removes it
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"dicom-scp-{self.port}", daemon=True)
        self._thread.start()
        log.info("DICOM C-STORE SCP %s on %s:%s%s", self.ae_title, self.host, self.port,
                 " (TLS)" if self.ssl_context else "")
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        running = list(self._server.active_associations)
        self._server.shutdown()  # stops accepting and closes the listening socket
        for assoc in running:  # let a transfer in progress finish, then drop idle peers
            assoc.join(10)
            if assoc.is_alive():
                assoc.abort()
        if self._thread:
            self._thread.join(10)
        self._server = None
        log.info("DICOM C-STORE SCP on %s:%s stopped", self.host, self.port)

    # --- the handler --------------------------------------------------------------------
    def _on_store(self, event) -> Dataset:
        request = event.request
        sop_uid = str(request.AffectedSOPInstanceUID)
        assoc = event.assoc
        requestor = assoc.requestor
        received = Received(
            data=event.encoded_dataset(include_meta=True),
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=sop_uid,
            transfer_syntax=str(event.context.transfer_syntax),
            calling_ae=str(requestor.ae_title).strip(),
            peer=f"{requestor.address}:{requestor.port}",
        )
        try:
            answer = self.receiver(received)
        except Exception:  # noqa: BLE001 - the contract: any failure is a status, never a crash
            log.exception("C-STORE of %s from %s failed in the receiver", sop_uid, received.peer)
            answer = Answer(OUT_OF_RESOURCES, "internal error while storing; retry later")
        status = Dataset()
        status.Status = answer.status
        if not answer.ok and answer.comment:
            status.ErrorComment = answer.comment[:_COMMENT_MAX]
        log.info("C-STORE %s from %s (%s): 0x%04X", sop_uid, received.calling_ae or "-",
                 received.peer, answer.status)
        return status
