"""Every documented form of an outbound message, built from fixed inputs (fixed clock, control
ids and UIDs) with the connector's own builders. `conformance/samples/out_*.hl7` hold their
exact bytes (UTF-8, segments ended by CR, no MLLP framing) and
`conformance/hl7-interface-spec.md` shows each of them.

After an intended change to a builder, rewrite the samples and review the diff:

    .venv/bin/python -m tests.support.outbound_forms --write
"""

from __future__ import annotations

import sys
from pathlib import Path

from connector.archive.client import viewer_url
from connector.billing.teleexpertise import credit_id, transaction_id
from connector.dicom.uids import report_uid, study_uid
from connector.domain.model import Charge, Order, Patient, PersonName, Practitioner, Report
from connector.hl7.ack import build_ack
from connector.hl7.assignment import build_specialist_order
from connector.hl7.dft import build_dft
from connector.hl7.errors import Hl7Error
from connector.hl7.follow_up import build_follow_up
from connector.hl7.mdm import build_mdm
from connector.hl7.order_status import build_order_status
from connector.hl7.oru import build_oru
from connector.hl7.parse import encode, parse

SAMPLES = Path(__file__).resolve().parents[2] / "conformance" / "samples"

NOW = "20261116121000"          # MSH-7 of every sample
SIGNED = "20261116120000"       # the report's signature time
ACCESSION = "TD00000042"
SENDING = ("TELEDERM", "TELEDERM")
REQUESTER_APP = ("DPI_CHU", "CHU_NIMES")
PDF = b"%PDF-1.4\n% sample: the real PDF is the signed report\n%%EOF\n"

PATIENT = Patient("IPP0012345", PersonName("LEFÈVRE", "Hélène"), "CHU_NIMES", "19720314", "F",
                  ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                  identity_status="QUAL", id_details=(("IPP0012345", "CHU_NIMES", "", "PI"),))
REQUESTER = Practitioner("801234567897", PersonName("MARTIN", "François"),
                         "1.2.250.1.71.4.2.1", id_type="IDNPS")
SPECIALIST = Practitioner("810000000001", PersonName("DURAND", "Amélie"),
                          "1.2.250.1.71.4.2.1", id_type="IDNPS")
ORDER = Order("DPI_CHU|CHU_NIMES", "CMD-2026-0042", PATIENT, REQUESTER,
              "Lésion pigmentée du dos, évolution récente")
STUDY_UID = study_uid(ORDER.sender, ORDER.placer_order_number)
VIEWER = viewer_url("http://127.0.0.1:8042", PATIENT.id, STUDY_UID)
TEXT = ("Kératose séborrhéique | lésion bénigne.\n\n"
        "Surveillance ^ simple, pas d'exérèse.\n")
CONDUCT, CONDUCT_LABEL = "no_visit", "Pas de consultation nécessaire, conseils donnés"
WITHDRAWAL = "Compte rendu saisi sur le mauvais dossier"

# The order an ACK answers (what a requester sends us).
ORDER_IN = ("MSH|^~\\&|DPI_CHU|CHU_NIMES|TELEDERM|TELEDERM|20261116115900||ORM^O01^ORM_O01|"
            "MSG-20261116-0001|P|2.5|||||FRA|UNICODE UTF-8\r"
            "PID|1||IPP0012345^^^CHU_NIMES^PI||LEFÈVRE^Hélène||19720314|F\r"
            "PV1|1|O\r"
            "ORC|NW|CMD-2026-0042^DPI_CHU|||||||20261116115500|||801234567897^MARTIN^François\r"
            "OBR|1|CMD-2026-0042^DPI_CHU||TELEDERM^Télé-expertise dermatologie^L\r")


def report(status: str) -> Report:
    return Report(TEXT, CONDUCT, SPECIALIST, SIGNED, status)


def document_uid(version: int) -> str:
    return report_uid(STUDY_UID, version)


def _ack(code: str, errors: list[Hl7Error]) -> str:
    return build_ack(parse(ORDER_IN.encode("utf-8")), code, errors, "A0123456789abcdef01", NOW)


def _oru(status: str, control_id: str) -> str:
    return build_oru(control_id=control_id, now=NOW, case_accession=ACCESSION,
                     study_uid=STUDY_UID, order=ORDER, report=report(status),
                     conduct_label=CONDUCT_LABEL, pdf=PDF, viewer_url=VIEWER, sending=SENDING,
                     receiving=REQUESTER_APP)


def _mdm(status: str, control_id: str, version: int) -> str:
    return build_mdm(control_id=control_id, now=NOW, case_accession=ACCESSION,
                     study_uid=STUDY_UID, order=ORDER, report=report(status),
                     conduct_label=CONDUCT_LABEL, pdf=PDF, viewer_url=VIEWER,
                     document_id=document_uid(version),
                     parent_document_id=document_uid(version - 1) if status == "C" else "",
                     change_reason=WITHDRAWAL if status == "D" else "", namespace="TELEDERM",
                     sending=SENDING, receiving=REQUESTER_APP)


def _status(message_type: str, control: str, status: str, suffix: str, *,
            reason=("", ""), action_by=None) -> str:
    return build_order_status(control_id=f"ST{ACCESSION}{suffix}", now=NOW,
                              message_type=message_type, order_control=control,
                              order_status=status, case_accession=ACCESSION, order=ORDER,
                              reason=reason, action_by=action_by, sending=SENDING,
                              receiving=REQUESTER_APP)


DUE = "20261116161000"  # the answer deadline (TQ1-8) of the specialist-side samples
ASSIGNEE, REPLACEMENT = "810001234567", "810009876543"


def _specialist(message_type: str, control: str, suffix: str, assignee: str = ASSIGNEE) -> str:
    return build_specialist_order(
        control_id=f"SP{ACCESSION}{suffix}", now=NOW, message_type=message_type,
        order_control=control, case_accession=ACCESSION, order=ORDER, assignee=assignee,
        due=DUE, reminder=control == "SC", sending=SENDING, receiving=("spec-chu", ""))


FOLLOW_UP_TEXT = "Lésion suspecte de mélanome.\nExérèse à programmer rapidement."


def _follow_up(message_type: str) -> str:
    return build_follow_up(
        control_id=f"FU{ACCESSION}V1", now=NOW, message_type=message_type, urgency="urgent",
        case_accession=ACCESSION, order=ORDER, specialist=SPECIALIST,
        conduct=("urgent_visit", "Consultation de dermatologie urgente, dans les jours à venir"),
        text=FOLLOW_UP_TEXT, sending=SENDING, receiving=("rdv-chu", ""))


def _charges(kind: str) -> list[Charge]:
    te2 = transaction_id(ACCESSION, "TE2", "CG")
    rqd = transaction_id(ACCESSION, "RQD", "CG")
    if kind == "CG":
        return [Charge(te2, "TE2", "requis", 2300, "CG", SIGNED[:8], SPECIALIST),
                Charge(rqd, "RQD", "requerant", 1000, "CG", SIGNED[:8], REQUESTER, REQUESTER)]
    return [Charge(credit_id(te2), "TE2", "requis", 2300, "CD", SIGNED[:8], SPECIALIST),
            Charge(credit_id(rqd), "RQD", "requerant", 1000, "CD", SIGNED[:8], REQUESTER,
                   REQUESTER)]


def _dft(kind: str, control_id: str) -> str:
    return build_dft(control_id=control_id, now=NOW, order=ORDER, accession=ACCESSION,
                     charges=_charges(kind), sending=SENDING, receiving=("COMPTA", "CHU_NIMES"),
                     labels={"TE2": "Télé-expertise (requis)",
                             "RQD": "Demande de télé-expertise (requérant)"})


# file name -> how it is built; the spec shows them in this order.
FORMS = {
    "out_ack_aa.hl7": lambda: _ack("AA", []),
    "out_ack_ae.hl7": lambda: _ack("AE", [Hl7Error(
        "patient identifier list has no usable identifier", hl7_code=101, location="PID^1^3",
        hint="send the IPP in PID-3 with its assigning authority")]),
    "out_ack_ar.hl7": lambda: _ack("AR", [Hl7Error(
        "internal error while accepting the message", hl7_code=207, hint="resend later")]),
    "out_oru_r01_final.hl7": lambda: _oru("F", f"ORU{ACCESSION}V1"),
    "out_oru_r01_corrected.hl7": lambda: _oru("C", f"ORU{ACCESSION}V2"),
    "out_oru_r01_withdrawn.hl7": lambda: _oru("D", f"ORU{ACCESSION}W2"),
    "out_mdm_t02.hl7": lambda: _mdm("F", f"MDM{ACCESSION}V1", 1),
    "out_mdm_t10.hl7": lambda: _mdm("C", f"MDM{ACCESSION}V2", 2),
    "out_mdm_t04.hl7": lambda: _mdm("D", f"MDM{ACCESSION}W2", 2),
    "out_orm_o01_ok.hl7": lambda: _status("ORM^O01", "OK", "SC", "OK"),
    "out_orm_o01_sc_ip.hl7": lambda: _status("ORM^O01", "SC", "IP", "IP"),
    "out_orm_o01_sc_cm.hl7": lambda: _status("ORM^O01", "SC", "CM", "CMV1"),
    "out_orm_o01_cr.hl7": lambda: _status("ORM^O01", "CR", "CA", "CR"),
    "out_orm_o01_oc.hl7": lambda: _status(
        "ORM^O01", "OC", "CA", "OC", reason=("DECLINED", "Photos floues, nouvelle demande "
                                                          "avec des photos nettes"),
        action_by=SPECIALIST),
    "out_orm_o01_ua.hl7": lambda: build_order_status(
        control_id="RJ5f0c2e9a81d4b7c3e2", now=NOW, message_type="ORM^O01",
        order_control="UA", order_status="", case_accession="", order=ORDER,
        reason=("205", "this placer order number already has a case"),
        reason_system="HL70357", sending=SENDING, receiving=REQUESTER_APP),
    "out_omg_o19_ok.hl7": lambda: _status("OMG^O19", "OK", "SC", "OK"),
    "out_oru_r01_oc.hl7": lambda: _status("ORU^R01", "OC", "CA", "OC",
                                          reason=("CANCELLED", "Demande en double")),
    "out_orm_o01_specialist_nw.hl7": lambda: _specialist("ORM^O01", "NW", "A1"),
    "out_orm_o01_specialist_xo.hl7": lambda: _specialist("ORM^O01", "XO", "A2", REPLACEMENT),
    "out_orm_o01_specialist_ca.hl7": lambda: _specialist("ORM^O01", "CA", "A3"),
    "out_orm_o01_specialist_reminder.hl7": lambda: _specialist("ORM^O01", "SC", "R4"),
    "out_omg_o19_specialist_nw.hl7": lambda: _specialist("OMG^O19", "NW", "A1"),
    "out_siu_s12_follow_up.hl7": lambda: _follow_up("SIU^S12"),
    "out_orm_o01_follow_up.hl7": lambda: _follow_up("ORM^O01"),
    "out_omg_o19_follow_up.hl7": lambda: _follow_up("OMG^O19"),
    "out_dft_p03_charge.hl7": lambda: _dft("CG", f"DFT{ACCESSION}N1"),
    "out_dft_p03_credit.hl7": lambda: _dft("CD", f"DFT{ACCESSION}N2"),
}


def wire(name: str) -> bytes:
    """The bytes the connector sends for form `name` (as the outbox worker encodes them)."""
    return encode(FORMS[name]())


def write_samples() -> None:
    for name in FORMS:
        (SAMPLES / name).write_bytes(wire(name))
        print(SAMPLES / name)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.support.outbound_forms --write"
                 "   (rewrites conformance/samples/out_*.hl7)")
    write_samples()
