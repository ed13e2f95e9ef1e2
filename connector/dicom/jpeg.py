"""Read and clean JPEG streams by walking their markers, without decoding a pixel.

Why: a baseline camera JPEG goes into DICOM byte for byte (transfer syntax JPEG Baseline), so we
must know its frame header (size, components, coding process) without re-encoding, and we must
cut the APPn/COM segments first, because anything left there (EXIF GPS, serial numbers, maker
notes, thumbnails, XMP) would travel inside Pixel Data where DICOM de-identification cannot see
it (reference/dicom.md 3.5). A marker walk is enough for both and never alters entropy-coded data.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from connector.domain.errors import ImageError

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
APP0, APP2, APP14, COM = 0xE0, 0xE2, 0xEE, 0xFE
# SOFn markers carry the frame header; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_STANDALONE = frozenset({SOI, EOI, 0x01, *range(0xD0, 0xD8)})  # no length field
_ECS = -1  # pseudo-marker for a run of entropy-coded data after SOS
# The end of an entropy-coded run: 0xFF followed by anything but stuffing (0x00), a restart
# marker (0xD0-0xD7) or another 0xFF (fill bytes stay in the run, as the encoder wrote them).
_RUN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

_KEEP_APPS = {APP0: b"JFIF\x00", APP2: b"ICC_PROFILE\x00", APP14: b"Adobe"}
_ICC_SIGNATURE = b"ICC_PROFILE\x00"
_JFIF_HEADER = 14  # "JFIF\0", version, units, densities, thumbnail width and height

_HINT_NOT_JPEG = "send the original JPEG file from the camera or phone"
_HINT_TRUNCATED = "the file was cut short; send it again"


@dataclass(frozen=True)
class JpegInfo:
    """What the frame header and the kept metadata segments say about a JPEG stream."""

    rows: int
    columns: int
    components: int
    precision: int
    sof_marker: int  # 0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...
    baseline: bool  # SOF0, 8-bit, Huffman: what transfer syntax 1.2.840.10008.1.2.4.50 allows
    component_ids: tuple[int, ...]
    adobe_transform: int | None  # APP14 'Adobe' transform: 0 none (RGB/CMYK), 1 YCbCr, 2 YCCK
    exif_orientation: int | None  # EXIF IFD0 0x0112, 1..8
    make: str | None  # EXIF IFD0 0x010F
    model: str | None  # EXIF IFD0 0x0110
    icc_profile: bytes | None = None  # APP2 ICC_PROFILE chunks joined in sequence order

    @property
    def lossless(self) -> bool:
        """SOF3/7/11/15: the lossless process (what the camera wrote is what it saw)."""
        return self.sof_marker in LOSSLESS_SOF


@dataclass(frozen=True)
class _Piece:
    marker: int  # a marker byte, or _ECS for entropy-coded data
    start: int  # offset of the 0xFF of the marker (or first byte of entropy-coded data)
    end: int  # offset just past the piece

    def payload(self, data: bytes) -> bytes:
        """The segment body after the marker and its 2-byte length."""
        return data[self.start + 4 : self.end]


def inspect(data: bytes) -> JpegInfo:
    """Describe a JPEG stream from its markers; raise ImageError if it is not a whole JPEG."""
    return _describe(data, _walk(data))


def read(data: bytes) -> tuple[JpegInfo, bytes]:
    """`inspect` and `strip_private_segments` from one walk over the stream: the bytes are
    scanned once however large the photo."""
    pieces = _walk(data)
    return _describe(data, pieces), _strip(data, pieces)


def _describe(data: bytes, pieces: list[_Piece]) -> JpegInfo:
    sof = next((p for p in pieces if p.marker in SOF_MARKERS), None)
    if sof is None:
        raise ImageError("the JPEG stream has no frame header (SOF marker)", where="image",
                         hint=_HINT_NOT_JPEG)
    body = sof.payload(data)
    if len(body) < 6:
        raise ImageError("the JPEG frame header is too short", where="image", hint=_HINT_NOT_JPEG)
    precision, rows, columns, ncomp = struct.unpack(">BHHB", body[:6])
    if len(body) < 6 + 3 * ncomp:
        raise ImageError("the JPEG frame header is too short", where="image", hint=_HINT_NOT_JPEG)
    ids = tuple(body[6 + 3 * i] for i in range(ncomp))

    adobe = None
    orientation = make = model = None
    icc_chunks: list[bytes] = []
    for p in pieces:
        if p.marker == APP2 and p.payload(data).startswith(_ICC_SIGNATURE):
            icc_chunks.append(p.payload(data)[len(_ICC_SIGNATURE) :])
        elif p.marker == APP14 and adobe is None:
            seg = p.payload(data)
            if seg.startswith(b"Adobe") and len(seg) >= 12:
                adobe = seg[11]
        elif p.marker == 0xE1 and orientation is None and make is None:
            seg = p.payload(data)
            if seg.startswith(b"Exif\x00\x00"):
                orientation, make, model = _exif_ifd0(seg[6:])

    return JpegInfo(
        rows=rows,
        columns=columns,
        components=ncomp,
        precision=precision,
        sof_marker=sof.marker,
        baseline=sof.marker == 0xC0 and precision == 8,
        component_ids=ids,
        adobe_transform=adobe,
        exif_orientation=orientation,
        make=make,
        model=model,
        icc_profile=_join_icc(icc_chunks),
    )


def strip_private_segments(data: bytes) -> bytes:
    """Drop every APPn and COM segment except APP0 JFIF, APP2 ICC_PROFILE and APP14 Adobe.

    Those three tell a decoder how to read colours; everything else is metadata we must not
    carry. A thumbnail inside the JFIF segment is cut too (its header is kept, with a 0x0
    thumbnail). Entropy-coded data and all coding tables are copied unchanged, so the pixels
    decode identically. Bytes after EOI (phone trailers, MPF secondary images) are dropped too.
    """
    return _strip(data, _walk(data))


def _strip(data: bytes, pieces: list[_Piece]) -> bytes:
    """The kept pieces joined in one copy (slices of a memoryview copy nothing)."""
    view = memoryview(data)
    out: list = []
    for p in pieces:
        if _is_metadata(p.marker) and not _kept_app(data, p):
            continue
        if p.marker == APP0 and p.end - p.start > 4 + _JFIF_HEADER:
            header = p.payload(data)[: _JFIF_HEADER - 2]
            out.append(b"\xff\xe0" + struct.pack(">H", 2 + _JFIF_HEADER) + header + b"\x00\x00")
            continue
        out.append(view[p.start : p.end])
    return b"".join(out)


def _join_icc(chunks: list[bytes]) -> bytes | None:
    """Join APP2 ICC chunks (sequence number, count, data) in order; None when inconsistent."""
    if not chunks or any(len(c) < 2 for c in chunks):
        return None
    count = chunks[0][1]
    ordered = sorted(chunks, key=lambda c: c[0])
    if count != len(chunks) or [c[0] for c in ordered] != list(range(1, count + 1)):
        return None
    return b"".join(c[2:] for c in ordered)


def _is_metadata(marker: int) -> bool:
    return 0xE0 <= marker <= 0xEF or marker == COM


def _kept_app(data: bytes, p: _Piece) -> bool:
    signature = _KEEP_APPS.get(p.marker)
    return signature is not None and p.payload(data).startswith(signature)


def _walk(data: bytes) -> list[_Piece]:
    """Split a JPEG stream into marker segments and entropy-coded runs, up to and including EOI.

    Raises ImageError for empty input, a missing SOI, a segment running past the end, or a
    stream that ends without EOI.
    """
    if not data:
        raise ImageError("the image file is empty (zero bytes)", where="image",
                         hint=_HINT_NOT_JPEG)
    if data[:2] != b"\xff\xd8":
        raise ImageError("the file is not a JPEG image (no start-of-image marker)",
                         where="image", hint=_HINT_NOT_JPEG)
    pieces = [_Piece(SOI, 0, 2)]
    n = len(data)
    i = 2
    while True:
        if i >= n:
            raise _truncated()
        if data[i] != 0xFF:
            raise ImageError(f"the JPEG stream is corrupt: no marker at byte {i}", where="image",
                             hint=_HINT_NOT_JPEG)
        start = i
        while i < n and data[i] == 0xFF:  # fill bytes may precede any marker; they are dropped
            i += 1
        if i >= n:
            raise _truncated()
        marker = data[i]
        i += 1
        if marker == 0x00:
            raise ImageError(f"the JPEG stream is corrupt: stray byte at {start}", where="image",
                             hint=_HINT_NOT_JPEG)
        if marker in _STANDALONE:
            pieces.append(_Piece(marker, i - 2, i))
            if marker == EOI:
                return pieces
            continue
        if i + 2 > n:
            raise _truncated()
        (length,) = struct.unpack(">H", data[i : i + 2])
        if length < 2:
            raise ImageError(f"the JPEG stream is corrupt: bad segment length at byte {start}",
                             where="image", hint=_HINT_NOT_JPEG)
        if i + length > n:
            raise _truncated()
        i += length
        pieces.append(_Piece(marker, i - length - 2, i))
        if marker == SOS:
            end = _scan_entropy(data, i)
            pieces.append(_Piece(_ECS, i, end))
            i = end


def _scan_entropy(data: bytes, i: int) -> int:
    """Return the offset of the first marker after entropy-coded data starting at `i`.

    Inside entropy-coded data 0xFF is followed by 0x00 (stuffing) or a restart marker
    0xD0-0xD7; fill bytes 0xFF 0xFF stay in the run, as the encoder wrote them. One regular
    expression search finds the end: the scan runs in C, not byte by byte in Python.
    """
    found = _RUN_END.search(data, i)
    if found is None:
        raise _truncated()
    return found.start()


def _truncated() -> ImageError:
    return ImageError("the JPEG stream is truncated (it ends before its end-of-image marker)",
                      where="image", hint=_HINT_TRUNCATED)


def _exif_ifd0(tiff: bytes) -> tuple[int | None, str | None, str | None]:
    """Read Orientation, Make and Model from EXIF IFD0; malformed EXIF yields Nones.

    Tolerant on purpose: EXIF is advisory here and is stripped before wrapping, so a broken
    block must not make an otherwise good photo unusable.
    """
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (offset,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
        orientation = make = model = None
        for k in range(count):
            entry = tiff[offset + 2 + 12 * k : offset + 14 + 12 * k]
            if len(entry) < 12:
                break
            tag, typ, num = struct.unpack(order + "HHI", entry[:8])
            if tag == 0x0112 and typ == 3:
                (orientation,) = struct.unpack(order + "H", entry[8:10])
            elif tag in (0x010F, 0x0110) and typ == 2:
                if num <= 4:
                    raw = entry[8 : 8 + num]
                else:
                    (at,) = struct.unpack(order + "I", entry[8:12])
                    raw = tiff[at : at + num]
                text = raw.split(b"\x00", 1)[0].decode("latin-1").strip() or None
                if tag == 0x010F:
                    make = text
                else:
                    model = text
        return orientation, make, model
    except (KeyError, struct.error):
        return None, None, None


def photometric_interpretation(info: JpegInfo) -> str:
    """MONOCHROME2 for one component; RGB for an untransformed RGB stream; else YBR_FULL_422.

    YBR_FULL_422 is what CP-1654 prescribes for YCbCr JPEG whatever the real subsampling.
    An Adobe APP14 transform flag decides when present; otherwise component ids 'R','G','B'
    mark an RGB stream, as libjpeg reads it.
    """
    if info.components == 1:
        return "MONOCHROME2"
    if info.adobe_transform is not None:
        rgb = info.adobe_transform == 0
    else:
        rgb = info.component_ids == (ord("R"), ord("G"), ord("B"))
    return "RGB" if rgb else "YBR_FULL_422"
