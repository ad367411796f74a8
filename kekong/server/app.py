"""The FastAPI application: A1111 routes, ControlNet routes, kekong's job API and the UI,
behind one guard (host, origin, API key, body cap). Errors a client can fix are 4xx with a
message that names the field; nothing a client sends yields a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kekong import __version__
from kekong.errors import KekongError, MissingWeightsError
from kekong.server.config import ServerConfig
from kekong.server.security import Guard
from kekong.server.services import Services
from kekong.server.store import QueueFull

log = logging.getLogger("kekong.server")


def create_app(config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    config.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.start(config)
        try:
            yield
        finally:
            app.state.services.stop()

    app = FastAPI(title="kekong", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Controllable image generation: A1111-compatible routes, ControlNet routes and "
                              "kekong's job API.")
    from kekong.server import a1111, a1111_extra, controlnet, jobs, local, openapi, video_jobs

    app.include_router(a1111.router)
    app.include_router(a1111_extra.router)
    app.include_router(controlnet.router)
    app.include_router(video_jobs.router)  # before jobs: /v1/jobs/video is not a job id
    app.include_router(jobs.router)
    app.include_router(local.router)  # `kekong generate` on this machine (runtime-file token, loopback only)
    _error_handlers(app)
    _offline_docs(app)
    openapi.install(app, config)

    @app.get("/health", tags=["server"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.state.store_dir = config.store_dir()
    app.state.limits = config.limits  # the UI's sliders show this server's narrowed bounds
    if config.ui:
        from kekong.ui.app import mount_ui

        mount_ui(app, app.state.store_dir)
    app.add_middleware(Guard, config=config)
    return app


def _offline_docs(app: FastAPI) -> None:
    """/docs with swagger-ui's files from the swagger-ui-bundle wheel: it works with no network."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="kekong API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """404 for no such job, 409 for a job in the wrong state, 404/405 for no such route: the same
        body as every other error (openapi.ErrorBody)."""
        return JSONResponse({"error": HTTPStatus(error.status_code).phrase.lower(), "detail": str(error.detail)},
                            status_code=error.status_code, headers=error.headers)

    @app.exception_handler(QueueFull)
    async def full(request: Request, error: QueueFull) -> JSONResponse:
        return JSONResponse({"error": "queue full", "detail": str(error)}, status_code=429,
                            headers={"Retry-After": str(error.retry_after)})

    @app.exception_handler(MissingWeightsError)
    async def missing(request: Request, error: MissingWeightsError) -> JSONResponse:
        return JSONResponse({"error": "not found", "detail": str(error)}, status_code=404)

    @app.exception_handler(KekongError)
    async def invalid(request: Request, error: KekongError) -> JSONResponse:
        return JSONResponse({"error": "invalid request", "detail": str(error)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        parts = []
        for item in error.errors():
            if item.get("type") == "json_invalid":
                error_text = (item.get("ctx") or {}).get("error", "")
                parts.append(f"body: malformed JSON at character {item['loc'][-1]} ({error_text})")
                continue
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {str(item.get('msg', '')).removeprefix('Value error, ')}")
        return JSONResponse({"error": "invalid request", "detail": "; ".join(parts)}, status_code=422)
