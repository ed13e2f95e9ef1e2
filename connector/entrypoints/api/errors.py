"""Every error leaves the API as application/problem+json (RFC 9457), never echoing the body."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ...domain.errors import ConnectorError

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
    if loc.split(".")[0] == "file" and _is_upload(request):
        return problem(422, "invalid-request", "invalid request",
                       _file_part_problem(request, first), request.url.path, field="file",
                       hint=UPLOAD_HINT)
    return problem(422, "invalid-request", "invalid request",
                   f"{loc or 'request'}: {first.get('msg', 'invalid')}", request.url.path,
                   field=loc, hint="see the API schema at /docs")


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = {400: "invalid-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
            405: "method-not-allowed", 408: "request-timeout", 413: "too-large"
            }.get(exc.status_code, "http-error")
    hint = HTTP_HINTS.get(exc.status_code, "")
    if exc.status_code == 400 and _is_upload(request):  # the multipart body could not be parsed
        hint = UPLOAD_HINT
    return problem(exc.status_code, code, code.replace("-", " "), str(exc.detail),
                   request.url.path, hint=hint, headers=getattr(exc, "headers", None))


HTTP_HINTS = {
    400: "see the API schema at /docs",
    401: "send 'Authorization: Bearer <token>', a token from [[api.tokens]] in the configuration",
    403: "use a token whose role may do this (see [[api.tokens]] role)",
    404: "see the API schema at /docs",
    405: "see the API schema at /docs",
}
UPLOAD_HINT = ("send multipart/form-data with each photo in a file part named 'file' "
               "(e.g. curl -F file=@photo.jpg)")


def _is_upload(request: Request) -> bool:
    return request.method == "POST" and request.url.path.rstrip("/").endswith("/images")


def _file_part_problem(request: Request, error: dict) -> str:
    """Why an upload has no usable 'file' part, in the sender's terms."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        sent = content_type or "sent without a Content-Type"
        return f"the request body is {sent}, not multipart/form-data with a part named 'file'"
    if error.get("type") == "missing":
        return "the form has no part named 'file'"
    return "the part named 'file' is a text field, not a file (it has no filename)"
