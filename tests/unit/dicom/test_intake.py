"""The two callers of wrap_image in this area: attach_image (every channel of a case) and
`telederm wrap`. Same file, same object; a refused file leaves nothing behind."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom.uid import JPEGLSLossless
from sqlalchemy import func, select

from connector.entrypoints.cli import main
from connector.config import load_config
from connector.domain.errors import ImageError
from connector.domain.model import Order, Patient, PersonName, Practitioner
from connector.store import cases
from connector.store.schema import audit, images, outbox
from connector.workflow import attach_image, open_case
from connector.workflow.commands import AttachImage, OpenCase
from connector.bootstrap import build

import pillow_heif

from tests.support.dicom_samples import ODD, encode, oriented_jpeg, pattern, png_bomb
from tests.support.cli import EXAMPLE_DEVICES


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _heic() -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(pattern(ODD)).save(buffer, quality=90)
    return buffer.getvalue()


@pytest.fixture
def case(tmp_path):
    """A store in tmp_path with one open case; yields (services, accession)."""
    services = build(load_config(None, environ={"TELEDERM_DATA_DIR": str(tmp_path / "data"),
                                                     **EXAMPLE_DEVICES}))
    order = Order(sender="EHR|CHU", placer_order_number="INTAKE-1",
                  patient=Patient("IPP-INTAKE", PersonName("MARTIN", "Luc")),
                  requester=Practitioner("801234567897", PersonName("DOC", "Jean")),
                  question="Lésion ?")
    with services.unit() as uow:
        opened = open_case.handle(OpenCase(order, "test"), uow)
    yield services, opened.accession
    services.store.close()


def _count(services, table) -> int:
    with services.store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _attach(services, accession: str, data: bytes, **details) -> attach_image.AttachedImage:
    """One file through the step every channel calls."""
    [got] = attach_image.attach(services, [AttachImage(accession, data, "test", **details)])
    return got


def _files(services) -> list:
    folder = services.config.data_dir / "images"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_attach_image_stores_a_decoded_heic_once_when_sent_twice(case):
    services, accession = case
    data = _heic()
    first = _attach(services, accession, data)
    again = _attach(services, accession, data)
    assert first.created and not again.created
    assert first.sop_instance_uid == again.sop_instance_uid
    (path,) = _files(services)
    ds = dcmread(path)
    assert ds.SOPInstanceUID == first.sop_instance_uid
    assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
    with services.store.engine.connect() as conn:
        row = conn.execute(select(images)).one()
        detail = conn.execute(select(audit.c.detail).where(
            audit.c.action == "image.attached")).scalar_one()
    assert row.sop_class_uid == ds.SOPClassUID
    assert '"source_type": "heif"' in detail and '"pixel_path": "decoded"' in detail


@pytest.mark.parametrize("data", [b"", png_bomb(), encode(pattern(), "GIF"),
                                  _half(encode(pattern(ODD), "PNG"))],
                         ids=["zero-bytes", "pixel-bomb", "gif", "truncated-png"])
def test_attach_image_refuses_and_leaves_nothing_behind_when_file_is_bad(case, data):
    services, accession = case
    before = (_count(services, outbox), _count(services, audit))
    with services.store.engine.connect() as conn:
        status = cases.load(conn, accession).status
    with pytest.raises(ImageError) as caught:
        _attach(services, accession, data)
    assert caught.value.hint
    assert _files(services) == []
    assert _count(services, images) == 0
    assert (_count(services, outbox), _count(services, audit)) == before
    with services.store.engine.connect() as conn:
        assert cases.load(conn, accession).status == status


def test_attach_image_writes_a_dermoscopic_image_when_kind_is_dermoscopy(case):
    services, accession = case
    got = _attach(services, accession, encode(pattern(), "JPEG"), kind="dermoscopy",
                  tracking_id="nevus back 1")
    with services.store.engine.connect() as conn:
        (row,) = conn.execute(select(images)).all()
    ds = dcmread(row.path)
    assert (ds.SOPClassUID, ds.Modality) == ("1.2.840.10008.5.1.4.1.1.77.1.7", "DMS")
    assert ds.TrackingID == "nevus back 1" and ds.Manufacturer == "DermLite"
    assert got.sop_instance_uid == ds.SOPInstanceUID


def test_attach_image_refuses_an_unknown_dermatoscope_before_writing_anything(case):
    services, accession = case
    with pytest.raises(ImageError, match="unknown dermatoscope 'nope'"):
        _attach(services, accession, encode(pattern(), "JPEG"), kind="dermoscopy",
                device="nope")
    assert _count(services, images) == 0 and _files(services) == []


def test_same_file_as_photo_and_as_dermoscopy_gives_two_instances(case):
    services, accession = case
    data = encode(pattern(), "JPEG")
    photo = _attach(services, accession, data)
    dermo = _attach(services, accession, data, kind="dermoscopy")
    assert photo.sop_instance_uid != dermo.sop_instance_uid and dermo.created


# --- telederm wrap ------------------------------------------------------------------------

def test_cli_wrap_writes_upright_objects_when_inputs_are_misnamed_and_rotated(tmp_path, capsys):
    png_named_jpg = tmp_path / "lesion.jpg"
    png_named_jpg.write_bytes(encode(pattern(ODD), "PNG"))
    rotated = tmp_path / "rotated.png"
    rotated.write_bytes(oriented_jpeg(6, ODD)[1])
    assert main(["wrap", str(png_named_jpg), str(rotated), "--out", str(tmp_path / "out")]) == 0
    lesion, turned = (dcmread(line) for line in capsys.readouterr().out.split())
    assert lesion.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert (turned.Columns, turned.Rows) == ODD  # stored sideways as 473 x 631, now upright
    assert list(turned.ImageType) == ["DERIVED", "PRIMARY"]


def test_cli_wrap_exits_2_and_writes_nothing_for_the_bad_file_when_it_is_a_bomb(tmp_path,
                                                                                capsys):
    good, bomb = tmp_path / "good.jpg", tmp_path / "bomb.png"
    good.write_bytes(encode(pattern(), "JPEG"))
    bomb.write_bytes(png_bomb())
    out = tmp_path / "out"
    assert main(["wrap", str(good), str(bomb), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "bomb.png" in error and "30000 x 30000" in error
    assert sorted(p.name for p in out.iterdir()) == ["good.dcm"]


def test_cli_wrap_writes_a_dermoscopic_image_when_kind_is_dermoscopy(tmp_path, capsys):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(encode(pattern(), "JPEG"))
    assert main(["wrap", str(photo), "--kind", "dermoscopy", "--device", "dermlite-dl5",
                 "--tracking-id", "L1", "--out", str(tmp_path / "o")]) == 0
    ds = dcmread(capsys.readouterr().out.strip())
    assert ds.Modality == "DMS" and ds.TrackingID == "L1"


def test_cli_wrap_exits_2_with_one_line_when_the_dermatoscope_is_unknown(tmp_path, capsys):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(encode(pattern(), "JPEG"))
    assert main(["wrap", str(photo), "--kind", "dermoscopy", "--device", "nope",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown dermatoscope 'nope' (device)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
