"""Every message the connector sends (ACK, ORU F/C/D, MDM T02/T10/T04, order status OK / SC IP /
SC CM / CR / OC in its three structures, DFT^P03) parses with python-hl7 and with hl7apy in
tolerant mode, with the expected segments and fields; plus the French identity rules of PID
and XCN, and the builders' refusals."""

from __future__ import annotations

import base64
import warnings

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from connector.domain.model import Patient, PersonName, Practitioner, Report
from connector.hl7.follow_up import build_follow_up
from connector.hl7.mdm import build_mdm, trigger_for
from connector.hl7.order_status import build_order_status
from connector.hl7.parse import parse
from connector.hl7.segments import pid, ppn, xcn
from tests.support import outbound_forms as forms

FORMS = forms.FORMS


def segments(text: str) -> list[str]:
    return [s.split("|", 1)[0] for s in text.split("\r") if s]


def tolerant(text: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hl7apy warns about table values it does not know
        return parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)


def valid(msg) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return msg.validate()


# form -> (MSH-9, MSH-10, segment ids in order, hl7apy structure)
EXPECTED = {
    "out_ack_aa.hl7": ("ACK^O01^ACK", "A0123456789abcdef01", ["MSH", "MSA"], "ACK"),
    "out_ack_ae.hl7": ("ACK^O01^ACK", "A0123456789abcdef01", ["MSH", "MSA", "ERR"], "ACK"),
    "out_ack_ar.hl7": ("ACK^O01^ACK", "A0123456789abcdef01", ["MSH", "MSA", "ERR"], "ACK"),
    "out_oru_r01_final.hl7": ("ORU^R01^ORU_R01", "ORUTD00000042V1",
                              ["MSH", "PID", "PV1", "ORC", "OBR"] + ["OBX"] * 7, "ORU_R01"),
    "out_oru_r01_corrected.hl7": ("ORU^R01^ORU_R01", "ORUTD00000042V2",
                                  ["MSH", "PID", "PV1", "ORC", "OBR"] + ["OBX"] * 7, "ORU_R01"),
    "out_oru_r01_withdrawn.hl7": ("ORU^R01^ORU_R01", "ORUTD00000042W2",
                                  ["MSH", "PID", "PV1", "ORC", "OBR"] + ["OBX"] * 7, "ORU_R01"),
    "out_mdm_t02.hl7": ("MDM^T02^MDM_T02", "MDMTD00000042V1",
                        ["MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA"] + ["OBX"] * 7,
                        "MDM_T02"),
    "out_mdm_t10.hl7": ("MDM^T10^MDM_T02", "MDMTD00000042V2",
                        ["MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA"] + ["OBX"] * 7,
                        "MDM_T02"),
    "out_mdm_t04.hl7": ("MDM^T04^MDM_T02", "MDMTD00000042W2",
                        ["MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA"] + ["OBX"] * 7,
                        "MDM_T02"),
    "out_orm_o01_ok.hl7": ("ORM^O01^ORM_O01", "STTD00000042OK",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_sc_ip.hl7": ("ORM^O01^ORM_O01", "STTD00000042IP",
                              ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_sc_cm.hl7": ("ORM^O01^ORM_O01", "STTD00000042CMV1",
                              ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_cr.hl7": ("ORM^O01^ORM_O01", "STTD00000042CR",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_oc.hl7": ("ORM^O01^ORM_O01", "STTD00000042OC",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_ua.hl7": ("ORM^O01^ORM_O01", "RJ5f0c2e9a81d4b7c3e2",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_omg_o19_ok.hl7": ("OMG^O19^OMG_O19", "STTD00000042OK",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "OMG_O19"),
    "out_oru_r01_oc.hl7": ("ORU^R01^ORU_R01", "STTD00000042OC",
                           ["MSH", "PID", "PV1", "ORC", "OBR"], "ORU_R01"),
    "out_orm_o01_specialist_nw.hl7": ("ORM^O01^ORM_O01", "SPTD00000042A1",
                                      ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_specialist_xo.hl7": ("ORM^O01^ORM_O01", "SPTD00000042A2",
                                      ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_specialist_ca.hl7": ("ORM^O01^ORM_O01", "SPTD00000042A3",
                                      ["MSH", "PID", "PV1", "ORC", "OBR"], "ORM_O01"),
    "out_orm_o01_specialist_reminder.hl7": ("ORM^O01^ORM_O01", "SPTD00000042R4",
                                            ["MSH", "PID", "PV1", "ORC", "OBR", "NTE"], "ORM_O01"),
    "out_omg_o19_specialist_nw.hl7": ("OMG^O19^OMG_O19", "SPTD00000042A1",
                                      ["MSH", "PID", "PV1", "ORC", "TQ1", "OBR"], "OMG_O19"),
    "out_siu_s12_follow_up.hl7": ("SIU^S12^SIU_S12", "FUTD00000042V1",
                                  ["MSH", "SCH", "TQ1", "NTE", "NTE", "PID", "PV1", "RGS",
                                   "AIS"], "SIU_S12"),
    "out_orm_o01_follow_up.hl7": ("ORM^O01^ORM_O01", "FUTD00000042V1",
                                  ["MSH", "PID", "PV1", "ORC", "OBR", "NTE", "NTE"], "ORM_O01"),
    "out_omg_o19_follow_up.hl7": ("OMG^O19^OMG_O19", "FUTD00000042V1",
                                  ["MSH", "PID", "PV1", "ORC", "TQ1", "OBR", "NTE", "NTE"],
                                  "OMG_O19"),
    "out_dft_p03_charge.hl7": ("DFT^P03^DFT_P03", "DFTTD00000042N1",
                               ["MSH", "EVN", "PID", "PV1", "FT1", "FT1"], "DFT_P03"),
    "out_dft_p03_credit.hl7": ("DFT^P03^DFT_P03", "DFTTD00000042N2",
                               ["MSH", "EVN", "PID", "PV1", "FT1", "FT1"], "DFT_P03"),
}


def test_every_form_has_an_expectation():
    assert set(EXPECTED) == set(FORMS)


@pytest.mark.parametrize("name", sorted(FORMS))
def test_form_parses_with_python_hl7_with_its_header_and_segments(name):
    text = FORMS[name]()
    message_type, control_id, ids, _ = EXPECTED[name]
    msg = hl7.parse(text)
    assert str(msg.segment("MSH")(9)) == message_type
    assert (msg["MSH.F10"], msg["MSH.F11"], msg["MSH.F12"], msg["MSH.F18"]) == (
        control_id, "P", "2.5", "UNICODE UTF-8")
    assert [str(s(0)) for s in msg] == ids
    assert segments(text) == ids
    assert text.endswith("\r") and "\n" not in text
    # ... and with our own inbound parser (what a peer running the connector would do).
    parsed = parse(forms.wire(name))
    assert (parsed.control_id, parsed.version) == (control_id, "2.5")


@pytest.mark.parametrize("name", sorted(FORMS))
def test_form_parses_with_hl7apy_tolerant_into_its_structure(name):
    text = FORMS[name]()
    *_, structure = EXPECTED[name]
    msg = tolerant(text)
    assert msg.name == structure
    assert msg.msh.msh_10.to_er7() == EXPECTED[name][1]
    if structure == "ORM_O01":
        # hl7apy validates ORM_O01's OBR/RQD/RQ1... choice as a sequence and always asks for RQD
        # (hl7apy issues #142/#151): check the groups instead.
        order = msg.ORM_O01_ORDER
        assert order.orc.orc_1.to_er7() in ("OK", "SC", "CR", "OC", "UA", "NW", "XO", "CA")
        assert "ORM_O01_ORDER_DETAIL" in [c.name for c in order.children]
        # no case (UA), or a follow-up, where we are the placer: no filler number
        ours = order.orc.orc_1.to_er7() == "UA" or name.endswith("_follow_up.hl7")
        filler = "" if ours else forms.ACCESSION
        assert order.ORM_O01_ORDER_DETAIL.children[0].obr.obr_3.to_er7() == filler
    else:
        assert valid(msg)


def test_ack_fields():
    aa, ae, ar = (hl7.parse(FORMS[n]()) for n in ("out_ack_aa.hl7", "out_ack_ae.hl7",
                                                    "out_ack_ar.hl7"))
    assert (aa["MSH.F3"], aa["MSH.F5"], aa["MSH.F6"]) == ("TELEDERM", "DPI_CHU", "CHU_NIMES")
    assert [str(m.segment("MSA")(1)) for m in (aa, ae, ar)] == ["AA", "AE", "AR"]
    assert {str(m.segment("MSA")(2)) for m in (aa, ae, ar)} == {"MSG-20261116-0001"}
    err = ae.segment("ERR")
    assert (str(err(2)), str(err(3)), str(err(4))) == (
        "PID^1^3", "101^Required field missing^HL70357", "E")
    assert str(err(7)) == "patient identifier list has no usable identifier"
    assert str(ar.segment("ERR")(3)).startswith("207^")
    apy = tolerant(FORMS["out_ack_ae.hl7"]())
    assert apy.err.err_3.cwe_1.to_er7() == "101" and apy.err.err_4.to_er7() == "E"


@pytest.mark.parametrize("name,status,obr25", [("out_oru_r01_final.hl7", "F", "F"),
                                               ("out_oru_r01_corrected.hl7", "C", "C"),
                                               ("out_oru_r01_withdrawn.hl7", "D", "C")])
def test_oru_result_status(name, status, obr25):
    msg = hl7.parse(FORMS[name]())
    assert (msg["ORC.F1"], msg["ORC.F2"], msg["ORC.F3"]) == ("RE", "CMD-2026-0042", "TD00000042")
    assert msg["OBR.F25"] == obr25
    assert {str(o(11)) for o in msg.segments("OBX")} == {status}
    apy = tolerant(FORMS[name]())
    observations = apy.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.ORU_R01_OBSERVATION
    assert [o.obx.obx_11.to_er7() for o in observations] == [status] * 7
    ed = observations[6].obx.obx_5.to_er7().split("^")
    assert ed[1:4] == ["AP", "PDF", "Base64"] and base64.b64decode(ed[4]) == forms.PDF


@pytest.mark.parametrize("name,trigger,status,availability,parent,reason", [
    ("out_mdm_t02.hl7", "T02", "F", "AV", "", ""),
    ("out_mdm_t10.hl7", "T10", "C", "AV", forms.document_uid(1), ""),
    ("out_mdm_t04.hl7", "T04", "D", "CA", "", forms.WITHDRAWAL)])
def test_mdm_trigger_txa_and_result_status(name, trigger, status, availability, parent,
                                           reason):
    text = FORMS[name]()
    msg = hl7.parse(text)
    assert (msg["EVN.F1"], msg["EVN.F2"]) == (trigger, forms.NOW)
    txa = msg.segment("TXA")
    version = 1 if trigger == "T02" else 2
    assert (str(txa(1)), str(txa(2)), str(txa(3)), str(txa(4))) == ("1", "CN", "TX", forms.SIGNED)
    assert txa.extract_field(1, 5, 1, 1) == forms.SPECIALIST.id
    assert txa.extract_field(1, 12, 1, 1) == forms.document_uid(version)
    assert txa.extract_field(1, 12, 1, 2) == "TELEDERM"
    assert txa.extract_field(1, 13, 1, 1) == parent
    assert (str(txa(14)), str(txa(15)), str(txa(17)), str(txa(19))) == (
        "CMD-2026-0042", "TD00000042", "LA", availability)
    assert str(txa(21)) == reason
    assert (txa.extract_field(1, 22, 1, 1), txa.extract_field(1, 22, 1, 15)) == (
        forms.SPECIALIST.id, forms.SIGNED)
    assert {str(o(11)) for o in msg.segments("OBX")} == {status}
    apy = tolerant(text)
    assert apy.msh.msh_9.to_er7() == f"MDM^{trigger}^MDM_T02"
    assert apy.txa.txa_12.ei_1.to_er7() == forms.document_uid(version)
    assert apy.txa.txa_17.to_er7() == "LA" and apy.txa.txa_19.to_er7() == availability
    assert apy.MDM_T02_COMMON_ORDER.obr.obr_3.to_er7() == "TD00000042"
    assert [o.obx.obx_11.to_er7() for o in apy.MDM_T02_OBSERVATION] == [status] * 7


@pytest.mark.parametrize("name,control,status,reason", [
    ("out_orm_o01_ok.hl7", "OK", "SC", ""),
    ("out_orm_o01_sc_ip.hl7", "SC", "IP", ""),
    ("out_orm_o01_sc_cm.hl7", "SC", "CM", ""),
    ("out_orm_o01_cr.hl7", "CR", "CA", ""),
    ("out_orm_o01_oc.hl7", "OC", "CA", "DECLINED"),
    ("out_omg_o19_ok.hl7", "OK", "SC", ""),
    ("out_oru_r01_oc.hl7", "OC", "CA", "CANCELLED")])
def test_order_status_control_status_and_reason(name, control, status, reason):
    text = FORMS[name]()
    msg = hl7.parse(text)
    orc = msg.segment("ORC")
    assert (str(orc(1)), str(orc(2)), str(orc(3)), str(orc(5)), str(orc(9))) == (
        control, "CMD-2026-0042", "TD00000042", status, forms.NOW)
    assert orc.extract_field(1, 12, 1, 1) == forms.REQUESTER.id
    assert orc.extract_field(1, 16, 1, 1) == reason
    if reason:
        assert orc.extract_field(1, 16, 1, 3) == "L" and orc.extract_field(1, 16, 1, 2)
    obr = msg.segment("OBR")
    assert (str(obr(2)), str(obr(3)), obr.extract_field(1, 4, 1, 1), str(obr(22))) == (
        "CMD-2026-0042", "TD00000042", "TELEDERM", forms.NOW)
    apy = tolerant(text)
    orc_apy = {"ORM_O01": lambda m: m.ORM_O01_ORDER.orc,
               "OMG_O19": lambda m: m.OMG_O19_ORDER.orc,
               "ORU_R01": lambda m: m.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.orc}
    got = orc_apy[apy.name](apy)
    assert (got.orc_1.to_er7(), got.orc_5.to_er7()) == (control, status)


def test_unable_to_accept_names_the_order_and_the_err_but_no_accession_or_status():
    msg = hl7.parse(FORMS["out_orm_o01_ua.hl7"]())
    orc, obr = msg.segment("ORC"), msg.segment("OBR")
    assert (str(orc(1)), str(orc(2)), str(orc(3)), str(orc(5))) == ("UA", "CMD-2026-0042", "", "")
    assert [orc.extract_field(1, 16, 1, n) for n in (1, 3)] == ["205", "HL70357"]
    assert (str(obr(2)), str(obr(3))) == ("CMD-2026-0042", "")
    got = tolerant(forms.FORMS["out_orm_o01_ua.hl7"]()).ORM_O01_ORDER.orc
    assert (got.orc_1.to_er7(), got.orc_16.to_er7()) == (
        "UA", "205^this placer order number already has a case^HL70357")


def test_refusal_by_the_dermatologist_names_who_refused():
    orc = hl7.parse(FORMS["out_orm_o01_oc.hl7"]()).segment("ORC")
    assert orc.extract_field(1, 19, 1, 1) == forms.SPECIALIST.id
    assert orc.extract_field(1, 16, 1, 2).startswith("Photos floues")


def test_dft_fields():
    charge, credit = (hl7.parse(FORMS[n]()) for n in ("out_dft_p03_charge.hl7",
                                                        "out_dft_p03_credit.hl7"))
    assert [str(f(6)) for f in charge.segments("FT1")] == ["CG", "CG"]
    assert [str(f(6)) for f in credit.segments("FT1")] == ["CD", "CD"]
    assert [f.extract_field(1, 25, 1, 1) for f in credit.segments("FT1")] == ["TE2", "RQD"]
    apy = tolerant(FORMS["out_dft_p03_charge.hl7"]())
    assert apy.DFT_P03_FINANCIAL[0].ft1.ft1_11.cp_1.mo_1.to_er7() == "23.00"


# --- French identity rules (PID, XCN) --------------------------------------------------------

INS, TEST_OID = "279035121518989", "1.2.250.1.213.1.4.10"


def test_qualified_identity_sends_the_ins_as_a_second_pid3_with_its_oid_and_status():
    msg = hl7.parse(FORMS["out_oru_r01_final.hl7"]())
    field = msg.segment("PID")(3)
    assert [str(r(1)) for r in field] == ["IPP0012345", INS]
    assert msg["PID.F3.R2.C4.S2"] == TEST_OID and msg["PID.F3.R2.C5"] == "INS"
    assert msg["PID.F32"] == "QUAL"


def test_unqualified_identity_keeps_the_ins_out_but_says_its_status():
    patient = Patient("IPP1", PersonName("DUPONT"), "CHU", ins=INS, ins_oid=TEST_OID,
                      identity_status="VALI", identity_flags=("DOUT",))
    text = pid(patient)
    assert INS not in text
    msg = hl7.parse("MSH|^~\\&|A|B|||20260101||ADT^A31|1|P|2.5\r" + text)
    assert msg["PID.F3"] == "IPP1" and [str(r) for r in msg.segment("PID")(32)] == [
        "VALI", "DOUT"]


def test_ins_used_as_the_identifier_is_typed_ins_once():
    patient = Patient(INS, PersonName("DUPONT"), TEST_OID, ins=INS, ins_oid=TEST_OID,
                      identity_status="QUAL")
    assert pid(patient) == f"PID|1||{INS}^^^&{TEST_OID}&ISO^INS||DUPONT" + "|" * 27 + "QUAL"


def test_identity_without_status_writes_no_pid32():
    assert pid(Patient("IPP1", PersonName("DUPONT"), "CHU")) == "PID|1||IPP1^^^CHU||DUPONT"


def test_xcn_and_ppn_carry_the_identifier_type_when_known():
    typed = Practitioner("810000000001", PersonName("DURAND", "Amélie"), "1.2.250.1.71.4.2.1",
                         id_type="IDNPS")
    assert xcn(typed) == "810000000001^DURAND^Amélie^^^^^^&1.2.250.1.71.4.2.1&ISO^^^^IDNPS"
    assert xcn(Practitioner("42", PersonName("DURAND"))) == "42^DURAND"
    assert xcn(Practitioner("42", PersonName("DURAND"), id_type="RPPS")) == (
        "42^DURAND^^^^^^^^^^^RPPS")
    assert ppn(Practitioner("42", PersonName("DURAND")), "20260101") == (
        "42^DURAND" + "^" * 13 + "20260101")


# --- refusals ---------------------------------------------------------------------------------

def status(**changes) -> str:
    args = dict(control_id="X", now=forms.NOW, message_type="ORM^O01", order_control="SC",
                order_status="IP", case_accession="TD1", order=forms.ORDER)
    args.update(changes)
    return build_order_status(**args)


@pytest.mark.parametrize("changes", [{"message_type": "ORR^O02"}, {"order_control": "NW"},
                                     {"order_status": "ZZ"},
                                     {"reason": ("X", "why")}])
def test_order_status_refuses_what_it_does_not_send(changes):
    with pytest.raises(ValueError):
        status(**changes)


def test_mdm_needs_the_replaced_document_for_a_correction_and_a_document_number():
    report = Report("Texte.", "no_visit", forms.SPECIALIST, forms.SIGNED, "C")
    args = dict(control_id="X", now=forms.NOW, case_accession="TD1", study_uid="1.2",
                order=forms.ORDER, report=report, conduct_label="x", pdf=b"%PDF")
    with pytest.raises(ValueError):
        build_mdm(document_id="1.2.3", **args)
    with pytest.raises(ValueError):
        build_mdm(document_id="", parent_document_id="1.2.2", **args)
    with pytest.raises(ValueError):
        trigger_for("P")
    assert [trigger_for(s) for s in "FCD"] == ["T02", "T10", "T04"]


def test_values_with_delimiters_are_escaped_in_status_reasons():
    text = status(order_control="OC", order_status="CA", reason=("C|1", "a^b&c~d\\e"))
    assert "|C\\F\\1^a\\S\\b\\T\\c\\R\\d\\E\\e^L\r" in text
    orc = hl7.parse(text).segment("ORC")
    assert (orc.extract_field(1, 16, 1, 1), orc.extract_field(1, 16, 1, 2)) == (
        "C|1", "a^b&c~d\\e")  # python-hl7 unescapes
    assert len(str(orc(16)).split("^")) == 3


def test_a_qualified_ins_as_identifier_keeps_the_ipp_in_pid3():
    patient = Patient(INS, PersonName("DUPONT"), TEST_OID, ins=INS, ins_oid=TEST_OID,
                      identity_status="QUAL", other_ids=(("IPP1", "CHU"),))
    msg = hl7.parse("MSH|^~\\&|A|B|||20260101||ADT^A31|1|P|2.5\r" + pid(patient))
    assert str(msg.segment("PID")(3)) == f"{INS}^^^&{TEST_OID}&ISO^INS~IPP1^^^CHU"


@pytest.mark.parametrize("name, control, status, assignee", [
    ("out_orm_o01_specialist_nw.hl7", "NW", "SC", forms.ASSIGNEE),
    ("out_orm_o01_specialist_xo.hl7", "XO", "SC", forms.REPLACEMENT),
    ("out_orm_o01_specialist_ca.hl7", "CA", "CA", forms.ASSIGNEE),
    ("out_orm_o01_specialist_reminder.hl7", "SC", "SC", forms.ASSIGNEE),
])
def test_specialist_orders_carry_control_deadline_priority_and_assignee(name, control, status,
                                                                          assignee):
    msg = hl7.parse(FORMS[name]())
    assert (msg["ORC.F1"], msg["ORC.F3"], msg["ORC.F5"]) == (control, forms.ACCESSION, status)
    assert (msg["ORC.F7.R1.C5"], msg["ORC.F7.R1.C6"]) == (forms.DUE, "R")  # ORM: no TQ1
    assert (msg["OBR.F3"], msg["OBR.F32"]) == (forms.ACCESSION, assignee)
    assert ("NTE" in [str(s(0)) for s in msg]) is (control == "SC")


def test_the_omg_specialist_order_carries_the_deadline_in_tq1():
    msg = hl7.parse(FORMS["out_omg_o19_specialist_nw.hl7"]())
    assert (msg["TQ1.F8"], msg["TQ1.F9"], msg["ORC.F7"]) == (forms.DUE, "R", "")


def test_specialist_order_refuses_a_reminder_without_sc():
    from connector.hl7.assignment import build_specialist_order
    with pytest.raises(ValueError):
        build_specialist_order(control_id="X", now=forms.NOW, message_type="ORM^O01",
                               order_control="NW", case_accession=forms.ACCESSION,
                               order=forms.ORDER, assignee="", due="", reminder=True)


@pytest.mark.parametrize("name", ["out_siu_s12_follow_up.hl7", "out_orm_o01_follow_up.hl7",
                                  "out_omg_o19_follow_up.hl7"])
def test_follow_up_carries_urgency_patient_requester_accession_and_the_text(name):
    msg = hl7.parse(FORMS[name]())
    assert str(msg.segment("PID")[3][0][0]) == "IPP0012345"
    assert [str(s[3]) for s in msg.segments("NTE")] == forms.FOLLOW_UP_TEXT.split("\n")
    priority = msg.segment("TQ1")[9] if name != "out_orm_o01_follow_up.hl7" else \
        msg.segment("ORC")[7][0][5]
    assert str(priority) == "A"
    if name.startswith("out_siu"):
        sch = msg.segment("SCH")
        assert str(sch[1]) == "TD00000042^TELEDERM" and str(sch[7][0][0]) == "EMERGENCY"
        assert str(sch[12][0][0]) == "801234567897" and str(sch[20][0][0]) == "810000000001"
        assert str(sch[26]) == "CMD-2026-0042"
        assert str(msg.segment("AIS")[3][0][0]) == "urgent_visit"
    else:
        assert str(msg.segment("ORC")[2]) == "TD00000042^TELEDERM"
        assert str(msg.segment("ORC")[12][0][0]) == "801234567897"
        assert str(msg.segment("OBR")[4][0][0]) == "urgent_visit"
        assert str(msg.segment("OBR")[32]) == "810000000001"


def test_follow_up_refuses_an_unknown_form_or_urgency():
    with pytest.raises(ValueError, match="SIU"):
        build_follow_up(**{**FOLLOW_UP_ARGS, "message_type": "SRM^S01"})
    with pytest.raises(ValueError, match="urgency"):
        build_follow_up(**{**FOLLOW_UP_ARGS, "urgency": "soon"})


FOLLOW_UP_ARGS = dict(control_id="FU1", now=forms.NOW, message_type="SIU^S12", urgency="routine",
                      case_accession="TD1", order=forms.ORDER, specialist=forms.SPECIALIST,
                      conduct=("biopsy", "Biopsie"), text="x")
