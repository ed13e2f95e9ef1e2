"""The case state machine: allowed transitions move the case, all others are a StateConflict."""

import itertools

import pytest

from connector.domain.errors import ConnectorError, DomainError, StateConflict
from connector.domain.model import Case, Order, Patient, PersonName, Practitioner
from connector.domain.states import TRANSITIONS, CaseEvent, CaseStatus, next_status

S, E = CaseStatus, CaseEvent

ALLOWED = [
    (S.OPEN, E.IMAGE_RECEIVED, S.IMAGES_PENDING),
    (S.IMAGES_PENDING, E.IMAGE_RECEIVED, S.IMAGES_PENDING),
    (S.IMAGES_PENDING, E.IMAGES_STABLE, S.READY),
    (S.READY, E.IMAGE_RECEIVED, S.IMAGES_PENDING),
    (S.READY, E.IMAGES_STABLE, S.READY),
    (S.READY, E.REVIEW_STARTED, S.IN_REVIEW),
    (S.IN_REVIEW, E.IMAGE_RECEIVED, S.IN_REVIEW),
    (S.IN_REVIEW, E.IMAGES_STABLE, S.IN_REVIEW),
    (S.READY, E.REPORT_FINAL, S.ANSWERED),
    (S.IN_REVIEW, E.REPORT_FINAL, S.ANSWERED),
    (S.ANSWERED, E.IMAGES_STABLE, S.ANSWERED),
    (S.ANSWERED, E.REPORT_CORRECTED, S.AMENDED),
    (S.AMENDED, E.REPORT_CORRECTED, S.AMENDED),
    (S.AMENDED, E.IMAGES_STABLE, S.AMENDED),
    (S.ANSWERED, E.CLOSE, S.CLOSED),
    (S.AMENDED, E.CLOSE, S.CLOSED),
    (S.ANSWERED, E.REPORT_WITHDRAWN, S.IN_REVIEW),
    (S.AMENDED, E.REPORT_WITHDRAWN, S.IN_REVIEW),
    (S.ANSWERED, E.CANCEL, S.CANCELLED),
    (S.AMENDED, E.CANCEL, S.CANCELLED),
    (S.OPEN, E.ACT_REPORTED, S.ANSWERED),
] + [(s, E.CANCEL, S.CANCELLED) for s in (S.OPEN, S.IMAGES_PENDING, S.READY, S.IN_REVIEW)] \
  + [(s, E.REFUSE, S.REJECTED) for s in (S.OPEN, S.IMAGES_PENDING, S.READY, S.IN_REVIEW)]

ALLOWED_PAIRS = {(s, e) for s, e, _ in ALLOWED}
REFUSED = [(s, e) for s, e in itertools.product(CaseStatus, CaseEvent) if (s, e) not in ALLOWED_PAIRS]


def new_case(status: CaseStatus) -> Case:
    order = Order("EHR|SITE", "P1", Patient("IPP1", PersonName("DUPONT", "Jean")),
                  Practitioner("801234567897", PersonName("MARTIN")), "question")
    return Case("TD00000001", "1.2.3", order, status=status)


@pytest.mark.parametrize("state, event, expected", ALLOWED,
                         ids=[f"{s.value}-{e.value}" for s, e, _ in ALLOWED])
def test_next_status_follows_the_table_when_transition_is_allowed(state, event, expected):
    assert next_status(state, event) is expected


def test_transition_table_lists_exactly_the_designed_transitions_when_read_whole():
    assert {(s, e): n for s, e, n in ALLOWED} == TRANSITIONS


@pytest.mark.parametrize("state, event", REFUSED, ids=[f"{s.value}-{e.value}" for s, e in REFUSED])
def test_next_status_raises_state_conflict_when_transition_is_not_listed(state, event):
    with pytest.raises(StateConflict) as exc:
        next_status(state, event)
    assert exc.value.where == "case.status"
    assert state.value in exc.value.text and event.value in exc.value.text


@pytest.mark.parametrize("final", [S.CLOSED, S.CANCELLED, S.REJECTED])
def test_final_states_accept_no_event_when_case_is_finished(final):
    for event in CaseEvent:
        with pytest.raises(StateConflict):
            next_status(final, event)


def test_state_conflict_is_a_domain_error_rendered_as_409_when_raised():
    with pytest.raises(DomainError) as exc:
        next_status(S.OPEN, E.REPORT_FINAL)
    error = exc.value
    assert isinstance(error, ConnectorError)
    assert (error.code, error.http_status) == ("state-conflict", 409)
    assert error.hint
    assert error.one_line().startswith("a case in state OPEN does not accept 'report_final' (case.status): ")


@pytest.mark.parametrize("state", [S.OPEN, S.IMAGES_PENDING])
def test_a_report_is_refused_while_the_images_are_not_stable(state):
    with pytest.raises(StateConflict):
        new_case(state).apply(E.REPORT_FINAL)


def test_case_apply_leaves_status_and_events_unchanged_when_transition_is_refused():
    case = new_case(S.CLOSED)
    with pytest.raises(StateConflict):
        case.apply(E.IMAGE_RECEIVED)
    assert case.status is S.CLOSED
    assert case.events == []


def test_case_answered_after_a_cancel_is_refused_when_case_was_cancelled():
    case = new_case(S.READY)
    case.apply(E.CANCEL)
    with pytest.raises(StateConflict):
        case.apply(E.REPORT_FINAL)
    assert case.status is S.CANCELLED


def test_withdrawn_answer_puts_the_case_back_in_review_and_it_can_be_answered_again():
    case = new_case(S.ANSWERED)
    assert case.apply(E.REPORT_WITHDRAWN) is S.IN_REVIEW
    assert case.apply(E.REPORT_FINAL) is S.ANSWERED
    assert [(e, old, new) for e, old, new in case.events] == [
        (E.REPORT_WITHDRAWN, S.ANSWERED, S.IN_REVIEW), (E.REPORT_FINAL, S.IN_REVIEW, S.ANSWERED)]


def test_answered_act_can_be_cancelled_but_a_closed_one_cannot():
    assert new_case(S.ANSWERED).apply(E.CANCEL) is S.CANCELLED
    assert new_case(S.AMENDED).apply(E.CANCEL) is S.CANCELLED
    with pytest.raises(StateConflict):
        new_case(S.CLOSED).apply(E.CANCEL)


def test_act_reported_done_completes_a_new_case_only():
    assert new_case(S.OPEN).apply(E.ACT_REPORTED) is S.ANSWERED
    with pytest.raises(StateConflict):
        new_case(S.READY).apply(E.ACT_REPORTED)
