"""The report PDF made PDF/A-3b (ISO 19005-3, level B) before it is signed: an XMP packet that
says so (`pdfaid:part` 3, `pdfaid:conformance` B) and repeats the document information, and an
output intent with an sRGB ICC profile, the colour space the page and its thumbnails are drawn
in. Fonts are already embedded (`reports.pdf`) and nothing is encrypted.

It is one incremental update appended to reportlab's file (new objects, the catalog and the
information dictionary again, an xref section, a trailer keeping the file identifier), written here byte for byte so the same
input gives the same output. The sRGB profile is the one littlecms builds (through Pillow): no
profile file to install. `reports.signing` keeps this XMP when it signs."""

from __future__ import annotations

import functools
import io
import re
from xml.sax.saxutils import escape

from PIL import ImageCms
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

_PDF_DATE = re.compile(r"^D:(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([+-])(\d\d)'(\d\d)'$")


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB IEC 61966-2.1 ICC profile (littlecms's, built by Pillow)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def to_pdfa3(pdf: bytes) -> bytes:
    """`pdf` (a reportlab file with a document information dictionary) with the XMP metadata
    and the sRGB output intent of PDF/A-3b appended as an incremental update."""
    reader = PdfFileReader(io.BytesIO(pdf))
    trailer = reader.trailer_view
    info = trailer["/Info"].get_object()
    root_ref = trailer.raw_get("/Root")
    size = int(trailer["/Size"])
    previous = int(pdf[pdf.rindex(b"startxref") + 9:].split()[0])
    icc = generic.StreamObject({generic.pdf_name("/N"): generic.NumberObject(3)},
                               stream_data=srgb_profile())
    intent = generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/OutputIntent"),
        generic.pdf_name("/S"): generic.pdf_name("/GTS_PDFA1"),
        generic.pdf_name("/OutputConditionIdentifier"): generic.pdf_string("sRGB IEC61966-2.1"),
        generic.pdf_name("/Info"): generic.pdf_string("sRGB IEC61966-2.1"),
        generic.pdf_name("/DestOutputProfile"): generic.IndirectObject(size, 0, reader)})
    metadata = generic.StreamObject({generic.pdf_name("/Type"): generic.pdf_name("/Metadata"),
                                     generic.pdf_name("/Subtype"): generic.pdf_name("/XML")},
                                    stream_data=_xmp(info))
    # The information dictionary loses reportlab's /Producer: the signer writes its own in
    # both places, which PDF/A wants to agree (else it would append to reportlab's).
    info_ref = trailer.raw_get("/Info")
    plain_info = generic.DictionaryObject({k: v for k, v in info.items() if k != "/Producer"})
    catalog = generic.DictionaryObject(reader.root)
    catalog[generic.pdf_name("/OutputIntents")] = generic.ArrayObject(
        [generic.IndirectObject(size + 1, 0, reader)])
    catalog[generic.pdf_name("/Metadata")] = generic.IndirectObject(size + 2, 0, reader)
    out = io.BytesIO()
    out.write(pdf if pdf.endswith(b"\n") else pdf + b"\n")
    offsets = {}
    for number, obj in ((size, icc), (size + 1, intent), (size + 2, metadata),
                        (root_ref.idnum, catalog), (info_ref.idnum, plain_info)):
        offsets[number] = out.tell()
        out.write(f"{number} 0 obj\n".encode())
        obj.write_to_stream(out)
        out.write(b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n")
    for number in sorted((root_ref.idnum, info_ref.idnum)):
        out.write(f"{number} 1\n{offsets[number]:010d} 00000 n \n".encode())
    out.write(f"{size} 3\n".encode())
    for number in (size, size + 1, size + 2):
        out.write(f"{offsets[number]:010d} 00000 n \n".encode())
    new_trailer = generic.DictionaryObject({
        generic.pdf_name("/Size"): generic.NumberObject(size + 3),
        generic.pdf_name("/Root"): root_ref,
        generic.pdf_name("/Info"): info_ref,
        generic.pdf_name("/ID"): trailer.raw_get("/ID"),
        generic.pdf_name("/Prev"): generic.NumberObject(previous)})
    out.write(b"trailer\n")
    new_trailer.write_to_stream(out)
    out.write(f"\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _xmp(info) -> bytes:
    """The XMP packet: PDF/A-3b identification and the information dictionary's entries in
    their XMP equivalents (PDF/A wants both to say the same)."""
    def text(key: str) -> str:
        return escape(str(info.get(key, "")))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:pdf="http://ns.adobe.com/pdf/1.3/">'
        '<pdfaid:part>3</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>'
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{text("/Title")}</rdf:li></rdf:Alt>'
        f'</dc:title><dc:creator><rdf:Seq><rdf:li>{text("/Author")}</rdf:li></rdf:Seq>'
        '</dc:creator><dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f'{text("/Subject")}</rdf:li></rdf:Alt></dc:description>'
        f'<pdf:Producer>{text("/Producer")}</pdf:Producer>'
        f'<pdf:Keywords>{text("/Keywords")}</pdf:Keywords>'
        f'<xmp:CreatorTool>{text("/Creator")}</xmp:CreatorTool>'
        f'<xmp:CreateDate>{_iso(str(info["/CreationDate"]))}</xmp:CreateDate>'
        f'<xmp:ModifyDate>{_iso(str(info["/ModDate"]))}</xmp:ModifyDate>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="r"?>').encode("utf-8")


def _iso(pdf_date: str) -> str:
    """D:YYYYMMDDHHmmSS+HH'mm' as XMP wants it (ISO 8601)."""
    m = _PDF_DATE.match(pdf_date)
    if not m:
        raise ValueError(f"not a full PDF date: {pdf_date!r}")
    y, mo, d, h, mi, s, sign, oh, om = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}{sign}{oh}:{om}"
