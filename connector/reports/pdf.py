"""The dermatologist's answer as a PDF, before `reports.signing` signs it PAdES.

French rules for tele-expertise ask for a non-modifiable document (PDF) that identifies the
doctor. The signature (`reports.signing`, with the facility's key) is what makes any change
detectable; this module renders the document it covers. The PDF is not encrypted: permission
bits protect nothing, RC4 encryption blocks PDF/A, and a signed document needs neither; the
file is PDF/A-3b (`reports.pdfa`: XMP identification, sRGB output intent). The
integrity line prints `report_digest()`, a SHA-256 over the canonical report content, so anyone
holding the recorded report can also compare the content itself.

Text comes from `mappings/reports/labels.toml` (per site, per language); the font is a TrueType
font so that accents and names from other European languages render: DejaVu Sans from Debian's
`fonts-dejavu-core` when installed (wider coverage: Polish, Czech...), else Bitstream Vera,
which reportlab ships (Latin-1 plus French ligatures). For given inputs on one machine the
output is identical byte for byte (reportlab's invariant mode, with the creation date given).

Size: the PDF travels base64 in one HL7 field (ORU OBX-5 ED), whose v2.5 limit is 65,536
characters. reportlab embeds a subset of each font (the glyphs a document uses), but copies
the font's `name` table (DejaVu's holds its whole licence, 15 KB) and hinting programs whole
into every subset. So the fonts are first trimmed with fontTools (`_lean_font`): the scripts a
European name or report needs (Latin, Greek, Cyrillic, punctuation, currency), no hinting (a
PDF viewer rasterises at any size), no layout tables (reportlab does no shaping), names
reduced to family, style, full and PostScript name. A two-line report is then about 20 KB.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Annotated, Sequence
from xml.sax.saxutils import escape

import reportlab
from pydantic import AfterValidator, StrictStr, create_model
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from connector.domain.errors import DomainError
from connector.domain.model import Order, PersonName, Report, ResultStatusValues
from connector.mapfile import read_toml
from connector.validation import SiteModel, load


LANGS = ("fr", "en")
LABEL_KEYS = (
    "title", "corrected", "patient", "born", "patient_id", "requester", "request", "accession",
    "images", "question", "answer", "conduct", "specialist", "signed_on", "integrity", "footer",
    "generated", "page", "date_format", "datetime_format", "signed_note", "sex", "ins",
    "requested_on", "priority", "triage", "questionnaire", "facility",
)

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_VERA = Path(reportlab.__file__).parent / "fonts"
_FONT, _BOLD = "TeleDermSans", "TeleDermSans-Bold"
_DT = re.compile(r"^(\d{12})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")
# Code point ranges kept in the embedded fonts: Basic Latin to Latin Extended-B, Greek,
# Cyrillic, Latin Extended Additional, general punctuation, currency symbols, letterlike symbols.
_SCRIPTS = ((0x20, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x1E00, 0x1EFF), (0x2000, 0x206F),
            (0x20A0, 0x20CF), (0x2100, 0x214F))


def _some_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value  # as written: a label's spaces are the site's


_Label = Annotated[StrictStr, AfterValidator(_some_text)]
# One language's labels: every key of LABEL_KEYS, nothing else.
_Labels = create_model("_Labels", __base__=SiteModel, **{k: (_Label, ...) for k in LABEL_KEYS})
_File = create_model("_File", __base__=SiteModel, **{lang: (_Labels, ...) for lang in LANGS})


def load_labels(path: str | Path) -> dict[str, dict[str, str]]:
    """Read the label file; a ConfigError names every language or label missing, empty or
    unknown."""
    path = Path(path)
    data = load(_File, read_toml(path, "report labels"), str(path),
                hint=f"every language ({', '.join(LANGS)}) needs every label: "
                     f"{', '.join(LABEL_KEYS)}")
    return {lang: dict(getattr(data, lang)) for lang in LANGS}


def report_digest(*, report: Report, accession: str) -> str:
    """SHA-256 (hex) of the canonical report content.

    Canonical form, version 1: the UTF-8 JSON object {"accession", "conduct" (the code),
    "signed_at", "specialist_id", "text" (exactly as recorded), "v": 1}, keys sorted, no
    whitespace between tokens. Anyone with the recorded report recomputes it the same way.
    """
    content = {
        "v": 1,
        "accession": accession,
        "conduct": report.conduct,
        "signed_at": report.signed_at,
        "specialist_id": report.specialist.id,
        "text": report.text,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def render_report_pdf(*, order: Order, accession: str, report: Report, conduct_label: str,
                      labels: dict, lang: str = "fr", images: int = 0,
                      created: dt.datetime, facility: str = "", signed: bool = False,
                      thumbnails: Sequence[bytes] = ()) -> bytes:
    """The report as A4 PDF bytes; `created` (timezone-aware) is its creation date and the
    edition time its footer prints; `facility` the issuing facility; `signed` adds the note
    that the file is signed (only true when `reports.signing` signs it next); `thumbnails`
    (small JPEGs, `dicom.images.preview_jpeg`) show the images the answer was given on."""
    if lang not in labels:
        raise DomainError(f"no report labels for language {lang!r}", where="lang",
                          hint=f"use one of: {', '.join(sorted(labels))}")
    if not accession.strip():
        raise DomainError("accession is empty", where="accession")
    if images < 0:
        raise DomainError("image count is negative", where="images")
    if created.utcoffset() is None:
        raise DomainError("the creation date has no time zone", where="created")
    lab = labels[lang]
    s = _styles()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=20 * mm,
        bottomMargin=20 * mm, title=f"{lab['title']} {accession}",
        author=_name(report.specialist.name), creator="TeleDerm Connector", lang=lang,
        invariant=1,
    )
    patient = order.patient
    patient_id = f"{patient.id} ({patient.issuer})" if patient.issuer else patient.id
    # the INS only when the identity is qualified: otherwise it must not be used (RNIV)
    ins = [(lab["ins"], patient.ins)] if patient.ins and patient.ins_usable else []
    triage = order.triage.level + (f" ({order.triage.score})" if order.triage.level else "")
    story = [Paragraph(_text(lab["title"]), s["title"])]
    if report.status == ResultStatusValues.CORRECTED:
        story.append(Paragraph(_text(lab["corrected"]), s["strong"]))
    story += [
        Spacer(1, 4 * mm),
        _fields(s, [
            (lab["patient"], _name(patient.name)),
            (lab["born"], _date(patient.birth_date, lab["date_format"])),
            (lab["sex"], patient.sex or "—"),
            (lab["patient_id"], patient_id),
            *ins,
            (lab["requester"], f"{_name(order.requester.name)} ({order.requester.id})"),
            (lab["request"], order.placer_order_number),
            (lab["requested_on"], _when(order.ordered_at, lab["datetime_format"]) or "—"),
            (lab["priority"], order.priority.value),
            *([(lab["triage"], triage)] if order.triage.level else []),
            (lab["accession"], accession),
            (lab["images"], str(images)),
            *([(lab["facility"], facility)] if facility else []),
        ]),
        *_thumbnail_row(thumbnails),
        Paragraph(_text(lab["question"]), s["heading"]),
        *_paragraphs(order.question, s["body"]),
        *_questionnaire(order, lab, lang, s),
        Paragraph(_text(lab["answer"]), s["heading"]),
        *_paragraphs(report.text, s["body"]),
        Paragraph(_text(lab["conduct"]), s["heading"]),
        Paragraph(_text(conduct_label), s["conduct"]),
        Spacer(1, 4 * mm),
        _fields(s, [
            (lab["specialist"], f"{_name(report.specialist.name)} ({report.specialist.id})"),
            (lab["signed_on"], _when(report.signed_at, lab["datetime_format"])),
        ]),
        _fields(s, [(lab["integrity"], report_digest(report=report, accession=accession))],
                value_style="digest"),
        Spacer(1, 3 * mm),
        Paragraph(_text(lab["footer"]), s["small"]),
        *([Paragraph(_text(lab["signed_note"]), s["small"])] if signed else []),
    ]
    footer = (f"{accession} · {lab['generated']} {created.strftime(lab['datetime_format'])} · "
              f"{lab['page']}")
    stamp = _pdf_date(created)

    def on_page(canvas, doc_):
        # invariant mode would date the document 2000-01-01: it carries `created` instead
        canvas._doc.setDateFormatter(lambda *_: stamp)
        canvas.saveState()
        canvas.setFont(_FONT, 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(doc_.leftMargin, 10 * mm, f"{footer} {doc_.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    from .pdfa import to_pdfa3  # pyhanko: loaded by the process that renders, not every command

    return to_pdfa3(buf.getvalue())


THUMB_BOX = 28 * mm  # each thumbnail fits this square: six fit across the A4 frame


def _thumbnail_row(thumbnails: Sequence[bytes]) -> list:
    """The images as one row of small pictures, each scaled into THUMB_BOX."""
    if not thumbnails:
        return []
    cells = [Image(io.BytesIO(data), width=THUMB_BOX, height=THUMB_BOX, kind="proportional")
             for data in thumbnails]
    row = Table([cells], colWidths=[THUMB_BOX + 2 * mm] * len(cells), hAlign="LEFT")
    row.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 0),
                             ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    return [Spacer(1, 2 * mm), row]


def _questionnaire(order: Order, lab: dict, lang: str, s: dict) -> list:
    """The structured request's answers, in the wording they were answered with."""
    if not order.questionnaire:
        return []
    column = 0 if lang == "fr" else 1
    rows = []
    for answer in order.questionnaire:
        shown = {v: labels[column] for v, *labels in answer.value_labels}
        rows.append((answer.label[column] or answer.item,
                     ", ".join(shown.get(v) or v for v in answer.values)))
    return [Paragraph(_text(lab["questionnaire"]), s["heading"]), _fields(s, rows)]


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    _register_fonts()
    body = ParagraphStyle("body", fontName=_FONT, fontSize=10, leading=13.5, spaceAfter=4)
    return {
        "body": body,
        "title": ParagraphStyle("title", body, fontName=_BOLD, fontSize=16, leading=20),
        "heading": ParagraphStyle("heading", body, fontName=_BOLD, fontSize=11, spaceBefore=8,
                                  keepWithNext=1),
        "strong": ParagraphStyle("strong", body, fontName=_BOLD),
        "label": ParagraphStyle("label", body, fontName=_BOLD, spaceAfter=0),
        "value": ParagraphStyle("value", body, spaceAfter=0),
        # 64 hex digits must stay on one line, so pdftotext and a reader see one string
        "digest": ParagraphStyle("digest", body, fontSize=8, spaceAfter=0),
        "conduct": ParagraphStyle("conduct", body, fontName=_BOLD, backColor=colors.whitesmoke,
                                  borderColor=colors.grey, borderWidth=0.5, borderPadding=4),
        "small": ParagraphStyle("small", body, fontSize=8, leading=10, textColor=colors.grey),
    }


def _register_fonts() -> None:
    """DejaVu when Debian's fonts-dejavu-core is installed, else the Vera that reportlab ships."""
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if not (regular.is_file() and bold.is_file()):
        regular, bold = _VERA / "Vera.ttf", _VERA / "VeraBd.ttf"
    pdfmetrics.registerFont(TTFont(_FONT, _lean_font(regular)))
    pdfmetrics.registerFont(TTFont(_BOLD, _lean_font(bold)))


def _lean_font(path: Path) -> io.BytesIO:
    """The TrueType font at `path` without what reportlab would copy into every document for
    nothing (see the module docstring), as a file reportlab reads."""
    from fontTools import subset as font_subset  # only once per process, when fonts are set
    from fontTools.ttLib import TTFont as FontFile

    font = FontFile(str(path))
    options = font_subset.Options()
    options.hinting = False
    options.layout_features = []
    options.name_IDs = [1, 2, 4, 6]  # family, style, full name, PostScript name
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "hdmx", "VDMX", "LTSH", "gasp", "FFTM"]
    wanted = {c for low, high in _SCRIPTS for c in range(low, high + 1)}
    subsetter = font_subset.Subsetter(options)
    subsetter.populate(unicodes=wanted & set(font.getBestCmap()))
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    out.seek(0)
    return out


def _fields(s: dict, rows: list[tuple[str, str]], value_style: str = "value") -> Table:
    """Label | value rows; the value column takes the frame's remaining width."""
    table = Table([[Paragraph(_text(k), s["label"]), Paragraph(_text(v), s[value_style])]
                   for k, v in rows], colWidths=[48 * mm, "*"])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def _paragraphs(text: str, style: ParagraphStyle) -> list[Paragraph]:
    """Blank lines separate paragraphs; single line breaks are kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return [Paragraph(_text(block.strip()), style) for block in re.split(r"\n\s*\n", text)]


def _text(text: str) -> str:
    """Plain text to reportlab paragraph markup: escape it, keep line breaks."""
    return escape(text).replace("\n", "<br/>")


def _name(name: PersonName) -> str:
    return f"{name.family} {name.given}".strip()


def _date(text: str, fmt: str) -> str:
    """YYYYMMDD in the label file's format; anything else is shown as received."""
    try:
        return dt.datetime.strptime(text, "%Y%m%d").strftime(fmt)
    except ValueError:
        return text


def _pdf_date(when: dt.datetime) -> str:
    """A PDF date string (ISO 32000 7.9.4): D:YYYYMMDDHHmmSS+HH'mm'."""
    offset = int(when.utcoffset().total_seconds()) // 60
    sign, offset = ("+" if offset >= 0 else "-"), abs(offset)
    return f"D:{when:%Y%m%d%H%M%S}{sign}{offset // 60:02d}'{offset % 60:02d}'"


def _when(text: str, fmt: str) -> str:
    """HL7/DICOM DT (to the minute at least) in the label file's format, offset kept."""
    m = _DT.match(text)
    if not m:
        return text
    try:
        shown = dt.datetime.strptime(m.group(1), "%Y%m%d%H%M").strftime(fmt)
    except ValueError:
        return text
    return f"{shown} ({m.group(3)})" if m.group(3) else shown
