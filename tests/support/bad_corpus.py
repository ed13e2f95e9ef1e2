"""A corpus of malformed HL7 input for the inbound listener (issue 5, item 4).

Each `BadCase` is what goes on the wire (one or more TCP writes of raw bytes, framing included,
so framing faults can be expressed) and the ACKs the listener must answer, in order: MSA-1 and
the acceptable ERR-3 codes (table 0357), optionally the ERR-2 location of the first error.

Every message carries the same recognisable patient (`PATIENT_MARKERS`): none of it may appear
in ERR-7, ERR-8 or MSA-3 of any answer. Expected codes follow STYLE.md "Errors": AE for content
the sender must fix, AR for what cannot be accepted at all (type, event, version).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

START, END = b"\x0b", b"\x1c\x0d"

PATIENT_FAMILY = "ZORGLUBIAN"
PATIENT_GIVEN = "Hélène"
PATIENT_ID = "IPP7731904"
PATIENT_BIRTH = "19580312"
PATIENT_MARKERS = (PATIENT_FAMILY, PATIENT_ID, PATIENT_BIRTH, "Hélène", "Helene")

MSH_DEFAULT = {"sep": "|", "enc": "^~\\&", "app": "DPI_BAD", "fac": "CHU_BAD",
               "when": "20261115093000", "mtype": "ORM^O01^ORM_O01", "cid": None, "pid": "P",
               "version": "2.5", "charset": "UNICODE UTF-8"}


def msh(cid: str, **over) -> str:
    v = {**MSH_DEFAULT, "cid": cid, **over}
    s = v["sep"]
    fields = ["MSH", v["enc"], v["app"], v["fac"], "TELEDERM", "TELEDERM", v["when"], "",
              v["mtype"], v["cid"], v["pid"], v["version"], "", "", "", "", "FRA", v["charset"]]
    return s.join(fields)


PID = (f"PID|1||{PATIENT_ID}^^^CHU_BAD&1.2.250.1.999.1&ISO^PI||{PATIENT_FAMILY}^{PATIENT_GIVEN}"
       f"^^^^^L||{PATIENT_BIRTH}|F")
PV1 = "PV1|1|O"
REQUESTER = "801234567897^MARTIN^Jean^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


def orc(placer: str, control: str = "NW", requester: str = REQUESTER, ordered: str = "") -> str:
    return f"ORC|{control}|{placer}^DPI_BAD|||||||{ordered}|||{requester}"


def obr(placer: str, priority: str = "R", requester: str = "801234567897^MARTIN^Jean") -> str:
    return (f"OBR|1|{placer}^DPI_BAD||TELEDERM^Télé-expertise dermatologie^L|{priority}||||||||"
            f"Lésion pigmentée du dos||||{requester}")


# The patient's consent, which every new order must carry (mappings/hl7/orm_o01.toml): last,
# so the OBX numbers of `extra` hold.
CONSENT = "OBX|9|CWE|CONSENT^Consentement du patient^L||Y^Oui^HL70136||||||F"


def order_text(cid: str, placer: str, *, msh_over: dict | None = None, pid: str | None = PID,
               orc_seg: str | None = None, obr_seg: str | None = None,
               extra: tuple[str, ...] = (), before: tuple[str, ...] = (),
               consent: bool = True) -> str:
    segs = [*before, msh(cid, **(msh_over or {}))]
    if pid is not None:
        segs.append(pid)
    segs.append(PV1)
    segs.append(orc(placer) if orc_seg is None else orc_seg)
    segs.append(obr(placer) if obr_seg is None else obr_seg)
    segs += list(extra)
    if consent:
        segs.append(CONSENT)
    return "\r".join(s for s in segs if s != "") + "\r"


def framed(data: bytes) -> bytes:
    return START + data + END


@dataclass(frozen=True)
class BadCase:
    name: str
    wire: tuple[bytes, ...]                        # TCP writes, in order, framing included
    expect: tuple[tuple[str, tuple[str, ...]], ...]  # per ACK: (MSA-1, acceptable ERR-3 codes)
    location: str | None = None                    # ERR-2 of the first non-AA answer, if fixed
    opens: int = 0                                 # cases the wire legitimately opens
    setup: tuple[bytes, ...] = ()                  # framed messages sent (and answered) before
    setup_opens: int = 0
    same_ack_as_setup: bool = False                # the answer must be the setup's ACK, byte for byte
    markers: tuple[str, ...] = PATIENT_MARKERS     # must not appear in ERR-7/ERR-8/MSA-3
    xfail: str = ""                                # a known bug: reason
    stored_patient: tuple[str, str, str] = ()      # (PID-3.1, family, given) the store must hold


def _jpeg() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 150, 120)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _obx_ed(data: str, *, subtype: str = "JPEG", kind: str = "IM", encoding: str = "Base64",
            site: str = "") -> str:
    return (f"OBX|1|ED|PHOTO^Photo^L||^{kind}^{subtype}^{encoding}^{data}||||||F"
            + (f"|||||||||{site}" if site else ""))


def build_cases() -> list[BadCase]:
    cases: list[BadCase] = []
    n = 0

    def add(name: str, payload: bytes | str, code: str, err: str | tuple[str, ...],
            location: str | None = None, **kw) -> None:
        nonlocal n
        n += 1
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        errs = (err,) if isinstance(err, str) else err
        cases.append(BadCase(f"{n:03d}_{name}", (framed(data),), ((code, errs),), location, **kw))

    def cid(tag: str) -> str:
        return f"BAD{n + 1:03d}-{tag}"

    def pl(tag: str = "") -> str:
        return f"PLB{n + 1:03d}{tag}"

    # --- framing and envelope ------------------------------------------------------------
    add("empty_message", b"", "AE", "100")
    add("only_whitespace", b"  \r\n\t \r ", "AE", "100")
    add("only_crlf", b"\r\n\r\n", "AE", "100")
    add("no_msh_starts_with_pid", order_text(cid("nomsh"), pl()).split("\r", 1)[1], "AE", "100")
    add("pid_before_msh", order_text(cid("order"), pl(), before=(PID,)), "AE", "100")
    add("random_text", "hello, this is not HL7 at all", "AE", "100")
    add("binary_garbage", bytes(b for b in range(256) if b not in (0x0B, 0x1C)) * 4, "AE",
        "100")
    add("msh_lowercase", order_text(cid("lower"), pl()).replace("MSH|", "msh|", 1), "AE", "100")
    add("truncated_msh_7_chars", "MSH|^~\\", "AE", ("100", "101"))
    add("truncated_msh_after_sending_app", "MSH|^~\\&|DPI_BAD\r" + PID + "\r", "AE", "101",
        "MSH^1^9")
    add("wrong_field_separator_declared", order_text(cid("sep"), pl()).replace(
        "MSH|^~\\&|", "MSH#^~\\&|", 1), "AE", ("100", "101"))
    add("missing_msh9", order_text(cid("m9"), pl(), msh_over={"mtype": ""}), "AE", "101",
        "MSH^1^9")
    add("msh9_trigger_only", order_text(cid("m9t"), pl(), msh_over={"mtype": "^O01"}), "AE",
        "101", "MSH^1^9")
    add("missing_msh10", order_text("", pl()), "AE", "101", "MSH^1^10")
    add("msh10_blank_spaces", order_text("   ", pl()), "AE", "101", "MSH^1^10")
    add("missing_msh12", order_text(cid("m12"), pl(), msh_over={"version": ""}), "AE", "101",
        "MSH^1^12")
    add("unknown_version_2_9", order_text(cid("v29"), pl(), msh_over={"version": "2.9"}), "AR",
        "203", "MSH^1^12")
    add("unknown_version_3_0", order_text(cid("v30"), pl(), msh_over={"version": "3.0"}), "AR",
        "203", "MSH^1^12")
    add("unknown_version_2_1", order_text(cid("v21"), pl(), msh_over={"version": "2.1"}), "AR",
        "203", "MSH^1^12")
    add("version_garbage", order_text(cid("vg"), pl(), msh_over={"version": "two"}), "AR", "203",
        "MSH^1^12")
    # ADT and ORU are taken (identity, reports); their other events are not.
    add("unsupported_event_adt_a01", order_text(cid("adt"), pl(), msh_over={"mtype": "ADT^A01"}),
        "AR", "201", "MSH^1^9^2")
    add("unsupported_type_siu_s12", order_text(cid("siu"), pl(), msh_over={"mtype": "SIU^S12"}),
        "AR", "200", "MSH^1^9^1")
    add("unsupported_type_garbage", order_text(cid("zzz"), pl(), msh_over={"mtype": "ZZZ^Z99"}),
        "AR", "200", "MSH^1^9^1")
    add("unsupported_event_orm_o02", order_text(cid("o02"), pl(), msh_over={"mtype": "ORM^O02"}),
        "AR", "201", "MSH^1^9^2")
    add("unsupported_event_omg_o21", order_text(cid("o21"), pl(), msh_over={"mtype": "OMG^O21"}),
        "AR", "201", "MSH^1^9^2")
    add("orm_without_event", order_text(cid("noev"), pl(), msh_over={"mtype": "ORM"}), "AR",
        "201", "MSH^1^9^2")

    # --- character sets ------------------------------------------------------------------
    add("invalid_utf8_under_unicode_utf8",
        order_text(cid("u8"), pl()).encode("utf-8").replace("Hélène".encode(), b"H\xe9l\xe8ne"),
        "AE", "102", "MSH^1^18")
    add("truncated_utf8_sequence",
        order_text(cid("u8t"), pl()).encode("utf-8").replace("Hélène".encode(), b"H\xc3"),
        "AE", "102", "MSH^1^18")
    add("unknown_charset_koi8", order_text(cid("koi"), pl(), msh_over={"charset": "KOI8-R"}),
        "AE", "103", "MSH^1^18")
    add("unknown_charset_utf16", order_text(cid("u16"), pl(),
                                            msh_over={"charset": "UNICODE UTF-16"}),
        "AE", "103", "MSH^1^18")

    # --- order content -------------------------------------------------------------------
    p = pl()
    add("orc1_unknown", order_text(cid("orc1"), p, orc_seg=orc(p, control="ZZ")), "AE", "103",
        "ORC^1^1")
    p = pl()
    add("orc1_empty", order_text(cid("orc1e"), p, orc_seg=orc(p, control="")), "AE", "101",
        "ORC^1^1")
    p = pl()
    add("orc1_dc_not_taken", order_text(cid("dc"), p, orc_seg=orc(p, control="DC")),
        "AE", "103", "ORC^1^1")
    p = pl()
    add("two_orders_in_one_message", order_text(cid("2orc"), p, extra=(orc(p + "X"),)), "AE",
        "100")
    add("missing_pid_segment", order_text(cid("nopid"), pl(), pid=None), "AE", "101", "PID^1^3")
    add("missing_pid3", order_text(cid("pid3"), pl(), pid=PID.replace(
        f"{PATIENT_ID}^^^CHU_BAD&1.2.250.1.999.1&ISO^PI", "")), "AE", "101", "PID^1^3")
    add("pid3_authority_without_id", order_text(cid("pid3a"), pl(), pid=PID.replace(
        f"{PATIENT_ID}^", "^")), "AE", "101", "PID^1^3")
    add("pid3_longer_than_64", order_text(cid("pid3l"), pl(), pid=PID.replace(
        PATIENT_ID, PATIENT_ID + "9" * 60)), "AE", "102", "PID^1^3")
    add("missing_pid5", order_text(cid("pid5"), pl(), pid=PID.replace(
        f"{PATIENT_FAMILY}^{PATIENT_GIVEN}^^^^^L", "")), "AE", "101", "PID^1^5")
    add("pid5_given_only", order_text(cid("pid5g"), pl(), pid=PID.replace(
        f"{PATIENT_FAMILY}^", "^")), "AE", "101", "PID^1^5")
    add("pid5_escaped_delimiter_in_name", order_text(cid("pid5d"), pl(), pid=PID.replace(
        PATIENT_FAMILY, PATIENT_FAMILY + "\\F\\X")), "AE", "102", "PID^1^5")
    p = pl()
    add("missing_placer_number", order_text(
        cid("plc"), p, orc_seg=orc(""), obr_seg=obr("")), "AE", "101", "ORC^1^2")
    p = pl("-" + "9" * 20)
    add("placer_number_longer_than_22", order_text(cid("plcl"), p), "AE", "102", "ORC^1^2")
    p = pl()
    add("missing_requester", order_text(cid("req"), p, orc_seg=orc(p, requester=""),
                                        obr_seg=obr(p, requester="")), "AE", "101", "ORC^1^12")
    p = pl()
    add("requester_without_id", order_text(
        cid("reqi"), p, orc_seg=orc(p, requester="^MARTIN^Jean"),
        obr_seg=obr(p, requester="")), "AE", "101", "ORC^1^12")
    p = pl()
    add("requester_without_name", order_text(
        cid("reqn"), p, orc_seg=orc(p, requester="801234567897"),
        obr_seg=obr(p, requester="")), "AE", "101", "ORC^1^12")
    for tag, bad in (("month13", "19581312"), ("day32", "19580332"), ("feb30", "19580230"),
                     ("iso_dashes", "1958-03-12"), ("letters", "ABCDEFGH"), ("year_only", "1958"),
                     ("zeros", "00000000"), ("slashes", "12/03/1958")):
        add(f"birth_date_{tag}", order_text(cid("dob"), pl(), pid=PID.replace(
            f"||{PATIENT_BIRTH}|", f"||{bad}|")), "AE", "102", "PID^1^7",
            markers=PATIENT_MARKERS + (bad,))
    add("sex_code_unknown", order_text(cid("sex"), pl(), pid=PID.replace("|F", "|Q")), "AE",
        "103", "PID^1^8")
    add("sex_code_field_shift_name_in_pid8", order_text(cid("sexs"), pl(), pid=PID.replace(
        "|F", f"|{PATIENT_FAMILY}")), "AE", "103", "PID^1^8")
    p = pl()
    add("priority_code_unknown", order_text(cid("prio"), p, obr_seg=obr(p, priority="ZZ")), "AE",
        "103", "OBR^1^5")
    p = pl()
    add("ordered_at_not_a_timestamp", order_text(cid("ts"), p, orc_seg=orc(p, ordered="yesterday")),
        "AE", "102", "ORC^1^9")

    # --- embedded images (OBX ED) --------------------------------------------------------
    add("obx_ed_bad_base64", order_text(cid("b64"), pl(), extra=(_obx_ed("!!!not*base64@@"),)),
        "AE", "102", "OBX^1^5")
    add("obx_ed_truncated_base64", order_text(cid("b64t"), pl(), extra=(
        _obx_ed(base64.b64encode(_jpeg()).decode()[:-3]),)), "AE", "102", "OBX^1^5")
    add("obx_ed_empty_data", order_text(cid("b64e"), pl(), extra=(_obx_ed(""),)), "AE", "101",
        "OBX^1^5")
    add("obx_ed_subtype_gif", order_text(cid("gif"), pl(), extra=(
        _obx_ed(base64.b64encode(_jpeg()).decode(), subtype="GIF"),)), "AE", "103", "OBX^1^5")
    add("obx_ed_not_image_type", order_text(cid("ap"), pl(), extra=(
        _obx_ed(base64.b64encode(b"%PDF-1.4").decode(), kind="AP", subtype="PDF"),)), "AE",
        "102", "OBX^1^5")
    add("obx_ed_hex_encoding", order_text(cid("hex"), pl(), extra=(
        _obx_ed(_jpeg()[:16].hex(), encoding="Hex"),)), "AE", "102", "OBX^1^5")
    add("obx_ed_base64_of_non_image", order_text(cid("nonimg"), pl(), extra=(
        _obx_ed(base64.b64encode(b"this is plain text, not a JPEG").decode()),)), "AE", "102",
        "OBX^1^5")

    # --- French identity, questionnaire, consent -------------------------------------------
    nir = "279035121518989"
    ipp = f"{PATIENT_ID}^^^CHU_BAD&1.2.250.1.999.1&ISO^PI"
    for tag, oid in (("test", "10"), ("demo", "11")):
        add(f"ins_{tag}_oid_in_production", order_text(cid(tag), pl(), pid=PID.replace(
            ipp, f"{ipp}~{nir}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.{oid}&ISO^INS")),
            "AE", "103", "PID^1^3^2", markers=PATIENT_MARKERS + (nir,))
    add("ins_wrong_key", order_text(cid("key"), pl(), pid=PID.replace(
        ipp, f"{ipp}~{nir[:-2]}11^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS")),
        "AE", "102", "PID^1^3^2", markers=PATIENT_MARKERS + (nir[:-2] + "11",))
    add("identity_reliability_unknown", order_text(cid("pid32"), pl(), pid=PID + "|" * 24
                                                   + "ZZZZ"), "AE", "103", "PID^1^32^1")
    add("order_without_consent", order_text(cid("noconsent"), pl(), consent=False), "AE", "101",
        "OBX^1^5")
    add("consent_refused", order_text(cid("refused"), pl(), consent=False, extra=(
        "OBX|1|CWE|CONSENT^Consentement^L||N^Non^HL70136||||||F",)), "AE", "101", "OBX^1^5")
    add("questionnaire_answer_not_allowed", order_text(cid("quest"), pl(), extra=(
        "OBX|1|CWE|DERM-EVOLUTION^Evolution^L||SOMETIMES||||||F",)), "AE", "103", "OBX^1^5")
    add("questionnaire_number_not_a_number", order_text(cid("num"), pl(), extra=(
        "OBX|1|NM|DERM-TAILLE^Taille^L||huit|mm|||||F",)), "AE", "102", "OBX^1^5")

    # --- charset fallback: must be accepted (AA), the Latin-1 text read as Latin-1 --------
    p = pl()
    add("latin1_bytes_without_msh18", order_text(cid("l1"), p, msh_over={"charset": ""})
        .replace(PATIENT_ID, "IPPLATIN1").encode("latin-1", "replace"), "AA", ("",), opens=1,
        stored_patient=("IPPLATIN1", PATIENT_FAMILY, PATIENT_GIVEN))

    # --- several frames, split writes, garbage -------------------------------------------
    def multi(name: str, wire: tuple[bytes, ...], expect, location=None, **kw) -> None:
        nonlocal n
        n += 1
        cases.append(BadCase(f"{n:03d}_{name}", wire, tuple(expect), location, **kw))

    def bad_pid3(control_id: str, placer: str) -> bytes:
        return order_text(control_id, placer, pid=PID.replace(
            f"{PATIENT_ID}^^^CHU_BAD&1.2.250.1.999.1&ISO^PI", "")).encode()
    data = framed(bad_pid3(cid("split"), pl()))
    multi("frame_split_across_three_writes", (data[:5], data[5:60], data[60:]),
          [("AE", ("101",))], "PID^1^3")
    data = framed(bad_pid3(cid("splitend"), pl()))
    multi("frame_split_inside_end_block", (data[:-1], data[-1:]), [("AE", ("101",))], "PID^1^3")
    multi("two_bad_frames_in_one_write",
          (framed(bad_pid3(cid("two-a"), pl("a"))) + framed(order_text(
              cid("two-b"), pl("b"), msh_over={"version": "2.9"}).encode()),),
          [("AE", ("101",)), ("AR", ("203",))], "PID^1^3")
    multi("garbage_between_frames",
          (framed(bad_pid3(cid("gb-a"), pl("a"))) + b"GARBAGE\r\nMORE GARBAGE"
           + framed(order_text(cid("gb-b"), pl("b"), msh_over={"mtype": "SIU^S12"}).encode()),),
          [("AE", ("101",)), ("AR", ("200",))], "PID^1^3")
    multi("garbage_before_first_frame",
          (b"\x00\x01garbage without a start block" + framed(bad_pid3(cid("gbf"), pl())),),
          [("AE", ("101",))], "PID^1^3")
    multi("cut_frame_then_new_frame",
          (START + order_text(cid("cut-a"), pl("a")).encode()[:40]
           + framed(bad_pid3(cid("cut-b"), pl("b"))),),
          [("AE", ("101",))], "PID^1^3")
    multi("end_block_missing_cr_then_new_frame",
          (START + bad_pid3(cid("nocr-a"), pl("a")) + b"\x1c"
           + framed(bad_pid3(cid("nocr-b"), pl("b"))),),
          [("AE", ("101",))], "PID^1^3")

    # --- resends -------------------------------------------------------------------------
    c = cid("dupaa")
    multi("duplicate_control_id_different_content_after_aa",
          (framed(order_text(c, pl("second")).encode()),), [("AA", ("",))],
          setup=(framed(order_text(c, pl("first")).encode()),), setup_opens=1,
          same_ack_as_setup=True)
    c = cid("dupae")
    multi("duplicate_control_id_corrected_content_after_ae",
          (framed(order_text(c, pl("second")).encode()),), [("AE", ("101",))], "PID^1^3",
          setup=(framed(bad_pid3(c, pl("first"))),), same_ack_as_setup=True)
    c = cid("dupar")
    multi("resend_after_ar_is_processed_afresh",
          (framed(order_text(c, pl("second")).encode()),), [("AA", ("",))], opens=1,
          setup=(framed(order_text(c, pl("first"), msh_over={"version": "2.9"}).encode()),))
    c = cid("dupkey")
    multi("same_placer_number_new_control_id",
          (framed(order_text(c + "-2", pl("same")).encode()),), [("AE", ("205",))], "ORC^1^2",
          setup=(framed(order_text(c + "-1", pl("same")).encode()),), setup_opens=1)

    # --- size ----------------------------------------------------------------------------
    p = pl()
    huge = order_text(cid("huge"), p, extra=("NTE|1||" + "A" * (21 * 1024 * 1024),))
    add("message_over_listener_limit", huge, "AE", "207")
    p = pl()
    add("oversized_family_name_100k", order_text(cid("bigname"), p, pid=PID.replace(
        PATIENT_FAMILY, PATIENT_FAMILY + "X" * 100_000)), "AE", "102", "PID^1^5")
    return cases


CASES = build_cases()
