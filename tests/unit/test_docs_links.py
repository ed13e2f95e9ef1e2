"""The guides' links lead somewhere: every relative link of README.md, CHANGELOG.md and docs/
names an existing file (and, with `#anchor`, one of its headings as GitHub spells anchors);
a screenshot under tests/artifacts/ is one a browser test writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
ARTIFACTS = ROOT / "tests" / "artifacts"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def links() -> list[tuple[Path, str]]:
    return [(page, target) for page in PAGES
            for target in LINK.findall(page.read_text(encoding="utf-8"))
            if not target.startswith(("http://", "https://", "mailto:"))]


def written_by_a_test(artifact: Path) -> bool:
    return any(artifact.name in p.read_text(encoding="utf-8")
               for p in (ROOT / "tests" / "integration").rglob("*.py"))


@pytest.mark.parametrize("page,target", links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_a_relative_link_names_an_existing_file_and_heading(page, target):
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if file.is_relative_to(ARTIFACTS):
        assert written_by_a_test(file), f"{page.name}: no test writes {target}"
        return
    assert file.exists(), f"{page.name}: {target} does not exist"
    if anchor:
        assert anchor in anchors(file), f"{page.name}: no heading #{anchor} in {file.name}"
