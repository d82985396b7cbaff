"""Webhook deliveries of HTTP jobs, from the durable outbox in the store.

Each tick reads what is due (webhooks of jobs that just ended, and failed ones whose retry time has
come), POSTs the job through the SSRF guard (``surge.server.net``), records the attempt and asks
``surge.core.webhooks`` when to try again. Everything lives in the store, so a restarted control
plane carries on where it stopped; a delivery interrupted by a crash is sent again (at least once:
receivers deduplicate on ``X-Surge-Delivery``).

Headers of a delivery::

    Content-Type: application/json
    X-Surge-Event: job.finished
    X-Surge-Delivery: <job id>            (the same on every attempt)
    X-Surge-Attempt: <n>
    X-Surge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from surge.core.webhooks import SIGNATURE_HEADER, Backoff, next_attempt_at, signature_header
from surge.server.net import RefusedURL, post_checked
from surge.store.base import Store, WebhookAttempt, WebhookRow

log = logging.getLogger("surge.webhooks")

PARALLEL = 16                  # deliveries in flight at once


class WebhookSender:
    def __init__(self, store: Store, *, render: Callable[[str], Awaitable[bytes | None]],
                 secret_for: Callable[[str], str], backoff: Backoff, allow_private: bool,
                 timeout: float) -> None:
        self.store = store
        self.render = render
        self.secret_for = secret_for
        self.backoff = backoff
        self.allow_private = allow_private
        self.timeout = timeout
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(PARALLEL)

    async def tick(self, now: float) -> int:
        """Start the deliveries that are due; returns how many started."""
        free = PARALLEL - len(self._inflight)
        if free <= 0:
            return 0
        started = 0
        for w in await self.store.webhooks_due(now, limit=PARALLEL):
            if w.job_id in self._inflight or started >= free:
                continue
            task = asyncio.create_task(self.deliver(w))
            self._inflight[w.job_id] = task
            task.add_done_callback(self._forget)
            started += 1
        return started

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, t in list(self._inflight.items()):
            if t is task:
                del self._inflight[key]

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def deliver(self, w: WebhookRow) -> None:
        """One attempt, recorded with what came of it (an error recording it leaves the webhook due:
        the next tick tries again)."""
        try:
            await self._attempt(w)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivering the webhook of job %s failed", w.job_id)

    async def _attempt(self, w: WebhookRow) -> None:
        async with self._slots:
            n = w.attempts + 1
            started = time.time()
            first_at = w.first_at or started
            status, error = await self._send(w, n)
            took = time.time() - started
            if error is None:
                state, next_at = "DELIVERED", None
            else:
                next_at = next_attempt_at(self.backoff, attempts=n, first_at=first_at, now=time.time())
                state = "PENDING" if next_at is not None else "FAILED"
                log.info("webhook of job %s, attempt %d: %s (%s)", w.job_id, n, error,
                         f"next at {next_at:.1f}" if next_at else "giving up")
            await self.store.record_webhook_attempt(
                WebhookAttempt(job_id=w.job_id, n=n, at=started, duration=took, status_code=status, error=error),
                state=state, next_at=next_at, first_at=first_at)

    async def _send(self, w: WebhookRow, n: int) -> tuple[int | None, str | None]:
        body = await self.render(w.job_id)
        if body is None:
            return None, "the job no longer exists"
        headers = {"Content-Type": "application/json", "User-Agent": "surge-webhooks/1",
                   "X-Surge-Event": "job.finished", "X-Surge-Delivery": w.job_id, "X-Surge-Attempt": str(n),
                   SIGNATURE_HEADER: signature_header(self.secret_for(w.signer), body, timestamp=int(time.time()))}
        try:
            answer = await asyncio.wait_for(
                post_checked(w.url, body, headers, allow_private=self.allow_private, timeout=self.timeout),
                self.timeout)
        except RefusedURL as exc:
            return None, f"refused: {exc.message}"
        except TimeoutError:
            return None, f"no answer within {self.timeout:g} s"
        except (httpx.HTTPError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if 200 <= answer.status_code < 300:
            return answer.status_code, None
        text = answer.body[:200].decode(errors="replace").strip()
        why = " (redirects are not followed)" if 300 <= answer.status_code < 400 else ""
        return answer.status_code, f"HTTP {answer.status_code}{why}" + (f": {text}" if text else "")
