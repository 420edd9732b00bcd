"""Bulk partial updates with optimistic concurrency, retries with backoff, and per-item outcomes.

Every update carries the `if_seq_no` / `if_primary_term` the document had when it was read, so an
annotation never lands on a document that changed meanwhile (another annotator, a restart that
re-read it before a refresh): the cluster answers 409 and the document is simply read again later.
A whole request that fails with 429, 5xx or a connection error is retried with exponential backoff;
so are items rejected with 429/503 inside a successful response. Other item errors are permanent
and returned to the caller, which records them.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class BulkFailed(RuntimeError):
    """The cluster kept refusing a bulk request for longer than the retry budget."""


@dataclass
class UpdateItem:
    index: str
    doc_id: str
    seq_no: int
    primary_term: int
    doc: dict[str, Any]


@dataclass
class BulkOutcome:
    updated: list[UpdateItem] = field(default_factory=list)  # written (or already identical: noop)
    conflicts: list[UpdateItem] = field(default_factory=list)  # changed since read: read again later
    failed: list[tuple[UpdateItem, int, str]] = field(default_factory=list)  # permanent: item, status, reason
    request_retries: int = 0
    item_retries: int = 0


def request_status(exc: BaseException) -> Optional[int]:
    """HTTP status of a client exception from either library; 0 for connection errors; None if unknown."""
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None) if meta is not None else None
    if status is None:
        status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or isinstance(exc, (ConnectionError, TimeoutError)):
        return 0
    return None


def with_retries(call: Callable[[], Any], attempts: int = 8, sleep: Callable[[float], None] = time.sleep,
                 max_pause_s: float = 5.0):
    """call() again on 429/5xx/connection errors with exponential backoff; anything else raises at once."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            status = request_status(exc)
            transient = status == 0 or status in TRANSIENT_STATUSES
            if not transient or attempt + 1 == attempts:
                raise
            logger.warning("cluster refused a request (%s); retrying", status or "connection error")
            sleep(min(max_pause_s, 0.1 * 2 ** attempt))


class BulkWriter:
    def __init__(self, bulk: Callable[[list[dict]], dict], *, max_attempts: int = 8, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        if max_attempts < 1 or backoff_base_s < 0 or backoff_max_s < backoff_base_s:
            raise ValueError("max_attempts >= 1 and 0 <= backoff_base_s <= backoff_max_s")
        self._bulk = bulk
        self.max_attempts, self.backoff_base_s, self.backoff_max_s = max_attempts, backoff_base_s, backoff_max_s
        self._sleep = sleep

    def _pause(self, attempt: int) -> None:
        delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        self._sleep(delay * (0.5 + random.random() / 2))  # jitter: parallel annotators do not retry in step

    def write(self, items: list[UpdateItem]) -> BulkOutcome:
        outcome = BulkOutcome()
        todo = list(items)
        attempt = 0
        while todo:
            operations: list[dict] = []
            for item in todo:
                operations.append({"update": {"_index": item.index, "_id": item.doc_id, "if_seq_no": item.seq_no,
                                              "if_primary_term": item.primary_term}})
                operations.append({"doc": item.doc})
            try:
                response = self._bulk(operations)
            except Exception as exc:
                status = request_status(exc)
                if status is None or (status != 0 and status not in TRANSIENT_STATUSES):
                    raise
                attempt += 1
                outcome.request_retries += 1
                if attempt >= self.max_attempts:
                    raise BulkFailed(f"bulk request failed {attempt} times, last: {status or 'connection'}: {exc}") from exc
                logger.warning("bulk request refused (%s); retrying %d item(s), attempt %d",
                               status or "connection error", len(todo), attempt + 1)
                self._pause(attempt - 1)
                continue
            retry: list[UpdateItem] = []
            for item, result in zip(todo, response.get("items", [])):
                body = result.get("update", {})
                status = body.get("status", 0)
                if 200 <= status < 300:
                    outcome.updated.append(item)
                elif status == 409:
                    outcome.conflicts.append(item)
                elif status in TRANSIENT_STATUSES:
                    retry.append(item)
                else:
                    error = body.get("error") or {}
                    reason = f"{error.get('type', 'error')}: {error.get('reason', '')}" if isinstance(error, dict) else str(error)
                    outcome.failed.append((item, status, reason))
            if len(response.get("items", [])) != len(todo):
                raise BulkFailed(f"bulk answered {len(response.get('items', []))} items for {len(todo)} operations")
            if retry:
                attempt += 1
                outcome.item_retries += len(retry)
                if attempt >= self.max_attempts:
                    outcome.failed.extend((item, 429, "rejected by the cluster after retries") for item in retry)
                    break
                self._pause(attempt - 1)
            todo = retry
        return outcome
