"""Each outbound message is byte for byte one of the documented forms: the builders, fed the fixed
inputs of `outbound_forms` (fixed clock, control ids, UIDs), give exactly the bytes of
`conformance/samples/out_*.hl7`, and the interface specification shows every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import outbound_forms as forms

SPEC = Path(__file__).resolve().parents[3] / "conformance" / "hl7-interface-spec.md"


@pytest.mark.parametrize("name", list(forms.FORMS))
def test_builder_output_is_the_sample_byte_for_byte(name):
    sample = (forms.SAMPLES / name).read_bytes()
    assert forms.wire(name) == sample, (
        f"{name} changed; if intended, run `python -m tests.support.outbound_forms --write` "
        "and update conformance/hl7-interface-spec.md")


def test_every_outbound_sample_is_a_documented_form():
    on_disk = {p.name for p in forms.SAMPLES.glob("out_*.hl7")}
    assert on_disk == set(forms.FORMS)


@pytest.mark.parametrize("name", list(forms.FORMS))
def test_the_spec_shows_each_sample_verbatim(name):
    spec = SPEC.read_text(encoding="utf-8")
    assert f"samples/{name}" in spec
    shown = (forms.SAMPLES / name).read_bytes().decode("utf-8").replace("\r", "\n")
    assert f"```\n{shown}```" in spec, f"{name} is not shown as it is in the spec"
