"""The FastAPI app behind ``pipeline serve``.

One :class:`pipeline.models.predict.Classifier`, loaded before the app is built, answers every request. Its
calls are serialised by a lock: the tokenizer is not safe to share between threads, and on a small
machine concurrent forward passes only fight over the same cores. A request's texts go through the
model in batches of ``Limits.batch_size`` on the model's device.

Bad input gets a 4xx whose JSON body is ``{"detail": "<one line>"}``: 400 malformed JSON, 413 too many
texts or a body over ``Limits.max_body_bytes``, 415 not JSON, 422 wrong types or an empty text. Any
other exception becomes a 500 with one line; the process keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from pipeline import rundir
from pipeline.models.predict import Classifier, run_config

log = logging.getLogger("pipeline.serve")


@dataclass(frozen=True)
class Limits:
    max_texts: int = 64  # texts per request
    max_body_bytes: int = 1 << 20  # request body (1 MiB)
    batch_size: int = 32  # texts per forward pass


class PredictRequest(BaseModel):
    """Exactly one of ``text`` (one string) or ``texts`` (a list of strings)."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = Field(None, examples=["Shares in the bank rose 5% after the results."])
    texts: list[StrictStr] | None = Field(None, examples=[["The match ended 2-1.", "The film opens today."]])


class Prediction(BaseModel):
    label: str
    probs: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class BadRequest(Exception):
    """A request the app refuses: HTTP ``status`` with a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def model_info(clf: Classifier) -> dict[str, Any]:
    """What ``GET /model`` returns: where the model comes from, its labels, metrics and run config."""
    final: dict[str, Any] = {}
    if clf.run_dir is not None:
        try:
            data = json.loads(rundir.metrics_json(clf.run_dir).read_text(encoding="utf-8"))
            final = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            final = {}
    cfg = run_config(clf.run_dir)
    model_cfg = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    return {
        "name": str((model_cfg or {}).get("name") or clf.checkpoint.name),
        "run_dir": str(clf.run_dir) if clf.run_dir else None,
        "checkpoint": str(clf.checkpoint),
        "labels": clf.labels,
        "max_length": clf.max_length,
        "device": str(clf.device),
        "val": final.get("val") if isinstance(final.get("val"), dict) else None,
        "test": final.get("test") if isinstance(final.get("test"), dict) else None,
        "config": cfg,
    }


def _texts(req: PredictRequest, limits: Limits) -> list[str]:
    if (req.text is None) == (req.texts is None):
        raise BadRequest(422, 'send exactly one of "text" (a string) or "texts" (a list of strings)')
    texts = [req.text] if req.text is not None else list(req.texts or [])
    if not texts:
        raise BadRequest(422, '"texts" is empty: send at least one text')
    if len(texts) > limits.max_texts:
        raise BadRequest(413, f"{len(texts)} texts: at most {limits.max_texts} per request; split the list")
    for i, text in enumerate(texts):
        if not text.strip():
            where = "text" if req.text is not None else f"texts[{i}]"
            raise BadRequest(422, f"{where} is empty: send some text to classify")
    return texts


def _validation_reason(exc: RequestValidationError) -> tuple[int, str]:
    """The first pydantic error as one line (and 400 for JSON that does not parse)."""
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    err = errors[0]
    if err.get("type") == "json_invalid":
        return 400, f"body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    where = ".".join(loc) if loc else "body"
    if err.get("type") == "extra_forbidden":
        return 422, f'unknown field "{where}": send {{"text": "..."}} or {{"texts": ["...", ...]}}'
    if where == "body" and err.get("type") in ("model_attributes_type", "dict_type", "missing"):
        return 422, 'body must be a JSON object: {"text": "..."} or {"texts": ["...", ...]}'
    return 422, f"{where}: {err.get('msg', 'invalid value')}"


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by Content-Length or (chunked) as it streams in.

    The body is read here, up to the limit, and handed on whole, so the app never sees a partial one. A
    refused body is read on and thrown away (up to ``DRAIN_BYTES``) before the answer: closing a socket
    with unread data resets the connection, and the client would see that instead of the 413.
    """

    DRAIN_BYTES = 64 << 20

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._drain(receive)
            await self._refuse(send)
            return
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.max_bytes:
                if more:
                    await self._drain(receive)
                await self._refuse(send)
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Any) -> None:
        drained = 0
        while drained < self.DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, send: Any) -> None:
        reason = f"request body over {self.max_bytes} bytes: send fewer or shorter texts"
        body = json.dumps({"detail": reason}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def create_app(clf: Classifier, limits: Limits | None = None) -> FastAPI:
    """The app for one loaded classifier: ``/`` (page), ``/predict``, ``/health``, ``/model``, ``/docs``."""
    limits = limits or Limits()
    info = model_info(clf)
    lock = threading.Lock()
    page = resources.files("pipeline.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="bert-hpc-pipeline classifier",
        summary=f"{info['name']} from {info['run_dir'] or info['checkpoint']}",
        description=f"Labels: {', '.join(clf.labels)}. At most {limits.max_texts} texts and "
                    f"{limits.max_body_bytes} bytes per request.",
    )
    app.state.classifier, app.state.limits = clf, limits

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        ctype = request.headers.get("content-type", "")
        if request.method == "POST" and not ctype.split(";")[0].strip().endswith("json"):
            return JSONResponse({"detail": f"content-type {ctype or 'missing'}: send application/json"},
                                status_code=415)
        status, reason = _validation_reason(exc)
        return JSONResponse({"detail": reason}, status_code=status)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        line = (str(exc).strip().splitlines() or [""])[0]
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {line}"[:300]}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """200 once the model is loaded (it is loaded before the server starts)."""
        return {"status": "ok", "labels": len(clf.labels), "device": info["device"]}

    @app.get("/model")
    def model() -> dict[str, Any]:
        """Run directory, checkpoint, labels, max length, device, val/test metrics and the run's config."""
        return info

    @app.post("/predict", response_model=PredictResponse,
              responses={400: {"description": "malformed JSON"}, 413: {"description": "too many texts or too big"},
                         415: {"description": "not JSON"}})
    def predict(req: PredictRequest) -> dict[str, Any]:
        """Label and class probabilities for ``text`` or for each of ``texts`` (in order)."""
        texts = _texts(req, limits)
        with lock:
            rows = clf.predict(texts, limits.batch_size)
        return {"predictions": [{"label": r["label"], "probs": r["probs"]} for r in rows]}

    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    return app


def run(clf: Classifier, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
        log_level: str = "info") -> None:
    """Serve ``clf`` with uvicorn until interrupted (one process: the model is loaded once)."""
    import uvicorn

    app = create_app(clf, limits)
    print(f"serving {clf.checkpoint} ({', '.join(clf.labels)}) on http://{host}:{port}  "
          f"(docs: /docs; limits: {asdict(app.state.limits)})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
