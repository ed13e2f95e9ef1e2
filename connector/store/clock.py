"""Timestamps as stored: ISO 8601 UTC strings with microseconds, which sort as text."""

import datetime as dt


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
