"""The intake corpus generators for the DICOM tests (orientations, PNG, TIFF, HEIC, 12-bit
JPEG, bombs), and the metadata strings planted in test JPEGs."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import ExifTags, Image

# Strings planted in the test JPEG's metadata; none may reach a DICOM file.
SECRETS = (b"AcmeCam", b"Derm 3000", b"SN-9876543", b"patient DUPONT in room 12")


def planted_exif(orientation: int = 6) -> Image.Exif:
    """EXIF carrying the planted secrets (Make, Model, serial) and GPS, with `orientation`."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "AcmeCam"
    exif[ExifTags.Base.Model] = "Derm 3000"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-9876543"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 21.0, 3.0)
    return exif


# --- the intake corpus: every input the issue names, generated here --------------------------

# How a camera held in EXIF orientation N stores an upright scene: the inverse of the turn a
# viewer applies (TIFF 6.0 tag 0x0112). Written independently of connector.dicom.orientation.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # Pillow turns anticlockwise: the viewer turns it back 90° cw
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
ALIGNED, ODD = (64, 48), (631, 473)  # whole 16x16 MCUs for 4:2:0, and neither side whole
GS_ICC = Path("/usr/share/color/icc/ghostscript")  # Debian libgs-common (Makefile DEB_PACKAGES)


def pattern(size=ALIGNED) -> Image.Image:
    """An upright picture no flip or turn maps onto itself: four flat colour quadrants and a
    white bar in the top-left one (flat areas keep JPEG error small at the comparison)."""
    width, height = size
    img = Image.new("RGB", size, (200, 40, 40))
    img.paste((40, 170, 60), (width // 2, 0, width, height // 2))
    img.paste((50, 60, 190), (0, height // 2, width // 2, height))
    img.paste((230, 210, 60), (width // 2, height // 2, width, height))
    img.paste((255, 255, 255), (width // 8, height // 8, width // 3, height // 5))
    return img


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def oriented_jpeg(orientation: int, size=ALIGNED, **options) -> tuple[Image.Image, bytes]:
    """(upright reference, JPEG storing it as a camera in `orientation` would, tag included)."""
    upright = pattern(size)
    turn = STORED_AS[orientation]
    stored = upright if turn is None else upright.transpose(turn)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return upright, encode(stored, "JPEG", quality=95, exif=exif, **options)


def gps_exif() -> Image.Exif:
    """EXIF as a phone writes it: the planted secrets, GPS, orientation 1."""
    return planted_exif(1)


def tiff16_rgb(pixels) -> bytes:
    """An uncompressed 16-bit RGB TIFF (Pillow cannot write one), little-endian, one strip."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 1),
               (262, 3, 1, 2), (273, 4, 1, None), (277, 3, 1, 3), (278, 3, 1, height),
               (279, 4, 1, len(data))]
    bits_at = 8 + 2 + 12 * len(entries) + 4
    data_at = bits_at + 6
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, count, value in entries:
        value = {258: bits_at, 273: data_at}.get(tag, value)
        if kind == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16) + data
    return bytes(out)


def tiff_declaring(width: int, height: int) -> bytes:
    """A greyscale TIFF header declaring `width` x `height` with a one-byte strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8 + 2 + 12 * 8 + 4), (278, 4, 1, height),
               (279, 4, 1, 1)]
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, count, value in entries:
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, count, value)
    return bytes(out + struct.pack("<I", 0) + b"\x00")


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A real 1-bit PNG of `width` x `height` black pixels: ~110 kB that decodes to 900 MB."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def dcmtk_jpeg(pixels, bits: int, option: str, tmp: Path) -> bytes:
    """A JPEG stream of more than 8 bits (which Pillow cannot write), made by DCMTK dcmcjpeg:
    `+ee` extended sequential (SOF1, lossy), `+el` lossless (SOF3)."""
    from pydicom import dcmread
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import generate_frames
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "2.25.1"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    ds.PhotometricInterpretation = "RGB" if pixels.ndim == 3 else "MONOCHROME2"
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(tmp / "raw.dcm", enforce_file_format=True)
    subprocess.run(["dcmcjpeg", option, str(tmp / "raw.dcm"), str(tmp / "jpeg.dcm")],
                   check=True, capture_output=True, timeout=60)
    compressed = dcmread(tmp / "jpeg.dcm")
    return next(generate_frames(compressed.PixelData, number_of_frames=1))


def secondary_capture(accession: str = "ACC0001"):
    """A small, valid Secondary Capture image (8x8 MONOCHROME2, uncompressed) in a new study:
    the dataset and its Part-10 bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "TEST^PATIENT"
    ds.PatientID = "TEST0001"
    ds.AccessionNumber = accession
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(64))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return ds, buffer.getvalue()
