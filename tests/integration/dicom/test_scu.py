"""connector.dicom.scu against DCMTK's storescp: what a hospital PACS receives from us.

The objects are made by `telederm wrap` (a phone JPEG kept as JPEG Baseline, a PNG stored
losslessly, a dermoscopy image as Dermoscopic Photography), so the test sends exactly what the
connector archives; storescp writes what it receives bit for bit (`+B`), so its files tell the
SOP Class, Transfer Syntax and dataset bytes that went over the wire.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (DermoscopicPhotographyImageStorage, JPEGLSLossless,
                         JPEGBaseline8Bit, VLPhotographicImageStorage)

from pynetdicom import AE, evt

from connector.entrypoints.cli import main as telederm
from connector.dicom.scu import PeerRefused, PeerUnavailable, send
from connector.ports import free_port
from tests.support.storescp import StoreScp, dataset_bytes

PEER_AE = "HOSPITALPACS"


def _picture(fmt: str) -> bytes:
    img = Image.new("RGB", (120, 80), (220, 170, 140))
    ImageDraw.Draw(img).ellipse((40, 20, 80, 60), fill=(80, 50, 30))
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> list[Path]:
    """A photo (JPEG Baseline), a PNG (decoded, stored as JPEG-LS lossless) and a dermoscopy image."""
    work = tmp_path_factory.mktemp("scu-objects")
    (work / "photo.jpg").write_bytes(_picture("JPEG"))
    (work / "plain.png").write_bytes(_picture("PNG"))
    (work / "lesion.jpg").write_bytes(_picture("JPEG"))
    out = work / "dcm"
    common = ["--out", str(out), "--patient-id", "P-SCU", "--accession", "ACC-SCU"]
    assert telederm(["wrap", str(work / "photo.jpg"), str(work / "plain.png"), *common]) == 0
    assert telederm(["wrap", str(work / "lesion.jpg"), "--kind", "dermoscopy", *common]) == 0
    files = [out / "photo.dcm", out / "plain.dcm", out / "lesion.dcm"]
    pairs = {(str(read_file_meta_info(f).MediaStorageSOPClassUID),
              str(read_file_meta_info(f).TransferSyntaxUID)) for f in files}
    # The three pairs this test is about; if wrapping changes, the test must be re-thought.
    assert pairs == {(VLPhotographicImageStorage, JPEGBaseline8Bit),
                     (VLPhotographicImageStorage, JPEGLSLossless),
                     (DermoscopicPhotographyImageStorage, JPEGBaseline8Bit)}
    return files


@pytest.fixture
def storescp(tmp_path):
    scp = StoreScp(tmp_path / "received", PEER_AE).start()
    yield scp
    scp.stop()


def test_every_object_arrives_with_sop_class_and_transfer_syntax_unchanged(objects, storescp):
    results = send(objects, ae_title=PEER_AE, host="127.0.0.1", port=storescp.port)

    assert [(r.path, r.status, r.stored) for r in results] == [(f, 0, True) for f in objects]
    received = storescp.received()
    assert storescp.arrivals() == [r.sop_instance_uid for r in results]  # each once, in order
    for sent in results:
        got = read_file_meta_info(received[sent.sop_instance_uid])
        assert str(got.MediaStorageSOPClassUID) == sent.sop_class_uid
        assert str(got.TransferSyntaxUID) == sent.transfer_syntax_uid
        assert (dataset_bytes(received[sent.sop_instance_uid].read_bytes())
                == dataset_bytes(sent.path.read_bytes()))


def test_send_raises_retryable_error_when_peer_is_down(objects):
    with pytest.raises(PeerUnavailable) as caught:
        send(objects, ae_title=PEER_AE, host="127.0.0.1", port=free_port(), timeout=5)
    assert caught.value.retryable


def test_send_raises_non_retryable_error_when_peer_rejects_called_ae_title(objects):
    # storescp answers any called AE title, so the refusing peer is a pynetdicom SCP that
    # requires its own (it rejects with result 1, permanent, reason 7: called AE not known).
    peer = AE(ae_title="STRICT")
    peer.require_called_aet = True
    peer.add_supported_context(VLPhotographicImageStorage, JPEGBaseline8Bit)
    server = peer.start_server(("127.0.0.1", 0), block=False)
    try:
        with pytest.raises(PeerRefused) as caught:
            send(objects, ae_title="NOT-STRICT", host="127.0.0.1",
                 port=server.server_address[1], timeout=5)
        assert not caught.value.retryable
    finally:
        server.shutdown()


def test_objects_whose_context_is_refused_are_reported_not_stored(objects):
    # A PACS configured for photos only: the dermoscopy context is refused, the rest stored.
    peer = AE(ae_title=PEER_AE)
    peer.add_supported_context(VLPhotographicImageStorage,
                               [JPEGBaseline8Bit, JPEGLSLossless])
    stored = []
    server = peer.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
        (evt.EVT_C_STORE, lambda event: stored.append(event.request.AffectedSOPInstanceUID)
         or 0x0000)])
    try:
        results = send(objects, ae_title=PEER_AE, host="127.0.0.1",
                       port=server.server_address[1], timeout=5)
    finally:
        server.shutdown()
    assert [r.stored for r in results] == [True, True, False]
    assert results[2].status is None and "not accepted" in results[2].comment
    assert stored == [results[0].sop_instance_uid, results[1].sop_instance_uid]


def test_each_outcome_is_handed_over_before_the_peer_aborts_mid_send(objects):
    # The PACS takes the first object, then drops the association while answering the second:
    # what it took is known to the caller although send() raises.
    peer = AE(ae_title=PEER_AE)
    peer.add_supported_context(VLPhotographicImageStorage, [JPEGBaseline8Bit, JPEGLSLossless])
    peer.add_supported_context(DermoscopicPhotographyImageStorage, JPEGBaseline8Bit)
    stored = []

    def take_one_then_abort(event):
        if stored:
            event.assoc.abort()
            return 0xA700
        stored.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    server = peer.start_server(("127.0.0.1", 0), block=False,
                               evt_handlers=[(evt.EVT_C_STORE, take_one_then_abort)])
    seen = []
    try:
        with pytest.raises(PeerUnavailable):
            send(objects, ae_title=PEER_AE, host="127.0.0.1", port=server.server_address[1],
                 timeout=5, on_result=seen.append)
    finally:
        server.shutdown()
    assert [(s.sop_instance_uid, s.stored) for s in seen] == [(stored[0], True)]
    assert seen[0].path == objects[0]
