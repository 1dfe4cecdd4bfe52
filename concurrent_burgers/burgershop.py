"""Props for notebook 12, the burger-shop capstone: upstream services, a model, probes.

The recap sections use small stories of their own:

* the town **library**: :func:`library_transport` is an in-process stand-in for two
  services (a catalogue and a review site) that an ``httpx.AsyncClient`` can call
  through ``httpx.MockTransport``; nothing leaves the process;
* :func:`count_primes`, a CPU-bound function that reports the process that ran it.

The exercise is the burger shop's order service. Its parts:

* :func:`shop_transport`: the two upstream services the shop calls, the pantry
  (``GET /pantry/{burger}`` answers ``{"stock": int}``) and the customer register
  (``GET /customers/{customer}`` answers ``{"visits": int}``);
* :func:`score_order`: the shop's "model", CPU-bound and importable, so a worker process
  can run it.

The probes are the instrumented versions the hidden tests pass to ``create_app``:
:class:`UpstreamProbe` (a MockTransport upstream that records every request, counts
requests in flight, can make calls meet at a gate, hold them, or never answer until
cancelled) and :class:`ScorerProbe` (a picklable scorer that writes the process and
thread of every call to a journal file, and answers with values made up per test).

Functions that run in a worker process must be importable there: this module imports
only the standard library at the top, so a worker starts quickly.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from typing import Any, NamedTuple

from concurrent_burgers.housework import _on_loop

# --------------------------------------------------------------------------- recap props

BOOKS: dict[str, dict[str, Any]] = {
    "dune": {"title": "Dune", "shelf": "S-12", "stars": 4.6},
    "emma": {"title": "Emma", "shelf": "A-03", "stars": 4.1},
    "ulysses": {"title": "Ulysses", "shelf": "J-77", "stars": 3.9},
}


def library_transport(delay: float = 0.1, log: Any = None, hang: tuple[str, ...] = ()) -> Any:
    """A MockTransport for the library's two services, each answering after ``delay`` s.

    ``GET /catalogue/{book}`` answers ``{"title": ..., "shelf": ...}`` and ``GET
    /reviews/{book}`` answers ``{"stars": ...}``. A service whose name is in ``hang``
    (``"catalogue"`` or ``"reviews"``) never answers until the request is cancelled.
    With an :class:`~concurrent_burgers.testing.EventLog`, every request is a span.
    """
    import anyio
    import httpx

    async def handler(request: httpx.Request) -> httpx.Response:
        _, service, book = request.url.path.split("/")
        start = time.perf_counter()
        try:
            if service in hang:
                await anyio.sleep_forever()
            await anyio.sleep(delay)
        finally:
            if log is not None:
                t0 = time.perf_counter() - log.now()
                log.record(f"{service} service", f"GET /{service}/{book}", start - t0, log.now())
        info = BOOKS.get(book, {"title": "?", "shelf": "?", "stars": 0.0})
        if service == "catalogue":
            return httpx.Response(200, json={"title": info["title"], "shelf": info["shelf"]})
        return httpx.Response(200, json={"stars": info["stars"]})

    return httpx.MockTransport(handler)


class Work(NamedTuple):
    """What :func:`count_primes` found, and where and when it ran (``perf_counter`` times)."""

    result: int
    pid: int
    thread: str
    start: float
    end: float


def count_primes(limit: int) -> Work:
    """Count the primes below ``limit`` the slow way: pure-Python arithmetic, no waiting."""
    start = time.perf_counter()
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    thread = threading.current_thread().name
    return Work(count, os.getpid(), thread, start, time.perf_counter())


def record_work(log: Any, work: Work, who: str, what: str) -> None:
    """Add a :class:`Work` to ``log`` as a span in its own process (a worker cannot write there)."""
    from concurrent_burgers.testing import Event

    t0 = time.perf_counter() - log.now()
    log.events.append(Event(who, what, work.start - t0, work.end - t0, work.thread, work.pid))


# --------------------------------------------------------------------------- the shop

PANTRY: dict[str, int] = {"classic": 40, "cheese": 12, "veggie": 3, "double": 0}
REGISTER: dict[str, int] = {"ann": 31, "bob": 2, "cleo": 9, "dev": 0}


def shop_transport(delay: float = 0.1, log: Any = None) -> Any:
    """A MockTransport for the shop's pantry and customer register, each taking ``delay`` s."""
    import anyio
    import httpx

    async def handler(request: httpx.Request) -> httpx.Response:
        _, service, key = request.url.path.split("/")
        start = time.perf_counter()
        await anyio.sleep(delay)
        if log is not None:
            t0 = time.perf_counter() - log.now()
            log.record(f"{service}: {key}", "GET", start - t0, log.now())
        if service == "pantry":
            return httpx.Response(200, json={"stock": PANTRY.get(key, 0)})
        return httpx.Response(200, json={"visits": REGISTER.get(key, 0)})

    return httpx.MockTransport(handler)


def score_order(burger: str, stock: int, visits: int) -> float:
    """The shop's model: how much this order deserves a free dessert, from 0 to 1.

    CPU-bound on purpose (a little "training" loop in pure Python, some 30 ms), and
    defined in a module, so that a worker process can import and run it.
    """
    weight = (sum(map(ord, burger)) % 97) / 97
    for _ in range(150_000):  # the "model" settles on its weight
        weight = (weight * 0.999 + 0.001 * (visits % 10) / 10) % 1.0
    raw = 0.5 * min(visits, 40) / 40 + 0.3 * weight + 0.2 * (1.0 if stock > 5 else 0.0)
    return round(raw, 3)


# --------------------------------------------------------------------------- probes


class UpstreamCall(NamedTuple):
    """One request the probe upstream received."""

    method: str
    path: str
    has_client_marker: bool


class UpstreamProbe:
    """The shop's two upstream services, instrumented, for the hidden tests.

    ``client()`` returns an ``httpx.AsyncClient`` whose MockTransport is this probe.
    ``stock`` and ``visits`` are made up afresh for every probe. Every request is in
    ``calls``; ``in_flight`` counts requests in progress (its ``peak`` too). Options:

    * ``gate``: an :class:`~concurrent_burgers.testing.AsyncGate`; every request
      arrives at it before answering, and ``met`` lists whether the others came too;
    * ``hold``: requests wait until :meth:`release` is called (the test always calls it);
    * ``hang``: services (``"pantry"``, ``"customers"``) that never answer until the
      request is cancelled; ``cancelled`` lists the requests that were.
    """

    def __init__(
        self,
        burgers: list[str],
        customers: list[str],
        *,
        gate: Any = None,
        hold: bool = False,
        hang: tuple[str, ...] = (),
    ) -> None:
        from concurrent_burgers.testing import InFlightCounter

        self.stock = {b: secrets.randbelow(90) + 10 for b in burgers}
        self.visits = {c: secrets.randbelow(90) + 10 for c in customers}
        self.marker = secrets.token_hex(8)
        self.calls: list[UpstreamCall] = []
        self.in_flight = InFlightCounter()
        self.gate = gate
        self.met: list[bool] = []
        self.hold = hold
        self.hang = hang
        self.cancelled: list[str] = []
        self._released = False
        self._release: Any = None

    def client(self) -> Any:
        """A new AsyncClient for this probe, the kind the shop receives."""
        import httpx

        return httpx.AsyncClient(
            transport=httpx.MockTransport(self._handle),
            base_url="http://upstream.invalid",
            headers={"x-probe": self.marker},
        )

    def release(self) -> None:
        """Let every held request answer (and every later one at once)."""
        self._released = True
        if self._release is not None:
            self._release.set()

    def seen(self, service: str) -> list[str]:
        """The keys asked of ``service`` (``"pantry"`` or ``"customers"``), in order."""
        return [c.path.split("/")[2] for c in self.calls if c.path.startswith(f"/{service}/")]

    async def _handle(self, request: Any) -> Any:
        import anyio
        import httpx

        path = request.url.path
        self.calls.append(
            UpstreamCall(request.method, path, request.headers.get("x-probe") == self.marker)
        )
        parts = path.split("/")
        service, key = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        with self.in_flight:
            if self.gate is not None:
                self.met.append(await self.gate.arrive())
            if service in self.hang:
                try:
                    await anyio.sleep_forever()
                finally:
                    self.cancelled.append(path)
            if self.hold and not self._released:
                if self._release is None:
                    self._release = anyio.Event()
                await self._release.wait()
        if service == "pantry" and key in self.stock:
            return httpx.Response(200, json={"stock": self.stock[key]})
        if service == "customers" and key in self.visits:
            return httpx.Response(200, json={"visits": self.visits[key]})
        return httpx.Response(404, json={"detail": f"no such thing: {path}"})


class ScoreCall(NamedTuple):
    """One call of a :class:`ScorerProbe`: its arguments, and where it ran."""

    burger: str
    stock: int
    visits: int
    pid: int
    thread: str
    on_loop: bool


class ScorerProbe:
    """A picklable stand-in for ``score_order`` that reports where every call ran.

    ``probe(burger, stock, visits)`` returns :meth:`expected` of the same arguments (a
    float that depends on a secret made up per probe) and appends its process id, thread
    name and whether an event loop was running on its thread to a journal file that all
    processes share. Use it as a context manager, so its temporary folder is removed.
    """

    def __init__(self) -> None:
        self.salt = secrets.randbelow(1000) + 1
        self.directory = tempfile.mkdtemp(prefix="scorer-probe-")
        self.journal = os.path.join(self.directory, "journal")
        with open(self.journal, "x", encoding="utf-8"):
            pass

    def expected(self, burger: str, stock: int, visits: int) -> float:
        return round((len(burger) * 7 + stock * 3 + visits + self.salt) / 1024, 6)

    def __call__(self, burger: str, stock: int, visits: int) -> float:
        line = [burger, stock, visits, os.getpid(), threading.current_thread().name, _on_loop()]
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)
        return self.expected(burger, stock, visits)

    def calls(self) -> list[ScoreCall]:
        with open(self.journal, encoding="utf-8") as f:
            return [ScoreCall(*json.loads(line)) for line in f if line.endswith("\n")]

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ScorerProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "ScorerProbe()"
