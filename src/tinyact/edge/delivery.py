"""Delivery: the sender thread takes due outbox clips (oldest first) to the transport and applies the outcome.

::

    outbox (due, oldest first) -> transport (HTTP POST /v1/clips | MQTT QoS 1)
       │ 200 -> results stored, clips delivered;  failure -> retry with exponential backoff + jitter
       ▼                                        (the cloud is idempotent by clip_id: a retry is never a duplicate)
    results: POST response, MQTT result topic, and GET /v1/results?since=cursor after an outage

A clip the cloud refused for good is counted (``rejected``); one refused for its encoder is held
(:mod:`tinyact.edge.hold`). Nothing here drops a clip.
"""

from __future__ import annotations

import logging
import time

import httpx

from tinyact.edge.agent_base import AgentBase

logger = logging.getLogger(__name__)

RESULTS_PAGE = 1000


class Delivery(AgentBase):
    """The agent's part that sends the outbox and reads the results back."""

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.drain_once()
            except Exception:  # keep the sender alive whatever happens; the clips stay in the outbox
                logger.exception("sender failed")
                sent = 0
            if time.time() - self._last_poll > self.cfg.transport.results_poll_s:
                self.poll_results()
            try:
                self.recheck_cloud_model()
            except Exception:
                logger.exception("checking the cloud's model failed")
            if sent:
                continue
            wait = self.store.next_attempt_in()
            wait = min(self.cfg.transport.results_poll_s, self.cfg.transport.model_check_s, wait if wait is not None else float("inf"))
            self._wake.wait(timeout=max(0.05, wait))
            self._wake.clear()

    def drain_once(self) -> int:
        """Send one batch of due outbox clips and apply the outcome; returns the number of clips sent."""
        transport = self._ensure_transport()
        t = self.cfg.transport
        items = self.store.due(t.max_clips_per_request)
        if not items:
            return 0
        outcome = transport.send([item.message for item in items])
        self.bytes_sent += outcome.bytes_sent
        if outcome.results:
            self.store.record_results(outcome.results)
        if outcome.delivered:
            self.store.mark_delivered(outcome.delivered)
            self.clips_sent += len(outcome.delivered)
        if outcome.rejected:
            self.store.reject(outcome.rejected)
        if outcome.held:
            self.hold_clips(outcome.held)
        if outcome.retry:
            if outcome.error:
                delay = self.store.mark_failed(outcome.retry, outcome.error, t.retry_base_s, t.retry_max_s, outcome.retry_after_s)
                if self.last_send_error != outcome.error:
                    logger.warning("sending %d clip(s) failed (%s); retrying in %.1f s (backoff)", len(outcome.retry),
                                   outcome.error, delay)
                self.last_send_error = outcome.error
            else:  # MQTT: published; delivered when the result comes back, republished after ack_timeout_s
                self.store.defer(outcome.retry, t.ack_timeout_s, max_s=8 * t.ack_timeout_s)
                self.clips_sent += len(outcome.retry)
        if outcome.delivered or (outcome.retry and not outcome.error):
            if self.last_send_error:
                logger.info("the cloud is reachable again; sending the backlog")
                self.last_send_error = None
                self._last_poll = 0.0  # read the results feed now: responses may have been lost in the outage
            self.last_send_ok_at = time.time()
        if time.time() - self._last_status_write > 1.0:
            self.write_status()
        return len(items)

    def send_due(self, timeout: float = 30.0) -> int:
        """Send the outbox clips whose backoff has passed until none is due, a send fails or ``timeout`` passes
        (``tinyact edge run --rounds``: a cloud that is down costs one attempt per backoff step, not a busy loop).
        Returns the number of clips sent."""
        deadline = time.monotonic() + timeout
        before = self.clips_sent
        self.recheck_cloud_model()  # held clips: at most one GET /v1/model per model_check_s
        while time.monotonic() < deadline and self.store.due(1):
            self.drain_once()
            if self.last_send_error:  # failed: those clips wait for their next attempt
                break
        return self.clips_sent - before

    def poll_results(self) -> int:
        """Read ``GET /v1/results`` from the stored cursor to the end; returns the number of results."""
        self._last_poll = time.time()
        poller = self._poller
        if poller is None:
            return 0
        total = 0
        cursor = self.store.results_cursor
        try:
            while True:
                page, next_cursor = poller.fetch_results(cursor, RESULTS_PAGE)
                # The feed is per device id: results for clips another data directory captured are not ours.
                mine = self.store.known_clip_ids([str(r.clip_id) for r in page]) if page else set()
                results = [r for r in page if str(r.clip_id) in mine]
                if results:
                    self.store.record_results(results)
                    total += len(results)
                if next_cursor == cursor or not page:
                    break
                cursor = next_cursor
                self.store.results_cursor = cursor
        except (httpx.HTTPError, ValueError) as error:
            logger.debug("results feed not readable now: %s", error)
        return total

    def flush(self, timeout: float = 30.0) -> bool:
        """Send until the outbox is empty, ignoring backoff (shutdown, tests, the demo), or until ``timeout``;
        ``True`` if it emptied. Held clips (encoder mismatch) are not sent and do not count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.store.due(1, now=float("inf")):
                return True
            self.store.make_due()
            self.drain_once()
            if self.last_send_error:
                time.sleep(0.2)
        return not self.store.due(1, now=float("inf"))
