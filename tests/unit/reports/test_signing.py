"""The report PDF signed PAdES: valid as signed, not intact after any one byte changes, checked
with pyhanko's validator (through `verify`) and through `telederm report verify`."""

import datetime as dt
import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from connector.config import load_config
from connector.domain.errors import ConfigError, DomainError
from connector.domain.model import Order, Patient, PersonName, Practitioner, Report
from connector.reports.pdf import load_labels, render_report_pdf
from connector.reports.signing import ReportSigner, make_trial_pair, verify
from tests.support.cli import one_error_line, telederm

NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.timezone.utc)
LABELS = load_labels(Path(__file__).parents[3] / "mappings" / "reports" / "labels.toml")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_trial_pair(tmp_path_factory.mktemp("keys"), common_name="CH Test Signer", now=NOW)


@pytest.fixture(scope="module")
def signed(pair):
    order = Order("DPI", "DEM1", Patient("1", PersonName("DUPRÉ", "Hélène")),
                  Practitioner("810001234567", PersonName("MARTIN", "Élise")), "Lésion ?")
    report = Report("Naevus bénin.", "no_visit",
                    Practitioner("810009876543", PersonName("LEFÈVRE", "François")),
                    "20261203100000")
    pdf = render_report_pdf(order=order, accession="ACC1", report=report,
                            conduct_label="Pas de consultation", labels=LABELS, created=NOW)
    return ReportSigner(*pair).sign(pdf, reason="Avis de télé-expertise")


def test_signed_report_is_valid_pades_naming_the_signer(signed, pair):
    got = verify(signed, trust=(pair[1],))
    assert (got.intact, got.valid, got.trusted, got.problem) == (True, True, True, "")
    assert "CH Test Signer" in got.signer and got.signed_at
    sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES, not adbe.pkcs7


@pytest.mark.parametrize("where", [0.05, 0.3, 0.6, 0.9])
def test_signed_report_with_one_byte_changed_is_not_intact(signed, pair, where):
    i = int(len(signed) * where)
    changed = signed[:i] + bytes([signed[i] ^ 0x01]) + signed[i + 1:]
    got = verify(changed, trust=(pair[1],))
    assert not (got.intact and got.valid), (i, got)


def test_signed_report_with_bytes_appended_is_not_intact(signed):
    got = verify(signed + b"\n1 0 obj\n(x)\nendobj\n")
    assert not got.intact and got.problem


def test_signed_report_checked_against_another_certificate_is_not_trusted(signed, tmp_path):
    _, other = make_trial_pair(tmp_path, common_name="Someone else", now=NOW)
    got = verify(signed, trust=(other,))
    assert got.intact and not got.trusted


def test_unsigned_pdf_has_no_signature(signed):
    head = signed[:signed.index(b"%%EOF") + 5]  # the PDF as rendered, before the signature
    assert verify(head).problem == "the PDF holds no signature"


def test_trial_pair_is_never_overwritten(pair):
    with pytest.raises(DomainError) as err:
        make_trial_pair(pair[0].parent, common_name="x", now=NOW)
    assert err.value.where == "out"
    assert oct(pair[0].stat().st_mode & 0o777) == "0o600"


def test_signer_with_a_mismatched_key_names_the_setting(pair, tmp_path):
    other_key, _ = make_trial_pair(tmp_path, common_name="other", now=NOW)
    with pytest.raises(ConfigError) as err:
        ReportSigner(other_key, pair[1])
    assert err.value.where == "reports.signing_key"


def test_config_needs_key_and_cert_together_and_reads_the_password_from_the_environment(pair):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"TELEDERM_REPORTS_SIGNING_KEY": str(pair[0])})
    assert "go together" in str(err.value.problems[0].text)
    with pytest.raises(ConfigError):
        load_config(None, environ={"TELEDERM_REPORTS_SIGNING_KEY": str(pair[0]),
                                   "TELEDERM_REPORTS_SIGNING_CERT": str(pair[1]),
                                   "TELEDERM_REPORTS_SIGNING_KEY_PASSWORD_ENV": "KEYPW"})
    config = load_config(None, environ={"TELEDERM_REPORTS_SIGNING_KEY": str(pair[0]),
                                        "TELEDERM_REPORTS_SIGNING_CERT": str(pair[1]),
                                        "TELEDERM_REPORTS_SIGNING_KEY_PASSWORD_ENV": "KEYPW",
                                        "KEYPW": "s3cret"})
    assert config.reports.key_password == "s3cret"


def test_cli_keys_init_then_report_verify(tmp_path, signed):
    made = telederm("keys", "init", "--out", tmp_path / "k", "--name", "CH Demo")
    assert made.returncode == 0, made.stderr
    assert f'signing_cert = "{tmp_path / "k" / "signing-cert.pem"}"' in made.stdout
    again = telederm("keys", "init", "--out", tmp_path / "k")
    assert "exists" in one_error_line(again, 2)

    good = tmp_path / "good.pdf"
    good.write_bytes(signed)
    ok = telederm("report", "verify", good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signer: Common Name: CH Test Signer" in ok.stdout and "intact: yes" in ok.stdout
    assert ok.stderr == ""
    untrusted = telederm("report", "verify", good, "--trust", tmp_path / "k" / "signing-cert.pem")
    assert untrusted.returncode == 1 and "trusted: NO" in untrusted.stdout

    i = len(signed) // 3
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(signed[:i] + bytes([signed[i] ^ 0x01]) + signed[i + 1:])
    broken = telederm("report", "verify", bad)
    assert broken.returncode == 1 and "intact: NO" in broken.stdout, broken.stdout

    missing = telederm("report", "verify", tmp_path / "none.pdf")
    assert "not a readable file" in one_error_line(missing, 2)


def test_signed_report_stays_pdfa_3b_xmp_and_srgb_output_intent(signed):
    """veraPDF is not packaged for Debian: the PDF/A-3b parts are checked one by one."""
    from pyhanko.pdf_utils.metadata import xmp_xml
    reader = PdfFileReader(io.BytesIO(signed))
    assert "/Encrypt" not in reader.trailer_view
    (intent,) = reader.root["/OutputIntents"]
    intent = intent.get_object()
    assert (intent["/S"], intent["/OutputConditionIdentifier"]) == ("/GTS_PDFA1",
                                                                    "sRGB IEC61966-2.1")
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3 and profile.data[36:40] == b"acsp"  # an ICC profile
    (xmp,) = xmp_xml.parse_xmp(io.BytesIO(reader.root["/Metadata"].get_object().data))
    fields = {(name.ns, name.local_name): value.value for name, value in xmp}
    pdfaid = "http://www.aiim.org/pdfa/ns/id/"
    assert (fields[(pdfaid, "part")], fields[(pdfaid, "conformance")]) == ("3", "B")
    info = reader.trailer_view["/Info"].get_object()
    assert fields[("http://ns.adobe.com/pdf/1.3/", "Producer")] == info["/Producer"]
    assert fields[("http://purl.org/dc/elements/1.1/", "title")].entries[0].value == info["/Title"]
