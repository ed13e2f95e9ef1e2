"""The atheris entry points of fuzz/ run over their seed corpora, without atheris (issue 5,
item 5): the harness cannot rot unnoticed, and every seed (crash inputs found by fuzzing
included, as regressions) is answered with a result or an expected error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[3] / "fuzz"
ENTRY_POINTS = {"fuzz_hl7": ("mllp", "parse", "orm"), "fuzz_images": ("sniff", "read")}


def harness(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
        module = sys.modules.setdefault(name, importlib.util.module_from_spec(spec))
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_harness_imports_without_atheris_and_lists_its_entry_points(name):
    module = harness(name)
    assert tuple(module.TARGETS) == ENTRY_POINTS[name]
    assert "atheris" not in sys.modules


@pytest.mark.parametrize("name,target", [(n, t) for n, ts in ENTRY_POINTS.items() for t in ts])
def test_entry_point_answers_every_seed(name, target):
    module = harness(name)
    seeds = module.seeds(target)
    assert len(seeds) >= 20
    for seed in seeds:
        module.TARGETS[target](seed)  # anything but an expected error fails the test
