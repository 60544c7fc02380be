"""The FastAPI application: routers, and one handler that renders every KeywardError as structured JSON.

``{"error": {"code": "...", "message": "...", "expected": ..., "actual": ...}}`` with the error's HTTP status;
anything unexpected is a plain 500 without a traceback in the body.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from verifier import __version__
from verifier.config import Settings, get_settings
from verifier.errors import KeywardError


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="Keyward", version=__version__, description="Remote-attestation verifier and model-key broker.")
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings

    @app.exception_handler(KeywardError)
    def keyward_error(_: Request, exc: KeywardError) -> JSONResponse:
        return JSONResponse({"error": exc.to_reason().to_json()}, status_code=exc.http_status)

    from verifier.api import admin, billing, enclave  # noqa: PLC0415 - routers import services; keep app import cheap

    app.include_router(enclave.router)
    app.include_router(admin.router)
    app.include_router(billing.router)
    return app
