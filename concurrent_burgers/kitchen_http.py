"""Props for notebook 08: a kitchen that answers HTTP, without any network.

* :class:`KitchenService` is a tiny ASGI app: the kitchen's order-status service.
  ``GET /orders/{n}`` answers ``{"order": n, "status": ...}`` after a short wait, ``404``
  for an unknown order, and ``503`` (with ``Retry-After``) while an order is marked busy.
  ``httpx.ASGITransport(app=kitchen)`` puts a client in front of it, in process.
* :class:`SimulatedWire` and :class:`WiredTransport` put the *real* httpx transport and
  its connection pool in front of an ASGI app, over a simulated wire instead of sockets:
  connections are really opened, reused, limited (``httpx.Limits``) and timed out
  (``httpx.Timeout``), and each one is counted and drawn, yet nothing leaves the process.
* :class:`PriceDesk` is for the exercise's tests: a price service behind
  ``httpx.MockTransport`` that counts requests in flight and tells requests sent through
  the client it lent from requests sent any other way.

Everything writes into an :class:`~concurrent_burgers.testing.EventLog` when given one,
so ``log.plot()`` shows who waited when, and on which connection.
"""

from __future__ import annotations

import contextlib
import http
import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import httpcore
import httpx

from concurrent_burgers.testing import EventLog, InFlightCounter

KITCHEN_URL = "http://kitchen.invalid"  # .invalid never resolves: nothing can leave by mistake

SAMPLE_ORDERS: dict[int, str] = {
    1: "ready",
    2: "cooking",
    3: "cooking",
    4: "waiting for buns",
    5: "ready",
    6: "cooking",
    7: "ready",
    8: "cooking",
}


def _json_response(status: int, body: object, headers: Mapping[str, str] | None = None):
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return status, head, data


class KitchenService:
    """The kitchen's order-status service, as a tiny ASGI app.

    ``delay`` is how long the kitchen takes to answer (``delays`` overrides it per
    order); ``busy`` maps an order number to how many times the kitchen answers
    ``503 Service Unavailable`` before it answers properly. ``requests`` lists every
    request path in arrival order, ``in_flight`` counts requests being answered.
    """

    def __init__(
        self,
        orders: Mapping[int, str] | None = None,
        delay: float = 0.1,
        delays: Mapping[int, float] | None = None,
        busy: Mapping[int, int] | None = None,
        log: EventLog | None = None,
    ) -> None:
        self.orders = dict(SAMPLE_ORDERS if orders is None else orders)
        self.delay = delay
        self.delays = dict(delays or {})
        self.busy = dict(busy or {})
        self.log = log
        self.in_flight = InFlightCounter()
        self.requests: list[str] = []

    async def answer(self, method: str, path: str) -> tuple[int, list, bytes]:
        """(status, headers, body) for one request."""
        self.requests.append(path)
        parts = path.strip("/").split("/")
        if method != "GET" or len(parts) != 2 or parts[0] != "orders" or not parts[1].isdigit():
            return _json_response(404, {"detail": f"no route {method} {path}"})
        number = int(parts[1])
        with self.in_flight:
            span = self.log.span(f"GET {path}", who=f"order {number}") if self.log else None
            with span or contextlib.nullcontext():
                await anyio.sleep(self.delays.get(number, self.delay))
        if self.busy.get(number, 0) > 0:
            self.busy[number] -= 1
            return _json_response(503, {"detail": "kitchen busy"}, {"retry-after": "0.05"})
        if number not in self.orders:
            return _json_response(404, {"detail": f"no order {number}"})
        return _json_response(200, {"order": number, "status": self.orders[number]})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan events to handle
        status, headers, body = await self.answer(scope["method"], scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def call_asgi(app: Any, method: str, path: str, headers: list) -> tuple[int, list, bytes]:
    """Run one request through an ASGI app; return (status, headers, body)."""
    target, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("kitchen.invalid", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    head = [(bytes(k).lower(), bytes(v)) for k, v in start.get("headers", [])]
    if not any(k == b"content-length" for k, _ in head):
        head.append((b"content-length", str(len(body)).encode()))
    return start["status"], head, body


class _WireStream(httpcore.AsyncNetworkStream):
    """One simulated connection: bytes in, an ASGI app's answer out."""

    def __init__(self, wire: SimulatedWire, number: int) -> None:
        self.wire, self.number = wire, number
        self._incoming = bytearray()
        self._outgoing = bytearray()
        self._waiting: list[tuple[str, str, list]] = []
        self.closed = False

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._incoming += buffer
        while b"\r\n\r\n" in self._incoming:  # a GET has no body: a head is a request
            head, _, rest = bytes(self._incoming).partition(b"\r\n\r\n")
            self._incoming = bytearray(rest)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.append((name.strip().lower().encode(), value.strip().encode()))
            self._waiting.append((method, path, headers))

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self._outgoing and self._waiting:
            method, path, headers = self._waiting.pop(0)
            who = f"{self.wire.label} {self.number}"
            try:
                with anyio.fail_after(timeout), self.wire.served.span(f"GET {path}", who=who):
                    status, head, body = await call_asgi(self.wire.app, method, path, headers)
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no answer within {timeout} s") from None
            phrase = http.HTTPStatus(status).phrase
            lines = [f"HTTP/1.1 {status} {phrase}".encode()]
            lines += [k + b": " + v for k, v in head]
            self._outgoing += b"\r\n".join(lines) + b"\r\n\r\n" + body
        chunk = bytes(self._outgoing[:max_bytes])
        del self._outgoing[:max_bytes]
        return chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.wire.open_now -= 1

    def get_extra_info(self, info: str) -> Any:
        return None


class SimulatedWire(httpcore.AsyncNetworkBackend):
    """A network backend for httpcore that reaches an ASGI app instead of a socket.

    Opening a connection takes ``connect_delay`` seconds (a TCP handshake, say).
    ``opened`` counts connections ever opened, ``open_now`` those still open; ``served``
    is an event log with one row per connection and one bar per request it carried.
    """

    def __init__(
        self,
        app: Any,
        connect_delay: float = 0.05,
        log: EventLog | None = None,
        label: str = "connection",
    ) -> None:
        self.app = app
        self.connect_delay = connect_delay
        self.label = label
        self.served = log if log is not None else EventLog()
        self.opened = 0
        self.open_now = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> _WireStream:
        self.opened += 1
        number = self.opened
        with self.served.span("connect", who=f"{self.label} {number}"):
            await anyio.sleep(self.connect_delay)
        self.open_now += 1
        return _WireStream(self, number)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class WiredTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport and connection pool, over a :class:`SimulatedWire`.

    Give it an ASGI ``app`` (a new wire is made for it) or a ``wire`` that several
    transports share, so that one wire counts the connections of many clients. It takes
    the same ``limits`` (and ``retries``) as ``httpx.AsyncHTTPTransport``;
    ``transport.wire`` counts the connections. (httpx has no public switch for the
    pool's network backend: this class sets it once, right after the pool is built.)
    """

    def __init__(
        self,
        app: Any = None,
        *,
        wire: SimulatedWire | None = None,
        log: EventLog | None = None,
        **options: Any,
    ) -> None:
        # The simulated wire carries plain http only: no certificates to load.
        super().__init__(**{"verify": False, **options})
        if wire is None:
            wire = SimulatedWire(app, log=log)
        self.wire = wire
        self._pool._network_backend = wire


# --------------------------------------------------------------------------- for tests

LENT_HEADER = "x-lent-by-the-test"
PRICES_URL = "http://prices.invalid"


class PriceDesk:
    """For tests: a price service behind ``httpx.MockTransport`` and a client to lend.

    ``GET /price/{item}`` answers ``{"price": ...}`` from ``prices``; ``script`` maps an
    item to the status codes it answers first (``[503]``: busy once, then fine); an item
    missing from ``prices`` answers 404. While a request is answered it is counted in
    ``in_flight`` (a probe passed in by the test, as is ``gate``, an async barrier that
    every request waits at before it is answered); ``yields`` more loop turns then give
    any other request that was started a chance to arrive. ``attempts`` counts requests
    per item; ``foreign`` lists those that reached the service without passing through
    the lent client; ``strays`` those sent through some other client, which
    :meth:`no_other_clients` stops before they reach any network.
    """

    def __init__(
        self,
        prices: Mapping[str, float],
        *,
        in_flight: Any,
        gate: Any = None,
        yields: int = 0,
        script: Mapping[str, list[int]] | None = None,
    ) -> None:
        self.prices = dict(prices)
        self.in_flight = in_flight
        self.gate = gate
        self.yields = yields
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.attempts: dict[str, int] = {}
        self.foreign: list[str] = []
        self.strays: list[str] = []
        self._token = secrets.token_hex(16)
        self.client = httpx.AsyncClient(
            transport=httpx.MockTransport(self._handle),
            base_url=PRICES_URL,
            event_hooks={"request": [self._stamp]},
        )

    async def _stamp(self, request: httpx.Request) -> None:
        request.headers[LENT_HEADER] = self._token

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        item = request.url.path.removeprefix("/price/")
        if request.headers.get(LENT_HEADER) != self._token:
            self.foreign.append(item)
        self.attempts[item] = self.attempts.get(item, 0) + 1
        async with self.in_flight:
            if self.gate is not None:
                await self.gate.arrive()
            for _ in range(self.yields):
                await anyio.sleep(0)
        planned = self.script.get(item)
        if planned:
            status = planned.pop(0)
            body = {"detail": "busy, try again"} if status == 503 else {"detail": "error"}
            return httpx.Response(status, json=body)
        if not request.url.path.startswith("/price/") or item not in self.prices:
            return httpx.Response(404, json={"detail": f"no price for {item}"})
        return httpx.Response(200, json={"price": self.prices[item]})

    @contextlib.contextmanager
    def no_other_clients(self) -> Iterator[PriceDesk]:
        """Stop (and note) requests sent through any client but the lent one."""
        desk = self
        async_send = httpx.AsyncHTTPTransport.handle_async_request
        sync_send = httpx.HTTPTransport.handle_request

        async def stray_async(transport: Any, request: httpx.Request) -> httpx.Response:
            desk.strays.append(f"async {request.method} {request.url}")
            raise httpx.ConnectError("no network in this test", request=request)

        def stray_sync(transport: Any, request: httpx.Request) -> httpx.Response:
            desk.strays.append(f"sync {request.method} {request.url}")
            raise httpx.ConnectError("no network in this test", request=request)

        httpx.AsyncHTTPTransport.handle_async_request = stray_async  # type: ignore[method-assign]
        httpx.HTTPTransport.handle_request = stray_sync  # type: ignore[method-assign]
        try:
            yield self
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = async_send  # type: ignore[method-assign]
            httpx.HTTPTransport.handle_request = sync_send  # type: ignore[method-assign]

    @property
    def used_a_sync_client(self) -> bool:
        return any(s.startswith("sync ") for s in self.strays)
