"""`GET /api/cases` pages: 250 cases opened over MLLP are listed through `Link: rel="next"`,
each once, with `X-Total-Count` on every page, in both sorts, over the real HTTP socket."""

from __future__ import annotations

import re

import pytest

from connector.demo import demo_order
from connector.hl7.client import send_message

_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')


def _walk(api, params: dict) -> tuple[list[str], set[str], int]:
    """Follow the Link headers from the first page; the accessions in page order."""
    seen, totals, pages = [], set(), 0
    r = api.get("/api/cases", params=params)
    while True:
        assert r.status_code == 200, r.text
        pages += 1
        seen += [c["accession"] for c in r.json()]
        totals.add(r.headers["X-Total-Count"])
        link = r.headers.get("Link")
        if link is None:
            return seen, totals, pages
        (url,) = _NEXT.findall(link)
        r = api.get(url)


@pytest.fixture(scope="module")
def many_cases(channels):
    before = int(channels.api.get("/api/cases", params={"limit": 1}).headers["X-Total-Count"])
    for n in range(250):
        ack = send_message("127.0.0.1", channels.running.hl7_port,
                           demo_order(f"PAGE-{n}", f"PL-PAGE-{n:03d}"))
        assert ack.code == "AA", ack.code
    return before + 250


@pytest.mark.parametrize("sort", ["created", "triage"])
def test_every_case_is_listed_once_through_the_next_links(channels, many_cases, sort):
    whole = [c["accession"] for c in channels.api.get(
        "/api/cases", params={"sort": sort, "limit": 1000}).json()]
    seen, totals, pages = _walk(channels.api, {"sort": sort, "limit": 40})
    assert len(whole) == many_cases and totals == {str(many_cases)}
    assert seen == whole and len(set(seen)) == many_cases
    assert pages == -(-many_cases // 40)


def test_filters_hold_across_pages_and_count_only_what_matches(channels, many_cases):
    seen, totals, _ = _walk(channels.api, {"placer_order_number": "PL-PAGE-007", "limit": 1})
    assert len(seen) == 1 and totals == {"1"}


def test_a_bad_cursor_is_a_problem_naming_the_cursor(channels, many_cases):
    r = channels.api.get("/api/cases", params={"cursor": "forged"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "cursor"


def test_the_paging_headers_are_in_the_openapi_schema(channels):
    schema = channels.api.get("/openapi.json").json()
    answer = schema["paths"]["/api/cases"]["get"]["responses"]["200"]
    assert {"X-Total-Count", "Link"} <= set(answer["headers"])
    assert "cursor" in {p["name"] for p in schema["paths"]["/api/cases"]["get"]["parameters"]}
