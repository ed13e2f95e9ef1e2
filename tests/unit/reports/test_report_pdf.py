import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from connector.domain.errors import DomainError
from connector.domain.model import Answer, Order, Patient, PersonName, Practitioner, Report
from connector.reports.pdf import load_labels, render_report_pdf, report_digest

CREATED = dt.datetime(2025, 3, 14, 15, 31, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
LABELS = load_labels(Path(__file__).parents[3] / "mappings" / "reports" / "labels.toml")
ANSWER = ("Lésion pigmentée d'aspect bénin : réseau régulier, pas de critère de mélanome.\n\n"
          "À revoir dans un an ; photographier à nouveau si la lésion évolue (forme, couleur, "
          "taille > 6 mm). Pas d'exérèse nécessaire à ce stade. Œdème péri-lésionnel absent.")


def _poppler(pdf: bytes, tmp_path: Path, tool: str, *after: str) -> str:
    """Run a poppler-utils tool on the PDF; `after` goes after the file name."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not found: install Debian's poppler-utils")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, str(path), *after], check=True, capture_output=True,
                          text=True).stdout


def _text(pdf: bytes, tmp_path: Path) -> str:
    """pdftotext output with whitespace collapsed, so wrapped lines compare as one string."""
    return " ".join(_poppler(pdf, tmp_path, "pdftotext", "-").split())


def _info(pdf: bytes, tmp_path: Path) -> dict[str, str]:
    lines = _poppler(pdf, tmp_path, "pdfinfo").splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.fixture
def order():
    return Order(
        sender="DPI^CHU-NANTES",
        placer_order_number="DEM-2025-0042",
        patient=Patient("1234567890123", PersonName("DUPRÉ", "Hélène"),
                        issuer="1.2.250.1.213.1.4.8", birth_date="19560312", sex="F"),
        requester=Practitioner("810001234567", PersonName("MARTIN", "Élise")),
        question="Lésion du dos qui change depuis 3 mois : faut-il l'enlever ?",
    )


@pytest.fixture
def report():
    return Report(ANSWER, "routine_visit",
                  Practitioner("810009876543", PersonName("LEFÈVRE", "François")),
                  "20250314153000")


def _render(order, report, **kw):
    args = dict(order=order, accession="ACC00042", report=report,
                conduct_label="Consultation de dermatologie à prévoir dans les semaines à venir",
                labels=LABELS, images=3, created=CREATED)
    return render_report_pdf(**{**args, **kw})


def test_pdf_shows_answer_patient_and_digest_with_french_accents(order, report, tmp_path):
    text = _text(_render(order, report), tmp_path)
    assert "Avis de télé-expertise dermatologique" in text
    assert " ".join(ANSWER.split()) in text
    assert "DUPRÉ Hélène" in text
    assert "12/03/1956" in text
    assert "MARTIN Élise (810001234567)" in text
    assert "Lésion du dos qui change depuis 3 mois : faut-il l'enlever ?" in text
    assert "Consultation de dermatologie à prévoir dans les semaines à venir" in text
    assert "LEFÈVRE François (810009876543)" in text
    assert "14/03/2025 à 15:30" in text
    assert "ACC00042" in text and "DEM-2025-0042" in text
    assert report_digest(report=report, accession="ACC00042") in text


def test_pdf_is_a4_unencrypted_and_dated_when_created(order, report, tmp_path):
    pdf = _render(order, report)
    info = _info(pdf, tmp_path)
    assert info["Encrypted"] == "no" and b"/Encrypt" not in pdf
    assert info["Page size"].endswith("(A4)")
    assert b"(D:20250314153105+01'00')" in pdf  # CreationDate and ModDate, not 2000-01-01
    assert b"D:2000" not in pdf


def test_pdf_without_time_zone_on_its_creation_date_raises_domain_error(order, report):
    with pytest.raises(DomainError) as err:
        _render(order, report, created=dt.datetime(2025, 3, 14, 15, 31))
    assert err.value.where == "created"


def test_pdf_when_answer_is_long_wraps_onto_more_pages_and_loses_nothing(order, report, tmp_path):
    long_answer = " ".join(f"phrase{i} sur l'évolution." for i in range(900))
    pdf = _render(order, replace(report, text=long_answer))
    footers = r" ?ACC00042 · Édité le 14/03/2025 à 15:31 · Page \d+"
    assert long_answer in re.sub(footers, "", _text(pdf, tmp_path))
    assert int(_info(pdf, tmp_path)["Pages"]) > 1


def test_pdf_when_text_has_markup_characters_prints_them_literally(order, report, tmp_path):
    pdf = _render(order, replace(report, text="Taille <b>5 mm</b> & bords nets"))
    assert "Taille <b>5 mm</b> & bords nets" in _text(pdf, tmp_path)


def test_pdf_in_english_uses_english_labels(order, report, tmp_path):
    pdf = _render(order, report, lang="en", conduct_label="Dermatology consultation within weeks")
    text = _text(pdf, tmp_path)
    assert "Dermatology tele-expertise opinion" in text
    assert "Born 1956-03-12" in text
    assert "2025-03-14 15:30" in text


def test_pdf_when_report_is_corrected_says_so(order, report, tmp_path):
    text = _text(_render(order, replace(report, status="C")), tmp_path)
    assert "Avis rectificatif" in text


def test_pdf_is_the_same_bytes_for_the_same_inputs(order, report):
    assert _render(order, report) == _render(order, report)


def test_pdf_when_language_has_no_labels_raises_domain_error(order, report):
    with pytest.raises(DomainError) as err:
        _render(order, report, lang="de")
    assert err.value.where == "lang"


def test_report_digest_changes_with_each_signed_field(report):
    base = report_digest(report=report, accession="ACC00042")
    assert len(base) == 64 and base == report_digest(report=report, accession="ACC00042")
    other_specialist = Practitioner("810000000000", report.specialist.name)
    variants = [
        report_digest(report=replace(report, text=report.text + "."), accession="ACC00042"),
        report_digest(report=replace(report, conduct="biopsy"), accession="ACC00042"),
        report_digest(report=replace(report, specialist=other_specialist), accession="ACC00042"),
        report_digest(report=replace(report, signed_at="20250314153001"), accession="ACC00042"),
        report_digest(report=report, accession="ACC00043"),
    ]
    assert base not in variants and len(set(variants)) == len(variants)



_VERA_SCRIPT = """
import datetime as dt
import sys
from pathlib import Path
from connector.domain.model import Answer, Order, Patient, PersonName, Practitioner, Report
from connector.reports import pdf
pdf._DEJAVU = Path("/nonexistent")  # as on a machine without fonts-dejavu-core
order = Order("DPI", "DEM1", Patient("1", PersonName("DUPRÉ", "Hélène")),
              Practitioner("810001234567", PersonName("MARTIN", "Élise")), "Lésion ?")
report = Report("Œdème absent, à revoir.", "no_visit",
                Practitioner("810009876543", PersonName("LEFÈVRE", "François")), "20250314153000")
labels = pdf.load_labels("mappings/reports/labels.toml")
sys.stdout.buffer.write(pdf.render_report_pdf(order=order, accession="ACC1", report=report,
    conduct_label="Pas de consultation", labels=labels,
    created=dt.datetime(2025, 3, 14, tzinfo=dt.timezone.utc)))
"""


def test_pdf_without_dejavu_uses_reportlabs_vera_and_keeps_accents(tmp_path):
    # fonts register once per process, so the fallback runs in a fresh interpreter
    root = Path(__file__).parents[3]
    pdf = subprocess.run([sys.executable, "-c", _VERA_SCRIPT], cwd=root, check=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(root)}).stdout
    assert b"Vera" in pdf and b"DejaVu" not in pdf
    text = _text(pdf, tmp_path)
    assert "DUPRÉ Hélène" in text and "Œdème absent, à revoir." in text


def test_pdf_holds_what_the_requesters_record_needs(order, report, tmp_path):
    qualified = replace(order.patient, ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                        identity_status="QUAL")
    full = replace(order, patient=qualified, ordered_at="20250313094500",
                   questionnaire=(Answer("duration", ("3m",), label=("Depuis quand ?", "Since?"),
                                         value_labels=(("3m", "3 mois", "3 months"),)),))
    text = _text(_render(full, report, facility="CHU de Nîmes", signed=True), tmp_path)
    assert "Sexe F" in text
    assert "INS (identifiant national de santé) 279035121518989" in text
    assert "Demande du 13/03/2025 à 09:45" in text and "Priorité routine" in text
    assert "Questionnaire Depuis quand ? 3 mois" in text
    assert "Établissement émetteur CHU de Nîmes" in text
    assert "Compte rendu d’un acte de télé-expertise" in text
    assert "signé électroniquement (PAdES)" in text


def test_pdf_keeps_an_unqualified_ins_out_and_claims_no_signature_unsigned(order, report,
                                                                           tmp_path):
    provisional = replace(order.patient, ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                          identity_status="PROV")
    text = _text(_render(replace(order, patient=provisional), report), tmp_path)
    assert "279035121518989" not in text and "INS" not in text
    assert "PAdES" not in text


def test_thumbnails_of_the_stored_images_are_in_the_pdf_and_small(order, report, tmp_path):
    from tests.support.channels import jpeg_object, part10
    from connector.dicom.images import preview_jpeg
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"image{seed}.dcm"
        path.write_bytes(part10(jpeg_object(seed=seed)))
        paths.append(path)
    thumbnails = [preview_jpeg(p) for p in paths]
    assert all(t[:2] == b"\xff\xd8" and len(t) < 8000 for t in thumbnails)
    plain, shown = _render(order, report), _render(order, report, thumbnails=thumbnails)
    def pictures(pdf: bytes) -> list[tuple[str, str]]:  # (width, height) per image
        rows = _poppler(pdf, tmp_path, "pdfimages", "-list").splitlines()[2:]
        return [(row.split()[3], row.split()[4]) for row in rows]
    assert pictures(shown) == [("96", "64")] * 2 and pictures(plain) == []
    assert len(shown) - len(plain) < 4 * 8000


def test_pdf_is_pdfa_3b_and_the_same_bytes_for_the_same_input(order, report):
    from pyhanko.pdf_utils.reader import PdfFileReader
    import io
    pdf = _render(order, report)
    assert pdf == _render(order, report)
    reader = PdfFileReader(io.BytesIO(pdf))
    xmp = reader.root["/Metadata"].get_object().data.decode()
    assert "<pdfaid:part>3</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "<xmp:CreateDate>2025-03-14T15:31:05+01:00</xmp:CreateDate>" in xmp
    assert reader.root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"
