"""The HTTP API: the app, its guard (sizes, slow clients), its error rendering
(problem+json) and its routers (`routes/`); the people's pages (`entrypoints/ui/`) are mounted
on the same app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from ... import __version__
from ...bootstrap import Services
from ...domain.errors import ConnectorError
from . import errors
from .auth import token_table
from .guard import MIB, HttpLimits, RequestGuard
from .headers import SecurityHeaders
from ..ui import pages
from ..ui.session import PageDenied
from ..ui.throttle import LoginThrottle
from .routes import cases, health, images, internal, reports, routing

ROUTERS = (health.router, cases.router, routing.router, images.router, reports.router,
           internal.router, pages.router)


def create_app(services: Services, *, limits: HttpLimits | None = None) -> FastAPI:
    limits = limits or HttpLimits()
    # /docs and /redoc from assets shipped in a package (no CDN: hospital networks are often
    # offline); no validator badge, which swagger-ui would fetch from its public validator.
    app = FastAPIOffline(title="TeleDerm Connector", version=__version__,
                         swagger_ui_parameters={"validatorUrl": None})
    app.state.services = services
    app.state.tokens = token_table(services)
    app.state.login_throttle = LoginThrottle()  # failed logins slow the next ones down
    app.add_middleware(RequestGuard, limits=limits,
                       upload_limit=services.config.images.max_mb * MIB
                       + limits.upload_overhead_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: refusals of the guard get them too
    app.add_exception_handler(ConnectorError, errors.connector_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    app.add_exception_handler(PageDenied, pages.denied)
    for router in ROUTERS:
        app.include_router(router)
    return app
