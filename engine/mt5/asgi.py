"""The contract as an ASGI app (FastAPI), generated from the route table in engine.mt5.spec.

Every route of the table becomes an endpoint, documented at ``/openapi.json`` with its parameters and
body; parameters are validated against the same table (a bad one is a 400 naming it). The handling itself
is engine.mt5.service's, framework-free: in worker threads when the backend may block (the bridge's
package lock, injected latency), on the event loop otherwise (the simulator: a thread hop would cost more
than the work). Request bodies are capped here; the fault hooks (simulator only) may drop, garble or
trickle an answer after the request executed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from engine.errors import InvalidRequestError
from engine.mt5 import contract, jsonio, spec
from engine.mt5.service import Answer, ContractService

log = logging.getLogger("engine.mt5.server")

MAX_BODY = 64 * 1024  # an order is a few hundred bytes
TRANSPORT_KEY = "engine.transport"  # where the server's protocol puts the connection in the ASGI scope


class Hooks(Protocol):
    """Fault injection (simulator only): answer early, or execute and then drop, garble or trickle."""

    def before(self, method: str, route: str) -> tuple[int, dict[str, Any], dict[str, str]] | None: ...
    def drop_response(self, method: str, route: str) -> bool: ...
    def garble_response(self, method: str, route: str) -> bool: ...
    def trickle_response(self, method: str, route: str) -> float | None: ...
    def may_block(self) -> bool: ...


class Stats(Protocol):
    def request_started(self) -> None: ...
    def request_handled(self, method: str, route: str) -> None: ...


def _json(answer: Answer, extra: dict[str, str] | None = None) -> Response:
    headers = dict(answer.headers)
    if answer.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="mt5"'
    headers.update(extra or {})
    return Response(jsonio.dumps(answer.body), answer.status, headers, media_type="application/json")


class _Trickle(Response):
    """The answer, one byte every ``interval`` seconds: each read gets data in time, the whole never does."""

    def __init__(self, answer: Answer, interval: float, request: Request) -> None:
        super().__init__(jsonio.dumps(answer.body), answer.status, dict(answer.headers), "application/json")
        self.interval, self.request = interval, request

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = bytes(self.body)
        for i in range(len(body)):
            await send({"type": "http.response.body", "body": body[i:i + 1], "more_body": i + 1 < len(body)})
            if i + 1 < len(body):
                await asyncio.sleep(self.interval)
                if await self.request.is_disconnected():
                    return


def _params(route: spec.Route, request: Request) -> dict[str, Any]:
    """The route's parameters, typed, from the path and query; InvalidRequestError names a bad one."""
    out: dict[str, Any] = {}
    for p in route.params:
        raw = request.path_params.get(p.name) or request.query_params.get(p.name)
        if raw is None or raw == "":
            if p.required:
                raise InvalidRequestError(f"{p.name}: Field required")
            out[p.name] = p.default
        elif p.type == "integer":
            try:
                out[p.name] = int(raw)
            except ValueError:
                raise InvalidRequestError(f"{p.name}: Input should be a valid integer, got {raw!r}") from None
        else:
            out[p.name] = raw
    if route.method == "POST":
        out["idempotency_key"] = request.headers.get(contract.IDEMPOTENCY_HEADER)
    return out


class _Runner:
    def __init__(self, service: ContractService, stats: Stats, hooks: Hooks | None, max_body: int) -> None:
        self.service, self.stats, self.hooks, self.max_body = service, stats, hooks, max_body
        self.blocking_backend = bool(getattr(service.backend, "blocking", True))

    async def serve(self, request: Request, route: spec.Route) -> Response:
        self.stats.request_started()
        try:
            return await self._serve(request, route)
        finally:
            self.stats.request_handled(route.method, route.name)

    async def _serve(self, request: Request, route: spec.Route) -> Response:
        if route.auth and not self.service.authorised(request.headers.get("authorization")):
            return _json(Answer(401, {"error": "missing or invalid bearer token"}, {}))
        try:
            params = _params(route, request)
        except InvalidRequestError as exc:
            return _json(Answer(400, {"error": str(exc)}, {}))
        raw = None
        if route.method == "POST":
            raw = await self._body(request)
            if raw is None:
                # The rest of the body is not read: the connection cannot carry another request.
                return _json(Answer(400, {"error": f"request body missing a valid Content-Length or over "
                                                   f"{self.max_body} bytes"}, {}), {"Connection": "close"})
        if self.blocking_backend or (self.hooks is not None and self.hooks.may_block()):
            kind, answer, interval = await run_in_threadpool(self._run, route, params, raw)
        else:
            kind, answer, interval = self._run(route, params, raw)
        if kind == "drop":
            return await _drop(request)
        if kind == "garble":
            # Executed, but a proxy in between answers with its own page: the client cannot tell.
            return Response(b"<html><body>502 upstream hiccup</body></html>", 200, media_type="text/html")
        if kind == "trickle":
            return _Trickle(answer, interval, request)
        return _json(answer)

    def _run(self, route: spec.Route, params: dict[str, Any], raw: bytes | None) -> tuple[str, Any, float]:
        """In a worker thread: faults before, the request itself, faults after (one hop for all three)."""
        method, name = route.method, route.name
        hooks = self.hooks if name != "/health" else None  # the liveness probe is never faulted
        early = hooks.before(method, name) if hooks is not None else None
        if early is not None:
            return "answer", Answer(*early), 0.0
        if method == "GET":
            answer = self.service.get(name, params)
        else:
            answer = self.service.post(name, raw or b"", params.get("idempotency_key"))
        if hooks is not None:
            if hooks.drop_response(method, name):
                return "drop", None, 0.0
            if method == "POST" and hooks.garble_response(method, name):
                return "garble", None, 0.0
            interval = hooks.trickle_response(method, name)
            if interval:
                return "trickle", answer, interval
        return "answer", answer, 0.0

    async def _body(self, request: Request) -> bytes | None:
        """The request body, or None when its length is unreadable or over the cap."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


async def _drop(request: Request) -> Response:
    """Close the connection without an answer: executed, but the client never hears about it (exactly
    the case the Idempotency-Key and reconciliation exist for)."""
    transport = request.scope.get("extensions", {}).get(TRANSPORT_KEY)
    if transport is None:
        return _json(Answer(500, {"error": "cannot drop: not served by engine.mt5.server"}, {}))
    transport.close()
    while (await request.receive())["type"] != "http.disconnect":
        pass
    return Response(status_code=204)  # never sent: the connection is gone


def _endpoint(route: spec.Route, runner: _Runner) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        return await runner.serve(request, route)

    endpoint.__name__ = route.name.strip("/") or "root"
    return endpoint


def _documented_params(route: spec.Route) -> list[dict[str, Any]]:
    out = []
    for p in route.params:
        schema: dict[str, Any] = {"type": p.type}
        if p.default is not None:
            schema["default"] = p.default
        where = "path" if "{" + p.name + "}" in route.path else "query"
        out.append({"name": p.name, "in": where, "required": p.required or where == "path", "schema": schema,
                    "description": p.description})
    if route.method == "POST":
        out.append({"name": contract.IDEMPOTENCY_HEADER, "in": "header", "required": False,
                    "schema": {"type": "string"}, "description": "one per order; a repeat gets the first answer"})
    return out


class ContractApp:
    """The ASGI app: the contract's routes go straight to their handlers; anything else (``/openapi.json``,
    unknown paths, wrong methods) to the FastAPI app that documents them. FastAPI's per-request
    machinery (dependency solving, exit stacks) cost more than the simulator's whole answer."""

    def __init__(self, fastapi: FastAPI, runner: _Runner) -> None:
        self.fastapi, self.runner = fastapi, runner
        self._routes = {(r.method, r.name): (r, r.path.count("/")) for r in spec.ROUTES}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            segments = path[1:].split("/")
            found = self._routes.get((scope["method"], "/" + segments[0]))
            if found is not None and len(segments) == found[1] and all(segments):
                route = found[0]
                if len(segments) == 2:
                    scope["path_params"] = {route.params[0].name: segments[1]}
                request = Request(scope, receive, send)
                response = await self.runner.serve(request, route)
                await response(scope, receive, send)
                return
        await self.fastapi(scope, receive, send)


def build_app(service: ContractService, *, stats: Stats, hooks: Hooks | None = None,
              max_body: int = MAX_BODY) -> ContractApp:
    """The contract's ASGI app over ``service``."""
    app = FastAPI(title="engine MT5 REST contract", version="2", docs_url=None, redoc_url=None,
                  description="docs/mt5_rest_api.md; x-shared marks what the quant-server bridge shares")
    runner = _Runner(service, stats, hooks, max_body)
    for route in spec.ROUTES:
        extra: dict[str, Any] = {"parameters": _documented_params(route)}
        if route.body:
            extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
        app.add_api_route(route.path, _endpoint(route, runner), methods=[route.method], summary=route.summary,
                          openapi_extra=extra)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        what = f"{request.method} {request.url.path}"
        message = f"no route {what}; see docs/mt5_rest_api.md" if status == 404 else \
            f"{what}: {getattr(exc, 'detail', 'refused')}"
        return _json(Answer(status, {"error": message}, {}))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return ContractApp(app, runner)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the contract's own answers: 400 (not 422) for invalid requests, the record
    schemas, Bearer auth, and ``x-shared`` on what the quant-server bridge shares."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for route in spec.ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        op["x-shared"] = route.shared
        shared = {p.name: p.shared for p in route.params}
        for param in op.get("parameters", []):
            param["x-shared"] = shared.get(param["name"], False)
        op["responses"] = {str(s): {"description": "OK", "content": {"application/json": {"schema": route.answer}}}
                           if s == 200 else {"description": _REASONS[s], **error} for s in route.statuses}
        if route.auth:
            op["security"] = [{"bearer": []}]
            op["responses"]["401"] = {"description": _REASONS[401], **error}
    components = doc.setdefault("components", {})
    components["schemas"] = spec.schemas()
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    app.openapi_schema = doc
    return doc


_REASONS = {400: "invalid request, or an order refused (the body carries the MT5 result)", 401: "bad token",
            404: "unknown symbol, ticket or route", 422: "Idempotency-Key reused for a different request",
            503: "temporary: terminal link lost, overload"}
