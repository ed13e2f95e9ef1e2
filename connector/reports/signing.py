"""The report PDF signed PAdES (B-B) with the facility's key, and the check a reader makes.

Why PAdES: French tele-expertise rules ask for a document that cannot be changed without
trace and that names who issued it. Permission bits and a printed digest do not do that (any
PDF tool removes them); a CMS signature over the whole file does: one byte changed and
`verify` says the document is not intact.

The key and certificate come from `[reports] signing_key` / `signing_cert` (PEM), the key's
password from the environment variable `[reports] signing_key_password_env` names.
`make_trial_pair` makes a self-signed pair for trials and the demo (`telederm keys init`); a
site puts its facility certificate there instead.
"""

from __future__ import annotations

import datetime as dt
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata import xmp_xml
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from connector.domain.errors import ConfigError, DomainError

FIELD = "TeleDermSignature"
KEY_FILE, CERT_FILE = "signing-key.pem", "signing-cert.pem"


class ReportSigner:
    """The facility's key and certificate, loaded once, that signs each report version."""

    def __init__(self, key_file: Path, cert_file: Path, password: str = ""):
        try:
            self._signer = signers.SimpleSigner.load(
                str(key_file), str(cert_file),
                key_passphrase=password.encode() if password else None)
        except Exception as err:  # pyhanko/cryptography raise many kinds for a bad PEM
            raise ConfigError(f"cannot load the report signing key/certificate: {err}",
                              where="reports.signing_key",
                              hint="signing_key and signing_cert must be a matching PEM pair; "
                                   "an encrypted key needs its password in the environment "
                                   "variable signing_key_password_env names") from None
        if self._signer is None:
            raise ConfigError("cannot load the report signing key/certificate",
                              where="reports.signing_key",
                              hint="check the key's password (signing_key_password_env)")
        if not _matching(key_file, cert_file, password):
            raise ConfigError("the report signing key is not the certificate's key",
                              where="reports.signing_key",
                              hint="give the key that signing_cert was issued for")
        self.cert_file = cert_file

    def sign(self, pdf: bytes, *, reason: str) -> bytes:
        """`pdf` with a PAdES B-B signature covering the whole file.

        pyhanko signs through `asyncio.run`, which cannot run on a thread with a running
        event loop (an async web route, the HL7 listener), so it signs on a thread of its own.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(self._sign, pdf, reason).result()

    def _sign(self, pdf: bytes, reason: str) -> bytes:
        meta = signers.PdfSignatureMetadata(
            field_name=FIELD, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason)
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        if "/Metadata" in writer.root:
            # pyhanko updates XMP it holds as a MetadataStream and replaces any other: handed
            # the document's own packet, it keeps the PDF/A identification (`reports.pdfa`)
            # and updates the modification date and producer in it
            packet = xmp_xml.parse_xmp(io.BytesIO(writer.root["/Metadata"].data))
            writer.root["/Metadata"] = writer.add_object(xmp_xml.MetadataStream.from_xmp(packet))
            writer.update_root()
        out = signers.sign_pdf(writer, meta, signer=self._signer)
        return out.getvalue()


def _matching(key_file: Path, cert_file: Path, password: str) -> bool:
    """Whether the key is the certificate's (pyhanko would sign with any key and yield a
    signature no one can validate)."""
    key = serialization.load_pem_private_key(key_file.read_bytes(),
                                             password.encode() if password else None)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    raw = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*raw) == cert.public_key().public_bytes(*raw)


@dataclass(frozen=True)
class Verdict:
    """What a reader of the PDF learns: who signed, when, and whether it is unchanged."""

    signer: str
    signed_at: str
    intact: bool   # the signed bytes hash to what was signed, and cover the whole file
    valid: bool    # intact and the signature checks with the signer's key
    trusted: bool  # the signer's certificate chains to a trusted one (`trust`)
    problem: str = ""


def verify(pdf: bytes, *, trust: tuple[Path, ...] = ()) -> Verdict:
    """Check the report's signature with pyhanko's validator; a PDF without one, or one that
    does not parse, is a Verdict with `problem` set (never an exception)."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except Exception as err:  # a damaged PDF fails in many places of the parser
        return Verdict("", "", False, False, False, f"not a readable PDF: {err}")
    if not signatures:
        return Verdict("", "", False, False, False, "the PDF holds no signature")
    roots = [load_cert_from_pemder(str(p)) for p in trust]
    sig = signatures[-1]
    try:
        status = validate_pdf_signature(
            sig, ValidationContext(trust_roots=roots, allow_fetching=False))
    except Exception as err:
        return Verdict("", "", False, False, False, f"the signature does not check: {err}")
    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    intact = bool(status.intact) and whole and _unsigned_parts_untouched(sig)
    when = status.signer_reported_dt.isoformat() if status.signer_reported_dt else ""
    problem = "" if intact else ("bytes were added after the signature" if status.intact
                                 else "the document changed after it was signed")
    return Verdict(status.signing_cert.subject.human_friendly, when, intact,
                   intact and bool(status.valid), bool(status.trusted), problem)


def _unsigned_parts_untouched(sig) -> bool:
    """Whether the bytes of /Contents that no hash covers are as the signer wrote them, so
    that changing any byte of the file shows: the zeros reserved after the CMS, and the
    SignedData's list of digest algorithms (which validators do not read), which must name
    the one the signer used (RFC 5652, 5.1)."""
    contents = bytes(sig.sig_object["/Contents"])
    info = cms.ContentInfo.load(contents, strict=False)
    signed_data = info["content"]
    used = {a["algorithm"].dotted for a in signed_data["digest_algorithms"]}
    signer = {s["digest_algorithm"]["algorithm"].dotted for s in signed_data["signer_infos"]}
    return signer <= used and not contents[len(info.dump()):].strip(b"\x00")


def make_trial_pair(out: Path, *, common_name: str, now: dt.datetime,
                    days: int = 3650) -> tuple[Path, Path]:
    """A self-signed EC P-256 key and certificate in `out` (PEM, key unencrypted, mode 600),
    for trials: a requester cannot trust it beyond "unchanged since signed"."""
    if not common_name.strip():
        raise DomainError("the certificate needs a name", where="common_name")
    key_path, cert_path = out / KEY_FILE, out / CERT_FILE
    for path in (key_path, cert_path):
        if path.exists():
            raise DomainError(f"{path} exists", where="out",
                              hint="choose an empty folder; an existing key is never replaced")
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
