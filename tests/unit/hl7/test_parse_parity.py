"""Our position reader gives python-hl7's answers (property test).

`connector.hl7.parse` splits messages itself, for speed (a tenth of python-hl7's parse time)
and because python-hl7 logs the value of a field whose escape sequence it cannot read. These
properties hold it to python-hl7's `extract_field` rules on messages built from delimiters,
escape sequences and text, at every position up to two past what the message has.
"""

from __future__ import annotations

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.hl7.parse import Location, parse

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # python-hl7 warn()
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
HEADER = "MSH|^~\\&|APP|FAC|TD|TD|20260101120000||ORM^O01|C1|P|2.5|||||UNICODE UTF-8"

# Escapes python-hl7 reads without raising or logging: delimiters, hex, formatting, highlight.
ESCAPES = ["\\F\\", "\\S\\", "\\T\\", "\\R\\", "\\E\\", "\\X41\\", "\\X0D\\", "\\.br\\",
           "\\.sp3\\", "\\H\\", "\\N\\", "\\Zfoo\\", "\\Cxxyy\\", "\\\\"]
atoms = st.sampled_from(["a", "Zoé", " ", "12", "^", "&", "~", "", "x y"] + ESCAPES)
fields = st.lists(atoms, max_size=6).map("".join)
# A segment with no field at all ("PID") is not one python-hl7 recognises by its id; ours
# does. Generated segments have at least one field.
segments = st.tuples(st.sampled_from(["PID", "OBR", "NTE", "OBX", "ZZ1"]),
                     st.lists(fields, min_size=1, max_size=7))


def _oracle(message: hl7.Message, loc: Location) -> str:
    """The reader this module replaced: python-hl7's tree and `extract_field`."""
    found = [seg for seg in message if seg[0][0] == loc.segment]
    if loc.occurrence > len(found):
        return ""
    seg = found[loc.occurrence - 1]
    if not loc.field or loc.field >= len(seg) or loc.repetition > len(seg(loc.field)):
        return ""
    try:
        return seg.extract_field(loc.occurrence, loc.field, loc.repetition, loc.component or 1,
                                 loc.subcomponent or 1)
    except IndexError:
        return ""


@SETTINGS
@given(st.lists(segments, min_size=1, max_size=4))
def test_value_matches_python_hl7_when_fields_hold_delimiters_and_escapes(segs):
    lines = [HEADER] + ["|".join([seg_id, *values]) for seg_id, values in segs]
    text = "\r".join(lines)
    ours, theirs = parse(text.encode("utf-8")), hl7.parse(text)
    for seg_id in {"MSH", *(seg_id for seg_id, _ in segs)}:
        count = sum(1 for s, _ in segs if s == seg_id) or 1
        for occurrence in range(1, count + 2):
            width = max([len(v) for s, v in segs if s == seg_id] + [18]) + 2
            for field in range(1, width + 1):
                for rep in (1, 2, 3):
                    for comp in (0, 1, 2, 3):
                        for sub in (0, 1, 2):
                            loc = Location(seg_id, occurrence, field, rep, comp, sub)
                            assert ours.value(loc) == _oracle(theirs, loc), str(loc)


@SETTINGS
@given(st.lists(fields, min_size=1, max_size=5))
def test_repetitions_and_components_match_python_hl7_when_fields_repeat(values):
    text = "\r".join([HEADER, "|".join(["NTE", *values])])
    ours, theirs = parse(text.encode("utf-8")), hl7.parse(text)
    for field in range(1, len(values) + 2):
        loc = Location("NTE", field=field)
        seg = theirs.segment("NTE")
        count = len(seg(field)) if field < len(seg) else 0
        assert ours.repetitions(loc) == [
            _oracle(theirs, Location("NTE", 1, field, rep)) for rep in range(1, count + 1)]
        if count:
            rep = seg(field)(1)
            width = len(rep) if isinstance(rep, hl7.Repetition) else 1
            expected = tuple(_oracle(theirs, Location("NTE", 1, field, 1, c))
                             for c in range(1, width + 1))
            assert ours.components(loc) == (expected if any(expected) else ())
