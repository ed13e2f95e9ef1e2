"""What every route depends on: the composition root's services, hung on the app."""

from __future__ import annotations

from fastapi import Request

from ...bootstrap import Services


def services(request: Request) -> Services:
    return request.app.state.services
