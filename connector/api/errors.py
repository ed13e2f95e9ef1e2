"""Every error leaves the API as application/problem+json (RFC 9457), never echoing the body."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..domain.errors import ConnectorError

PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, instance: str, *, field: str = "",
            hint: str = "", headers: dict | None = None) -> JSONResponse:
    body = {"type": f"https://telederm.invalid/problems/{code}", "title": title, "status": status,
            "detail": detail, "instance": instance}
    if field:
        body["field"] = field
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


# Codes whose HTTP status is more precise than their class's.
STATUS_BY_CODE = {"too-large": 413, "unsupported-type": 415}


async def connector_error(request: Request, exc: ConnectorError) -> JSONResponse:
    status = STATUS_BY_CODE.get(exc.code, exc.http_status)
    headers = {"Retry-After": "30"} if status == 503 else None
    return problem(status, exc.code, exc.code.replace("-", " "), exc.text,
                   request.url.path, field=exc.where, hint=exc.hint, headers=headers)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return problem(422, "invalid-request", "invalid request",
                   f"{loc or 'request'}: {first.get('msg', 'invalid')}", request.url.path,
                   field=loc, hint="see the API schema at /docs")


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
            413: "too-large"}.get(exc.status_code, "http-error")
    return problem(exc.status_code, code, code.replace("-", " "), str(exc.detail),
                   request.url.path, headers=getattr(exc, "headers", None))
