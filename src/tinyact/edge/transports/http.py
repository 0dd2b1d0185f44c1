"""HTTP transport: ``POST /v1/clips`` with the device key, one request per batch of outbox messages.

The answer to a POST carries one result per clip, so a 200 is the cloud's acknowledgement. Bodies are
gzip-compressed (``Content-Encoding: gzip``) when that saves at least 10 % (``gzip: auto``); a cloud that
does not accept compressed bodies is detected (its 415/422 to a compressed body) and sent plain from then
on. ``GET /v1/results?since=`` brings back results the device missed (e.g. a response lost in an outage), and
``GET /v1/model`` says which classifier (and encoder) the cloud expects.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
from collections.abc import Sequence

import httpx
from pydantic import ValidationError

from tinyact.edge.transports.base import RETRYABLE_422, SendOutcome, clip_id_of, encoder_of
from tinyact.wire import ENCODER_MISMATCH, ClipResult, ModelInfo, ResultsPage

logger = logging.getLogger(__name__)

GZIP_MIN_BYTES = 1024
GZIP_MIN_SAVING = 0.10


class HttpTransport:
    """``POST /v1/clips`` with the device key; one request per batch of outbox messages."""

    def __init__(self, cloud_url: str, device_key: str, *, gzip_mode: str = "auto", timeout_s: float = 15.0,
                 client: httpx.Client | None = None) -> None:
        self.url = cloud_url.rstrip("/")
        self.gzip_mode = gzip_mode
        self.client = client or httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {device_key}"})
        self.gzip_refused = False
        self.requests = 0  # POSTs that reached the cloud

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def body(self, messages: Sequence[str]) -> tuple[bytes, dict[str, str]]:
        """The request body for ``messages`` and its headers (compressed when it helps and is allowed)."""
        raw = ('{"clips":[' + ",".join(messages) + "]}").encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip_mode == "never" or self.gzip_refused or (self.gzip_mode == "auto" and len(raw) < GZIP_MIN_BYTES):
            return raw, headers
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        if self.gzip_mode == "always" or len(packed) <= (1 - GZIP_MIN_SAVING) * len(raw):
            headers["Content-Encoding"] = "gzip"
            return packed, headers
        return raw, headers

    def send(self, messages: Sequence[str]) -> SendOutcome:
        """POST the messages; a 422 for the batch is narrowed down clip by clip so one bad clip never holds
        the others back."""
        ids = [clip_id_of(m) for m in messages]
        body, headers = self.body(messages)
        outcome = SendOutcome(bytes_sent=len(body))
        try:
            response = self.client.post(f"{self.url}/v1/clips", content=body, headers=headers)
        except httpx.HTTPError as error:
            return SendOutcome(retry=ids, error=f"cloud unreachable: {type(error).__name__}: {error}", bytes_sent=0)
        self.requests += 1
        if headers.get("Content-Encoding") == "gzip" and response.status_code in (400, 415, 422) \
                and _error_code(response) in ("invalid_request", "unsupported_media_type", "bad_request"):
            # The cloud did not understand the compressed body (an older service): send plain from now on.
            logger.warning("the cloud refused a gzip-compressed body (%s); sending uncompressed from now on",
                           response.status_code)
            self.gzip_refused = True
            return self.send(messages)
        if response.status_code == 200:
            try:
                results = [ClipResult.model_validate(r) for r in response.json()["results"]]
            except (ValueError, KeyError, ValidationError) as error:
                return SendOutcome(retry=ids, error=f"unreadable answer from the cloud: {error}", bytes_sent=len(body))
            outcome.results = results
            outcome.delivered = ids
            return outcome
        code = _error_code(response)
        detail = f"{response.status_code} {code}: {_detail(response)}"
        if response.status_code == 413 and len(messages) > 1:
            return self._split(messages, outcome)
        if response.status_code == 409 and code == ENCODER_MISMATCH:
            groups: dict[str | None, list[str]] = {}
            for message in messages:
                groups.setdefault(encoder_of(message), []).append(message)
            if len(groups) > 1:  # clips of several encoders (the edge switched): the cloud may take some of them
                return self._merge([self.send(group) for group in groups.values()], outcome)
            outcome.held = dict.fromkeys(ids, detail)
            return outcome
        if response.status_code == 422 and code not in RETRYABLE_422:
            if len(messages) > 1:
                return self._split(messages, outcome)
            outcome.rejected = {ids[0]: detail}
            return outcome
        outcome.retry = ids
        outcome.error = detail
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            with contextlib.suppress(ValueError):
                outcome.retry_after_s = float(retry_after)
        return outcome

    def _split(self, messages: Sequence[str], outcome: SendOutcome) -> SendOutcome:
        half = len(messages) // 2
        return self._merge([self.send(part) for part in (messages[:half], messages[half:])], outcome)

    @staticmethod
    def _merge(parts: list[SendOutcome], outcome: SendOutcome) -> SendOutcome:
        for sub in parts:
            outcome.delivered += sub.delivered
            outcome.results += sub.results
            outcome.retry += sub.retry
            outcome.rejected.update(sub.rejected)
            outcome.held.update(sub.held)
            outcome.bytes_sent += sub.bytes_sent
            outcome.error = outcome.error or sub.error
            outcome.retry_after_s = outcome.retry_after_s or sub.retry_after_s
        return outcome

    def model_info(self) -> ModelInfo | None:
        """The cloud's active classifier (``GET /v1/model``), or ``None`` if it cannot be read now."""
        try:
            response = self.client.get(f"{self.url}/v1/model", timeout=3.0)  # a start-up check: never hold it up long
            response.raise_for_status()
            return ModelInfo.model_validate(response.json())
        except (httpx.HTTPError, ValueError, ValidationError):
            return None

    def fetch_results(self, since: int, limit: int = 1000) -> tuple[list[ClipResult], int]:
        """Results after cursor ``since`` (oldest first) and the next cursor; raises ``httpx.HTTPError``."""
        response = self.client.get(f"{self.url}/v1/results", params={"since": since, "limit": limit})
        response.raise_for_status()
        page = ResultsPage.model_validate(response.json())
        return page.results, page.next_cursor


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:1000]
    except (ValueError, AttributeError):
        return response.text[:300]
