"""A corpus of bad image uploads for `POST /api/cases/{accession}/images` (issue 5, item 4).

Each `BadUpload` is one request and the answer the running API must give: the HTTP status and
the problem type (`application/problem+json`, the slug after `/problems/`), optionally the
problem's `field`. A few entries are odd but acceptable files (a phone trailer after the JPEG's
end, CMYK, 16-bit, two good files): those expect 201 and say how many images they store.

Requests are either built by httpx (`files`, `form`, or a raw `body` with its `content_type`)
or, for what httpx cannot send (a lying Content-Length, a body that stalls or trickles, headers
that never end), written on a raw socket: `wire` with `{PATH}` and `{TOKEN}` filled in, then
`then`: "wait" (send nothing more), "trickle" (a byte every quarter second) or "flood" (chunks
of a chunked body) until the server answers.

Every upload is of the same recognisable patient's case: no problem body may quote the
patient (`PATIENT_MARKERS`) or a server path. The API under test runs with `MAX_MB` and
`MAX_MEGAPIXELS` and the short `LIMITS` below, so limits are reached with small files.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

MAX_MB = 2
MAX_MEGAPIXELS = 4
UPLOAD_CAP = (MAX_MB + 1) * 1024 * 1024  # images.max_mb + HttpLimits.upload_overhead_bytes
PATIENT_MARKERS = ("DUPONT", "Hélène", "Helene", "IPP123456", "19580312")
BOUNDARY = "corpus-boundary-7Hq2"


@dataclass(frozen=True)
class BadUpload:
    name: str
    status: int                                    # expected HTTP status
    code: str = ""                                 # expected problem type slug ("" for 201)
    field: str | None = None                       # expected problem "field", when fixed
    files: tuple[tuple[str, str, bytes, str], ...] = ()  # (part name, filename, data, type)
    form: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None                      # a raw body instead of files/form
    content_type: str | None = None                # with `body`; None sends no Content-Type
    method: str = "POST"
    target: str = "open"                           # open | cancelled | answered | unknown | path
    auth: str = "token"                            # token | none | unknown | basic | empty
    wire: bytes = b""                              # raw socket request (see module docstring)
    then: str = ""                                 # raw socket: wait | trickle | flood
    stores: int = 0                                # images a 201 stores
    absent: bytes = b""                            # must not reach the stored DICOM object
    hint: bool = True                              # the problem must say what to do
    xfail: str = ""                                # a known bug outside the API layer: reason


# --- files ----------------------------------------------------------------------------------

def jpeg(seed: int = 0, mode: str = "RGB", size: tuple[int, int] = (64, 48), **save) -> bytes:
    from PIL import Image, ImageDraw

    colour = {"RGB": (200, 150 - seed % 100, 120), "L": 140, "CMYK": (10, 60, 90, seed % 50)}
    img = Image.new(mode, size, colour[mode])
    if mode != "CMYK":
        ImageDraw.Draw(img).ellipse((20, 12, 44, 36), fill=(80, 50, 30) if mode == "RGB" else 60)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def png(mode: str = "RGB", size: tuple[int, int] = (64, 48), **save) -> bytes:
    from PIL import Image

    fill = {"RGB": (200, 150, 120), "I;16": 40000, "RGBA": (1, 2, 3, 4)}[mode]
    out = io.BytesIO()
    Image.new(mode, size, fill).save(out, "PNG", **save)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + _chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is edited to declare width x height."""
    data = bytearray(jpeg(7))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def pillow_bytes(fmt: str, frames: int = 1, mode: str = "RGB", **save) -> bytes:
    from PIL import Image

    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    def fill(i: int):
        return (40 * i, 120, 90) if mode == "RGB" else 1.5 + i if mode == "F" else i

    images = [Image.new(mode, (64, 48), fill(i)) for i in range(frames)]
    out = io.BytesIO()
    if frames > 1:
        images[0].save(out, fmt, save_all=True, append_images=images[1:], **save)
    else:
        images[0].save(out, fmt, **save)
    return out.getvalue()


def dicom_file() -> bytes:
    return b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00"


def multipart(*parts: tuple[str, str | None, bytes], close: bool = True) -> bytes:
    """A multipart/form-data body with BOUNDARY: (name, filename or None, data) per part."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"'
                                                      if filename is not None else "")
        out += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                + ("Content-Type: image/jpeg\r\n" if filename else "") + "\r\n").encode()
        out += data + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def head(method: str = "POST", *, length: int | None = None, chunked: bool = False,
         content_type: str = MULTIPART, token: bool = True, end: bool = True) -> bytes:
    """Request line and headers for a raw-socket case ({PATH} and {TOKEN} filled in later)."""
    lines = [f"{method} {{PATH}} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    if token:
        lines.append("Authorization: Bearer {TOKEN}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n" + ("\r\n" if end else "")).encode()


def build_cases() -> list[BadUpload]:
    cases: list[BadUpload] = []

    def add(name: str, status: int, code: str = "", **kw) -> None:
        cases.append(BadUpload(f"{len(cases) + 1:03d}_{name}", status, code, **kw))

    def image(name: str, data: bytes, status: int, code: str = "", field: str | None = "image",
              **kw) -> None:
        add(name, status, code, field=None if status == 201 else field,
            files=(("file", "photo.jpg", data, "image/jpeg"),), **kw)

    good = jpeg(1)

    # --- broken or truncated images ------------------------------------------------------
    image("zero_bytes", b"", 422, "bad-image")
    image("jpeg_truncated_half", good[: len(good) // 2], 422, "bad-image")
    image("jpeg_truncated_in_headers", good[:40], 422, "bad-image")
    image("jpeg_soi_only", b"\xff\xd8", 422, "bad-image")
    image("jpeg_soi_then_garbage", b"\xff\xd8" + bytes(range(256)) * 8, 422, "bad-image")
    image("jpeg_without_frame_header", b"\xff\xd8\xff\xd9", 422, "bad-image")
    image("jpeg_zero_height", jpeg_declaring(64, 0), 422, "bad-image")
    image("jpeg_12_bit_baseline_header", good.replace(b"\xff\xc0\x00\x11\x08",
                                                      b"\xff\xc0\x00\x11\x0c", 1), 422, "bad-image")
    image("png_bad_crc", (lambda d: d[:29] + bytes([d[29] ^ 0xFF]) + d[30:])(png()), 422,
          "bad-image")
    image("png_header_only", png()[:33], 422, "bad-image")
    image("png_truncated_in_idat", (lambda d: d[: d.index(b"IDAT") + 10])(png()), 422,
          "bad-image")
    image("png_zero_width", png_declaring(0, 48), 422, "bad-image")
    image("tiff_truncated", (lambda d: d[: len(d) // 2])(pillow_bytes("TIFF")), 422, "bad-image")
    image("tiff_header_then_garbage", b"II*\x00" + b"\xff" * 40, 422, "bad-image")
    image("tiff_float_pixels", pillow_bytes("TIFF", mode="F"), 422, "bad-image")
    image("heic_truncated", (lambda d: d[: len(d) // 2])(pillow_bytes("HEIF")), 422,
          "bad-image")
    image("heic_brand_then_garbage", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
          + b"\x00" * 64, 422, "bad-image")

    # --- not an image, whatever the name says (all sent as photo.jpg, image/jpeg) ---------
    image("html_named_jpg", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body>"
          b"</html>", 415, "unsupported-type")
    image("pdf_named_jpg", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", 415,
          "unsupported-type")
    image("zip_named_jpg", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 60, 415,
          "unsupported-type")
    image("exe_named_jpg", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 60
          + b"This program cannot be run in DOS mode.", 415, "unsupported-type")
    image("svg_named_jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
          b'width="64" height="48"><circle cx="32" cy="24" r="10"/></svg>', 415,
          "unsupported-type")
    image("plain_text", b"this is a note about the lesion, not a photo\n", 415,
          "unsupported-type")
    image("gif_animated", pillow_bytes("GIF", frames=3, mode="P"), 415, "unsupported-type")
    image("bmp", pillow_bytes("BMP"), 415, "unsupported-type")
    image("webp", pillow_bytes("WEBP"), 415, "unsupported-type")
    image("jpeg_2000", pillow_bytes("JPEG2000"), 415, "unsupported-type")
    image("avif_brand", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64,
          415, "unsupported-type")
    image("dicom_file", dicom_file(), 415, "unsupported-type")

    # --- limits: declared pixels, file size ----------------------------------------------
    image("png_decompression_bomb_30000x30000", png_declaring(30000, 30000), 413, "too-large")
    image("jpeg_declares_65535x65535", jpeg_declaring(65535, 65535), 413, "too-large")
    image("png_over_max_megapixels", png_declaring(2500, 2000), 413, "too-large")
    image("file_over_max_mb", good + b"\x00" * (MAX_MB * 1024 * 1024), 413, "too-large")

    # --- odd but acceptable: stored, cleaned ---------------------------------------------
    image("jpeg_garbage_after_eoi", jpeg(2) + b"TRAILING-GARBAGE-" * 64, 201, stores=1,
          absent=b"TRAILING-GARBAGE")
    image("jpeg_cmyk", jpeg(3, mode="CMYK"), 201, stores=1)
    image("jpeg_progressive", jpeg(4, progressive=True), 201, stores=1)
    image("png_16_bit", png("I;16"), 201, stores=1)
    image("png_with_alpha", png("RGBA"), 201, stores=1)
    image("heic_real", pillow_bytes("HEIF"), 201, stores=1)
    add("two_good_files", 201, files=(("file", "a.jpg", jpeg(5), "image/jpeg"),
                                      ("file", "b.jpg", jpeg(6), "image/jpeg")), stores=2)

    # --- several frames where one photo is expected: the rest would be lost silently ------
    image("tiff_three_pages", pillow_bytes("TIFF", frames=3), 422, "bad-image")
    image("png_animated_apng", pillow_bytes("PNG", frames=3), 422, "bad-image")

    # --- the multipart envelope ----------------------------------------------------------
    add("no_file_part", 422, "invalid-request", field="file",
        body=multipart(("kind", None, b"photo")), content_type=MULTIPART)
    add("wrong_part_name_image", 422, "invalid-request", field="file",
        files=(("image", "photo.jpg", good, "image/jpeg"),))
    add("file_part_without_filename", 422, "invalid-request", field="file",
        body=multipart(("file", None, b"hello")), content_type=MULTIPART)
    add("json_body", 422, "invalid-request", field="file",
        body=b'{"file": "/9j/4AAQSkZJRgABAQ=="}', content_type="application/json")
    add("raw_jpeg_body", 422, "invalid-request", field="file", body=good,
        content_type="image/jpeg")
    add("urlencoded_form", 422, "invalid-request", field="file", body=b"file=photo.jpg&kind=photo",
        content_type="application/x-www-form-urlencoded")
    add("no_content_type", 422, "invalid-request", field="file", body=good, content_type=None)
    add("multipart_without_boundary", 400, "invalid-request",
        body=multipart(("file", "photo.jpg", good)), content_type="multipart/form-data")
    add("multipart_empty_body", 400, "truncated-upload", body=b"", content_type=MULTIPART)
    add("multipart_cut_inside_the_file", 400, "truncated-upload",
        body=multipart(("file", "photo.jpg", good), close=False)[:-200], content_type=MULTIPART)
    add("multipart_cut_after_a_whole_file", 400, "truncated-upload",
        body=multipart(("file", "photo.jpg", jpeg(8)), close=False)
        + f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; ".encode(),
        content_type=MULTIPART)
    add("multipart_garbage", 400, "truncated-upload", body=b"garbage, not multipart at all",
        content_type=MULTIPART)
    add("multipart_part_without_headers", 400, "invalid-request",
        body=f"--{BOUNDARY}\r\nno header line here\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
        content_type=MULTIPART)
    add("form_field_over_1_mib", 400, "invalid-request",
        body=multipart(("description", None, b"x" * (1024 * 1024 + 10)),
                       ("file", "photo.jpg", good)), content_type=MULTIPART)
    add("second_file_bad_stores_neither", 415, "unsupported-type", field="file.1",
        files=(("file", "a.jpg", jpeg(9), "image/jpeg"),
               ("file", "b.jpg", b"%PDF-1.4 not a photo", "image/jpeg")))
    add("second_file_over_max_mb_stores_neither", 413, "too-large", field="file.1",
        files=(("file", "a.jpg", jpeg(10), "image/jpeg"),
               ("file", "b.jpg", b"\xff\xd8" + b"\x00" * (MAX_MB * 1024 * 1024), "image/jpeg")))

    # --- the case and the form fields ----------------------------------------------------
    image("unknown_accession", good, 404, "not-found", field="accession", target="unknown")
    image("accession_path_traversal", good, 404, "not-found", field=None, target="path")
    image("cancelled_case", jpeg(11), 409, "state-conflict", field="case.status",
          target="cancelled")
    image("answered_case", jpeg(12), 409, "state-conflict", field="case.status",
          target="answered")
    image("kind_unknown", good, 422, "bad-image", field="kind", form=(("kind", "xray"),))
    image("kind_wrong_case", good, 422, "bad-image", field="kind", form=(("kind", "Photo"),))
    image("site_unknown_code", good, 422, "bad-image", field="site", form=(("site", "99999"),))
    image("site_path_like", good, 422, "bad-image", field="site",
          form=(("site", "../../etc/passwd"),))
    image("laterality_unknown", good, 422, "bad-image", field="laterality",
          form=(("laterality", "X"),), hint=False)
    image("device_on_a_photo", good, 422, "bad-image", field="device",
          form=(("device", "dermlite-dl5"),))
    image("dermoscopy_unknown_device", good, 422, "bad-image", field="device",
          form=(("kind", "dermoscopy"), ("device", "no-such-scope")))
    image("tracking_id_too_long", good, 422, "invalid-value", field="tracking_id",
          form=(("kind", "dermoscopy"), ("tracking_id", "L" * 65)), hint=False)
    image("description_too_long", good, 422, "invalid-value", field="description",
          form=(("description", "d" * 65),), hint=False)
    image("description_with_control_characters", jpeg(13), 422, "invalid-value",
          field="description", form=(("description", "left\\arm\x00\x1b[2J"),), hint=False)

    # --- who is asking -------------------------------------------------------------------
    image("no_token", good, 401, "unauthorized", field=None, auth="none")
    image("unknown_token", good, 401, "unauthorized", field=None, auth="unknown")
    image("basic_auth_instead_of_bearer", good, 401, "unauthorized", field=None, auth="basic")
    image("empty_bearer", good, 401, "unauthorized", field=None, auth="empty")
    # The body's framing is checked as it arrives, before the route looks at the token.
    add("no_token_and_a_cut_body", 400, "truncated-upload", auth="none",
        body=multipart(("file", "photo.jpg", good), close=False), content_type=MULTIPART)
    image("put_instead_of_post", good, 405, "method-not-allowed", field=None, method="PUT")

    # --- raw sockets: lying lengths, slow clients ----------------------------------------
    add("content_length_10_gb", 413, "too-large",
        wire=head(length=10 * 1024 ** 3) + multipart(("file", "photo.jpg", good), close=False),
        then="wait")
    add("content_length_one_over_the_cap", 413, "too-large",
        wire=head(length=UPLOAD_CAP + 1) + b"--" + BOUNDARY.encode(), then="wait")
    add("content_length_over_cap_without_token", 413, "too-large",
        wire=head(length=UPLOAD_CAP * 4, token=False), then="wait")
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"p.jpg\"\r\n\r\n").encode() + good
    add("chunked_body_past_the_cap", 413, "too-large",
        wire=head(chunked=True) + b"%x\r\n%s\r\n" % (len(part), part), then="flood")
    add("body_stops_after_headers", 408, "request-timeout", wire=head(length=100_000),
        then="wait")
    add("body_stops_inside_the_file", 408, "request-timeout",
        wire=head(length=100_000) + multipart(("file", "photo.jpg", good), close=False)[:300],
        then="wait")
    add("body_trickles_a_byte_at_a_time", 408, "request-timeout",
        wire=head(length=1_000_000) + f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
        "name=\"file\"; filename=\"p.jpg\"\r\n\r\n".encode(), then="trickle")
    add("headers_never_end", 408, "request-timeout", wire=head(end=False), then="wait")
    add("request_line_only", 408, "request-timeout", wire=b"POST {PATH} HTTP/1.1\r\n",
        then="wait")
    return cases


CASES = build_cases()
