"""The HTTP application of `taskzoo serve` (FastAPI on Starlette): a JSON endpoint per task
in the style of Hugging Face's inference API, the task list, health, the web page, and
errors as 4xx JSON that name the problem."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskzoo.errors import InputError, TaskzooError, UnknownNameError, did_you_mean
from taskzoo.serve.inputs import (
    Limits,
    Payload,
    RequestError,
    parse_form_parameters,
    parse_json,
    read_body,
)
from taskzoo.serve.served import ServedTask

PAGE = Path(__file__).resolve().parent / "page"  # the web page's files, shipped in the package
PAGE_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
              ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
log = logging.getLogger("taskzoo.serve")


def make_app(predictors: Mapping[str, Any], *, limits: Limits = Limits(), max_batch: int = 32,
             max_wait_ms: float = 5.0, descriptions: Mapping[str, str] | None = None) -> FastAPI:
    """The server's application for ready predictors, by the task name they are served as.
    `max_batch=1, max_wait_ms=0` answers one request at a time (no batching).

    >>> app = make_app({"sentiment": taskzoo.load("sentiment")})         # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                    # doctest: +SKIP
    """
    served = {name: ServedTask(name, p, limits=limits, max_batch=max_batch,
                               max_wait_ms=max_wait_ms,
                               description=(descriptions or {}).get(name) or task_description(name))
              for name, p in predictors.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for task in served.values():
            await task.close()

    app = FastAPI(title="taskzoo", summary="taskzoo's predictors over HTTP",
                  description="`POST /v1/TASK/predict` with `{\"inputs\": ..., \"parameters\": "
                              "{...}}` (Hugging Face's inference API), or an image as a "
                              "multipart upload in the field `file`.", lifespan=lifespan)
    app.state.served = served
    add_error_handlers(app)

    @app.get("/health", summary="the server is up, and what it serves")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": list(served)}

    @app.get("/v1/tasks", summary="each served task: its input, Hugging Face kind and options")
    async def tasks() -> list[dict[str, Any]]:
        return [t.record() for t in served.values()]

    for task in served.values():
        app.add_api_route(f"/v1/{task.name}/predict", predict_endpoint(task), methods=["POST"],
                          summary=f"{task.name}: {task.kind} in, predictions out",
                          description=task.description, openapi_extra=task.openapi(),
                          tags=["predict"], name=f"predict_{task.name}")

    @app.post("/v1/{task}/predict", include_in_schema=False)
    async def unknown_task(task: str) -> JSONResponse:
        return error(404, f"task {task!r} is not served here; served: {', '.join(served)}."
                     + did_you_mean(task, served), "UnknownNameError")

    @app.get("/", include_in_schema=False)
    async def page() -> Any:
        return page_file("index.html")

    @app.get("/page/{name}", include_in_schema=False)
    async def page_asset(name: str) -> Any:
        return page_file(name)

    return app


def predict_endpoint(task: ServedTask) -> Any:
    """The handler of one task's `POST /v1/TASK/predict`."""

    async def predict(request: Request) -> JSONResponse:
        payload = await read_payload(request, task.limits)
        return JSONResponse(await task.answer(payload))

    predict.__name__ = f"predict_{task.name}"
    return predict


async def read_payload(request: Request, limits: Limits) -> Payload:
    """The request's inputs and parameters by its media type: JSON, a multipart upload in
    `file` (with `parameters` as a JSON string), or a raw image or video body."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request.stream(), request.headers.get("content-length"),
                           limits.max_body_bytes)
    if media == "application/json" or (media in ("", "text/plain")
                                       and body.lstrip()[:1] in (b"{", b"[")):
        return parse_json(body)
    if media == "multipart/form-data":
        return await read_form(request, body)
    if media.startswith(("image/", "video/")) or media in ("", "application/octet-stream"):
        if not body:
            raise RequestError('the body is empty: send {"inputs": ...} as JSON, an image, '
                               "or a multipart upload in the field 'file'")
        return Payload(body, {}, media)
    raise RequestError(f"unsupported media type {media!r}: send application/json, "
                       "multipart/form-data, image/* or video/*", 415)


async def read_form(request: Request, body: bytes) -> Payload:
    """A multipart body (already read within the size limit): the upload in `file`."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=4,
                                                         max_part_size=len(body) + 1)
    except Exception as exc:  # python-multipart's and Starlette's errors for a bad form
        raise RequestError(f"the multipart form cannot be read: {getattr(exc, 'detail', exc)}") \
            from None
    try:
        unknown = sorted(set(form.keys()) - {"file", "parameters"})
        if unknown:
            raise RequestError(f"unknown form field(s) {', '.join(unknown)}: the upload goes in "
                               "'file', the options in 'parameters' (a JSON object)")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError("a multipart request carries the image or video as a file in the "
                               "field 'file'")
        data = await upload.read()
        if not data:
            raise RequestError("the uploaded file is empty")
        return Payload(data, parse_form_parameters(form.get("parameters")),
                       (upload.content_type or "").lower())
    finally:
        await form.close()


def page_file(name: str) -> Any:
    """A file of the web page's folder, by its bare name: only names listed in that folder,
    so no name a client sends reaches any other file."""
    files = {p.name: p for p in PAGE.iterdir() if p.is_file()} if PAGE.is_dir() else {}
    if "index.html" not in files:
        return error(404, "the web page is not installed (taskzoo/serve/page/index.html is "
                     "missing); the JSON API works: GET /v1/tasks", "NotFound")
    if name not in files or Path(name).suffix not in PAGE_TYPES:
        return error(404, f"no page file {name!r}; the page has {', '.join(sorted(files))}",
                     "NotFound")
    return FileResponse(files[name], media_type=PAGE_TYPES[Path(name).suffix])


def error(status: int, message: str, kind: str) -> JSONResponse:
    """The one shape of every error: {"error": what was wrong and what is valid, "type"}."""
    return JSONResponse({"error": message, "type": kind}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Every error a client causes as a 4xx JSON; anything else a 500 that says no more than
    its type (the traceback goes to the server's log)."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, str(exc), "InputError")

    @app.exception_handler(UnknownNameError)
    async def unknown_name(request: Request, exc: UnknownNameError) -> JSONResponse:
        return error(404, str(exc), "UnknownNameError")

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return error(400, str(exc), "InputError")

    @app.exception_handler(TaskzooError)
    async def taskzoo_error(request: Request, exc: TaskzooError) -> JSONResponse:
        from taskzoo.errors import UsageError

        return error(400 if isinstance(exc, UsageError) else 500, str(exc), type(exc).__name__)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"no such endpoint {request.url.path!r}; see GET /v1/tasks and /docs"
        return error(exc.status_code, detail, "HTTPException")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, f"the request is malformed: {exc.errors()}", "InputError")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"the server failed on this request ({type(exc).__name__}); its log "
                     "has the details", type(exc).__name__)


def task_description(name: str) -> str:
    """A registered task's one-line description ("" for a name the registry does not know)."""
    from taskzoo.api import resolve_task

    try:
        return str(resolve_task(name).description)
    except TaskzooError:
        return ""
