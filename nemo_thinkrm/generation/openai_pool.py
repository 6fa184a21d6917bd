"""The endpoint pool: healthy endpoints, least-outstanding routing, and a loop that revives dead ones.

Used by ``openai_client.py``; kept apart so routing and health can be read (and tested) on
their own, without HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Collection, Optional, Sequence, Union

from nemo_thinkrm.config.errors import ConfigError

logger = logging.getLogger("nemo_thinkrm.generation.openai_client")

Probe = Callable[[str], Awaitable[bool]]



@dataclass
class _EndpointState:
    """Routing and bookkeeping for one endpoint."""

    url: str
    healthy: bool = True
    in_flight: int = 0
    requests: int = 0
    failures: int = 0


class EndpointPool:
    """Healthy endpoints, least-outstanding routing, and a loop that revives dead ones.

    Least-outstanding (ties broken round robin) keeps a slow or busy server
    from accumulating a queue while a fast one idles, which plain round robin
    does when generation lengths vary by 10x. A dead endpoint gets no traffic
    until ``probe`` (the client's GET /health) answers 200 again.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        probe: Optional[Probe] = None,
        health_check_interval_s: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ConfigError("EndpointPool needs at least one endpoint")
        self._states = {url: _EndpointState(url) for url in endpoints}
        self._order = list(self._states)
        self._cursor = 0
        self._probe = probe
        self._interval = health_check_interval_s
        self._task: Optional[asyncio.Task[None]] = None
        self._any_healthy = asyncio.Event()
        self._any_healthy.set()

    @property
    def endpoints(self) -> list[str]:
        """All endpoints, healthy or not, in configured order."""
        return list(self._order)

    def healthy_endpoints(self) -> list[str]:
        """Endpoints currently accepting traffic, in configured order."""
        return [url for url in self._order if self._states[url].healthy]

    def is_healthy(self, endpoint: str) -> bool:
        """Whether ``endpoint`` is currently routed to."""
        return self._states[endpoint].healthy

    def acquire(self, avoid: Collection[str] = ()) -> Optional[str]:
        """Pick a healthy endpoint and count the request on it; None if none is healthy.

        Endpoints in ``avoid`` (those that already failed this request) are
        used only when no other healthy endpoint is left.
        """
        healthy = [s for s in (self._states[u] for u in self._order) if s.healthy]
        if not healthy:
            return None
        pool = [s for s in healthy if s.url not in avoid] or healthy
        low = min(s.in_flight for s in pool)
        candidates = {s.url for s in pool if s.in_flight == low}
        size = len(self._order)
        for step in range(size):
            index = (self._cursor + step) % size
            url = self._order[index]
            if url in candidates:
                self._cursor = index + 1
                state = self._states[url]
                state.in_flight += 1
                state.requests += 1
                return url
        raise AssertionError("unreachable: a candidate is always in the order list")

    def release(self, endpoint: str, ok: bool) -> None:
        """End a request started by ``acquire``; a failed attempt counts as a failure."""
        state = self._states[endpoint]
        state.in_flight = max(0, state.in_flight - 1)
        if not ok:
            state.failures += 1

    def mark_dead(self, endpoint: str, reason: str) -> None:
        """Stop routing to ``endpoint`` until its health check passes."""
        state = self._states[endpoint]
        if not state.healthy:
            return
        state.healthy = False
        alive = len(self.healthy_endpoints())
        if alive == 0:
            self._any_healthy.clear()
        logger.warning(
            "judge endpoint %s marked dead (%s); %d of %d endpoints healthy",
            endpoint, reason, alive, len(self._order),
        )

    def mark_alive(self, endpoint: str) -> None:
        """Route to ``endpoint`` again."""
        state = self._states[endpoint]
        if state.healthy:
            return
        state.healthy = True
        self._any_healthy.set()
        logger.info(
            "judge endpoint %s is healthy again; %d of %d endpoints healthy",
            endpoint, len(self.healthy_endpoints()), len(self._order),
        )

    async def wait_for_healthy(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for any endpoint to be healthy; True if one is."""
        if self.healthy_endpoints():
            return True
        try:
            await asyncio.wait_for(self._any_healthy.wait(), timeout=max(0.0, timeout_s))
        except asyncio.TimeoutError:
            return bool(self.healthy_endpoints())
        return True

    async def probe_dead(self) -> list[str]:
        """Probe every dead endpoint once and revive those that answer; returns the revived."""
        if self._probe is None:
            return []
        dead = [url for url in self._order if not self._states[url].healthy]
        if not dead:
            return []
        answers = await asyncio.gather(*(self._probe(url) for url in dead))
        revived = [url for url, ok in zip(dead, answers) if ok]
        for url in revived:
            self.mark_alive(url)
        return revived

    def start(self) -> None:
        """Start the background health loop (needs a running event loop and a probe)."""
        if self._probe is None:
            raise RuntimeError("EndpointPool.start() needs a probe")
        if self._task is not None and not self._task.done():
            return
        # Events bind to the loop that first waits on them; a fresh one per start
        # lets a client be reused under a later asyncio.run().
        self._any_healthy = asyncio.Event()
        if self.healthy_endpoints():
            self._any_healthy.set()
        self._task = asyncio.get_running_loop().create_task(self._health_loop(), name="judge-health-loop")

    async def stop(self) -> None:
        """Stop the health loop."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _health_loop(self) -> None:
        """Revive dead endpoints every interval; errors are logged, never fatal to the loop."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.probe_dead()
            except Exception:  # noqa: BLE001 -- the loop must outlive a bad probe
                logger.exception("judge health check failed unexpectedly")

    def stats(self) -> dict[str, dict[str, Union[int, bool]]]:
        """Per endpoint: attempts sent (``requests``), failed attempts, in-flight, healthy."""
        return {
            url: {
                "requests": s.requests,
                "failures": s.failures,
                "in_flight": s.in_flight,
                "healthy": s.healthy,
            }
            for url, s in ((u, self._states[u]) for u in self._order)
        }
