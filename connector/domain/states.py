"""The case state machine as a (state, event) -> state table, as pynetdicom's fsm.py does.

OPEN -> IMAGES_PENDING -> READY -> IN_REVIEW -> ANSWERED -> CLOSED, plus CANCELLED, REJECTED
and AMENDED. An event the table does not list for the current state is a StateConflict.

Billing-related transitions:
- `report_withdrawn` (ANSWERED or AMENDED -> IN_REVIEW): the specialist takes the answer back
  (wrong patient, wrong case...). The act's charges are credited and the requester is told
  (ORU, OBX-11 D); the case waits for an answer again, and a new final report is a new act,
  billed in a new billing round.
- `cancel` is also accepted from ANSWERED and AMENDED: the requester cancels an act that was
  already answered (ORC-1 CA), so what was charged is credited. A CLOSED case stays closed.
- `act_reported` (OPEN -> ANSWERED): a teleconsultation the EHR reports as done opens its case
  and completes it at once (no image flow); it is charged in the same transaction.
"""

from __future__ import annotations

import enum

from .errors import StateConflict


class CaseStatus(str, enum.Enum):
    OPEN = "OPEN"
    IMAGES_PENDING = "IMAGES_PENDING"
    READY = "READY"
    IN_REVIEW = "IN_REVIEW"
    ANSWERED = "ANSWERED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    AMENDED = "AMENDED"


class CaseEvent(str, enum.Enum):
    IMAGE_RECEIVED = "image_received"      # an image was accepted and queued for the archive
    IMAGES_STABLE = "images_stable"        # the archive reports the study stable
    REVIEW_STARTED = "review_started"
    REPORT_FINAL = "report_final"
    REPORT_CORRECTED = "report_corrected"
    CLOSE = "close"
    CANCEL = "cancel"
    REFUSE = "refuse"
    REPORT_WITHDRAWN = "report_withdrawn"  # the specialist takes a final answer back
    ACT_REPORTED = "act_reported"          # the EHR reports a teleconsultation as done


S, E = CaseStatus, CaseEvent

TRANSITIONS: dict[tuple[CaseStatus, CaseEvent], CaseStatus] = {
    (S.OPEN, E.IMAGE_RECEIVED): S.IMAGES_PENDING,
    (S.IMAGES_PENDING, E.IMAGE_RECEIVED): S.IMAGES_PENDING,
    (S.IMAGES_PENDING, E.IMAGES_STABLE): S.READY,
    (S.READY, E.IMAGE_RECEIVED): S.IMAGES_PENDING,
    (S.READY, E.IMAGES_STABLE): S.READY,
    (S.READY, E.REVIEW_STARTED): S.IN_REVIEW,
    (S.IN_REVIEW, E.IMAGE_RECEIVED): S.IN_REVIEW,
    (S.IN_REVIEW, E.IMAGES_STABLE): S.IN_REVIEW,
    # A dermatologist answers once the images are stable (READY), with or without an explicit
    # review step; while images are still arriving the answer could miss one of them.
    (S.READY, E.REPORT_FINAL): S.ANSWERED,
    (S.IN_REVIEW, E.REPORT_FINAL): S.ANSWERED,
    (S.ANSWERED, E.IMAGES_STABLE): S.ANSWERED,
    (S.ANSWERED, E.REPORT_CORRECTED): S.AMENDED,
    (S.AMENDED, E.REPORT_CORRECTED): S.AMENDED,
    (S.AMENDED, E.IMAGES_STABLE): S.AMENDED,
    (S.ANSWERED, E.CLOSE): S.CLOSED,
    (S.AMENDED, E.CLOSE): S.CLOSED,
    (S.ANSWERED, E.REPORT_WITHDRAWN): S.IN_REVIEW,
    (S.AMENDED, E.REPORT_WITHDRAWN): S.IN_REVIEW,
    (S.ANSWERED, E.CANCEL): S.CANCELLED,
    (S.AMENDED, E.CANCEL): S.CANCELLED,
    (S.OPEN, E.ACT_REPORTED): S.ANSWERED,
}
# Cases whose images may still be arriving: they take no report yet (an answer could miss an
# image), only a decline or a cancel.
IMAGES_NOT_STABLE = (S.OPEN, S.IMAGES_PENDING)
# The cases a dermatologist still has to answer (or decline): the worklist's.
AWAITING_ANSWER = (S.OPEN, S.IMAGES_PENDING, S.READY, S.IN_REVIEW)
for _s in AWAITING_ANSWER:
    TRANSITIONS[(_s, E.CANCEL)] = S.CANCELLED
    TRANSITIONS[(_s, E.REFUSE)] = S.REJECTED


def next_status(current: CaseStatus, event: CaseEvent) -> CaseStatus:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise StateConflict(
            f"a case in state {current.value} does not accept '{event.value}'",
            where="case.status",
            hint="check the case status with GET /api/cases/{accession}",
        ) from None
