"""HTTP for the MT5 REST client: one pooled session, explicit timeouts, typed errors, GET retries.

Every request, with its retries, ends by a hard deadline (connect + all reads + backoff): engine.mt5.deadline
shuts down the socket of one that outlives it, and answers over ``max_response_bytes`` are refused as they
stream in. Idempotent GETs retry with exponential backoff and jitter on timeouts, dropped connections, 429
and 5xx (a server's Retry-After wins). A POST is sent exactly once per call: whether and when to send an
order again is the execution layer's decision (engine.trading.execution), taken after reconciliation. The
API key appears in no log line, message or repr.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from urllib3.util.retry import Retry

from engine.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    InvalidRequestError,
    NetworkError,
    OperationalError,
    RequestTimeoutError,
    RetryableError,
    ServerError,
)
from engine.mt5 import jsonio
from engine.mt5.deadline import Watchdog, install
from engine.mt5.retry import RetryPolicy, parse_retry_after, retry_wait
from engine.redact import MASK, remember

log = logging.getLogger("engine.mt5.transport")

_NOT_JSON = object()


class HttpTransport:
    """Requests to one base URL with a bearer token. ``session`` may be injected (the transport then
    leaves it open), but not one whose adapter could resend a POST behind the caller's back."""

    def __init__(self, base_url: str, api_key: str, *, timeout: tuple[float, float], policy: RetryPolicy,
                 verify: bool | str, session: requests.Session | None, seed: int | None,
                 sleep: Callable[[float], None], deadline: float = 60.0,
                 max_response_bytes: int = 256 * 1024 * 1024) -> None:
        if api_key:
            remember(api_key)  # log redaction masks it wherever it might show up
        self.base_url = base_url
        self._token = api_key
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.policy = policy
        self.verify = verify
        self.deadline = float(deadline)
        self.max_response_bytes = int(max_response_bytes)
        self._own_session = session is None
        self._session = session or requests.Session()
        if session is not None:
            _refuse_post_retries(session, base_url)
        self._watchdog = Watchdog(f"mt5-deadline-{base_url}")
        for prefix, adapter in self._session.adapters.items():
            install(adapter, self._watchdog, prefix)
        self._rng = random.Random(seed)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={MASK!r})"

    def close(self) -> None:
        self._watchdog.close()
        if self._own_session:
            self._session.close()

    def backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Sleep before retry ``attempt`` (0-based): the server's Retry-After (capped) or our backoff."""
        self._sleep(retry_wait(attempt, self.policy, retry_after, self._rng))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                headers: Mapping[str, str] | None = None, retry: bool = True) -> Any:
        """The decoded JSON answer; ``retry=False`` sends once whatever happens. Ends by the deadline."""
        what = f"{method} {path}"
        url = self.base_url + path
        hdrs = self._auth if headers is None else {**self._auth, **headers}
        attempts = self.policy.retries + 1 if retry else 1
        deadline = time.monotonic() + self.deadline
        for attempt in range(attempts):
            left = deadline - time.monotonic()
            try:
                return self._once(method, url, what, params, body, hdrs, deadline, left)
            except RetryableError as exc:
                err = exc
            if attempt + 1 >= attempts:
                raise err
            wait = retry_wait(attempt, self.policy, getattr(err, "retry_after", None), self._rng)
            if time.monotonic() + wait >= deadline:
                raise err  # no time left for another attempt: the last error is the answer
            log.info("%s failed (%s); retry %d/%d in %.2fs", what, type(err).__name__, attempt + 1,
                     attempts - 1, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, url: str, what: str, params: Mapping[str, Any] | None, body: Any,
              hdrs: Mapping[str, str], deadline: float, left: float) -> Any:
        if left <= 0:
            raise self._late(what)
        timeout = (min(self.timeout[0], left), min(self.timeout[1], left))
        with self._watchdog.armed(deadline) as watch:
            try:
                resp = self._session.request(method, url, params=params, json=body, headers=hdrs, timeout=timeout,
                                             verify=self.verify, stream=True)
                try:
                    content = self._read(resp, what)
                finally:
                    resp.close()
            except requests.exceptions.SSLError:
                if watch.expired:
                    raise self._late(what) from None
                raise OperationalError(f"{what}: TLS verification of {self.base_url} failed; give the bridge's CA "
                                       "as connector.ca_bundle (do not turn verification off)") from None
            except requests.Timeout as exc:
                if watch.expired:
                    raise self._late(what) from None
                which = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
                raise RequestTimeoutError(f"{what}: no answer within the {which} timeout of "
                                          f"{timeout[0 if which == 'connect' else 1]:.3g}s from "
                                          f"{self.base_url}") from None
            except requests.RequestException as exc:
                if watch.expired or time.monotonic() >= deadline:
                    raise self._late(what) from None
                raise NetworkError(f"{what}: cannot reach {self.base_url} ({type(exc).__name__}); is the bridge "
                                   "running and the address right?") from None
        return self._decode(resp, content, what)

    def _late(self, what: str) -> RequestTimeoutError:
        return RequestTimeoutError(f"{what}: no complete answer within the deadline of {self.deadline:g}s from "
                                   f"{self.base_url} (connector.deadline); the server may be overloaded or "
                                   "trickling its answer")

    def _read(self, resp: requests.Response, what: str) -> bytes:
        """The body, refused past ``max_response_bytes`` (a broken proxy or a wrong URL can stream forever)."""
        cap = self.max_response_bytes
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise BadResponseError(f"{what}: the answer announces {declared} bytes, over the client's cap of "
                                   f"{cap} (connector.max_response_bytes); ask for less per request")
        chunks, size = [], 0
        for chunk in resp.iter_content(1 << 16):
            size += len(chunk)
            if size > cap:
                raise BadResponseError(f"{what}: the answer exceeds the client's cap of {cap} bytes "
                                       "(connector.max_response_bytes); ask for less per request")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _decode(self, resp: requests.Response, content: bytes, what: str) -> Any:
        status = resp.status_code
        if status in (401, 403):
            raise AuthError(f"{what}: the server refused the API key (HTTP {status}); set the secret "
                            "mt5_api_key to the bridge's token")
        try:
            body = jsonio.loads(content) if content else None
        except (ValueError, UnicodeDecodeError):
            body = _NOT_JSON
        if status == 429 or status >= 500:
            detail = body.get("error") if isinstance(body, dict) else None
            detail = self._redact(str(detail)) if detail else None  # a proxy may echo the Authorization header
            raise ServerError(f"{what}: HTTP {status}{f' ({detail})' if detail else ''}; retrying may help",
                              status=status, retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        if body is _NOT_JSON:
            kind = resp.headers.get("Content-Type", "unknown type").split(";")[0]
            snippet = self._redact(content[:80].decode("utf-8", "replace")).replace("\n", " ")
            bad = BadResponseError(f"{what}: HTTP {status} answered {kind}, not JSON ({snippet!r}); check "
                                   "connector.base_url points at an MT5 REST bridge, not a web page or proxy")
            bad.status = status  # type: ignore[attr-defined]  # a 404 page: the route may be missing there
            raise bad
        if status >= 400 or (isinstance(body, dict) and set(body) == {"error"}):
            detail = body.get("error") if isinstance(body, dict) else body
            exc = InvalidRequestError(f"{what}: refused (HTTP {status}): {self._redact(str(detail))}", status=status)
            exc.payload = body  # type: ignore[attr-defined]
            raise exc
        return body

    def _redact(self, text: str) -> str:
        return text.replace(self._token, MASK) if self._token else text


def _refuse_post_retries(session: requests.Session, base_url: str) -> None:
    retries = []
    for route in ("/order", "/close_position"):  # mounts match by prefix: check the POST URLs
        with contextlib.suppress(requests.exceptions.InvalidSchema):
            retries.append(getattr(session.get_adapter(base_url + route), "max_retries", None))
    if any(_posts_may_repeat(r) for r in retries):
        # urllib3 would resend an order behind our back, skipping reconciliation.
        raise ConfigError("connector.session", "the injected session's adapter max_retries may resend "
                                               "POSTs (orders); mount an adapter whose Retry has "
                                               "read=0, status=0, other=0 or allowed_methods without "
                                               "POST (the client retries GETs itself)")


def _posts_may_repeat(retry: Any) -> bool:
    """Whether an adapter's urllib3 Retry could resend a POST that already reached the server."""
    if not isinstance(retry, Retry):
        return False
    if retry.total == 0 or retry.total is False:
        return False
    methods = retry.allowed_methods
    # Falsy allowed_methods means every method is retryable; "other" errors ignore the method.
    method_ok = not methods or "POST" in {str(m).upper() for m in methods}

    def live(v: Any) -> bool:
        return v is None or (v is not False and v > 0)

    return live(retry.other) or (method_ok and (live(retry.read) or live(retry.status)))
