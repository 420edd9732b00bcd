"""Connecting to Elasticsearch or OpenSearch: settings from flags and env, backend detection, clients.

The official `elasticsearch` client refuses OpenSearch (product check, compatible-with media type),
so OpenSearch gets `opensearch-py`. `ClusterClient` hides the few calls where the two differ
(point in time, ingest processors) behind one small API used by setup, annotate and backfill.

Credentials come only from the environment (`LOGLLM_ES_API_KEY`, or `LOGLLM_ES_USERNAME` +
`LOGLLM_ES_PASSWORD`) or a config mapping, never from argv (visible in `ps`), and are never logged:
`ConnectionSettings.__repr__` shows which kind of auth is set, not its value.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from collectors.elastic.bulk import with_retries

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "elasticsearch", "opensearch")


class ClusterError(RuntimeError):
    """The cluster is unreachable, refused us, or lacks something we need (one clear line)."""


@dataclass
class ConnectionSettings:
    url: str
    backend: str = "auto"
    api_key: Optional[str] = field(default=None, repr=False)
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    ca_certs: Optional[str] = None
    verify_certs: bool = True
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not self.url or not self.url.startswith(("http://", "https://")):
            problems.append(f"url must start with http:// or https://, got {self.url!r}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.api_key and (self.username or self.password):
            problems.append("set either an API key or a username/password, not both")
        if bool(self.username) != bool(self.password):
            problems.append("basic auth needs both a username and a password")
        if self.ca_certs and not os.path.isfile(self.ca_certs):
            problems.append(f"CA certificate file not found: {self.ca_certs}")
        if problems:
            raise ClusterError("invalid connection settings: " + "; ".join(problems))
        self.url = self.url.rstrip("/")

    @classmethod
    def from_env(cls, url: str, backend: str = "auto", ca_certs: Optional[str] = None,
                 env: Mapping[str, str] = os.environ, **extra) -> "ConnectionSettings":
        return cls(url=url, backend=backend, api_key=env.get("LOGLLM_ES_API_KEY") or None,
                   username=env.get("LOGLLM_ES_USERNAME") or None, password=env.get("LOGLLM_ES_PASSWORD") or None,
                   ca_certs=ca_certs or env.get("LOGLLM_ES_CA_CERT") or None, **extra)

    @property
    def auth_kind(self) -> str:
        return "api_key" if self.api_key else "basic" if self.username else "none"

    def auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"ApiKey {self.api_key}"}
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}


def detect_backend(settings: ConnectionSettings) -> str:
    """`elasticsearch` or `opensearch`, from `GET /` (OpenSearch names its distribution) and, where
    `GET /` is missing (Elasticsearch's test distribution), the X-Elastic-Product header."""
    if settings.backend != "auto":
        return settings.backend
    info, headers = _raw_get(settings, "/")
    if isinstance(info, dict) and (info.get("version") or {}).get("distribution") == "opensearch":
        return "opensearch"
    if headers.get("x-elastic-product", "").lower() == "elasticsearch":
        return "elasticsearch"
    _, headers = _raw_get(settings, "/_cluster/health")
    if headers.get("x-elastic-product", "").lower() == "elasticsearch":
        return "elasticsearch"
    raise ClusterError(f"{settings.url}: neither Elasticsearch nor OpenSearch answered; pass --backend")


def _raw_get(settings: ConnectionSettings, path: str) -> tuple[Any, dict[str, str]]:
    request = urllib.request.Request(settings.url + path, headers={"Accept": "application/json",
                                                                   **settings.auth_headers()})
    context = None
    if settings.url.startswith("https://"):
        context = ssl.create_default_context(cafile=settings.ca_certs)
        if not settings.verify_certs:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=settings.request_timeout_s, context=context) as response:
            body, headers = response.read(), response.headers
    except urllib.error.HTTPError as exc:  # an error status still carries the product header
        body, headers = exc.read(), exc.headers
        if exc.code in (401, 403):
            raise ClusterError(f"{settings.url}: HTTP {exc.code}: check the credentials "
                               f"(auth: {settings.auth_kind})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ClusterError(f"{settings.url}: unreachable: {getattr(exc, 'reason', exc)}") from None
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        parsed = None
    return parsed, {k.lower(): v for k, v in headers.items()}


class ClusterClient:
    """One client API over both backends; `raw` is the library client for everything else."""

    def __init__(self, settings: ConnectionSettings, backend: Optional[str] = None):
        self.settings = settings
        self.backend = backend or detect_backend(settings)
        # Retries are ours (collectors.elastic.bulk): with backoff, counted, and per bulk item too.
        common: dict[str, Any] = dict(request_timeout=settings.request_timeout_s, max_retries=0,
                                      retry_on_timeout=False)
        if settings.ca_certs:
            common["ca_certs"] = settings.ca_certs
        if not settings.verify_certs:
            common["verify_certs"] = False
        if self.backend == "elasticsearch":
            from elasticsearch import Elasticsearch

            if settings.api_key:
                common["api_key"] = settings.api_key
            elif settings.username:
                common["basic_auth"] = (settings.username, settings.password)
            self.raw = Elasticsearch(settings.url, **common)
        else:
            from opensearchpy import OpenSearch

            common["timeout"] = common.pop("request_timeout")
            if settings.username:
                common["http_auth"] = (settings.username, settings.password)
            elif settings.api_key:
                common["headers"] = settings.auth_headers()
            self.raw = OpenSearch([settings.url], **common)
        logger.info("connected to %s as %s (auth: %s)", settings.url, self.backend, settings.auth_kind)

    # ------------------------------------------------------------------ calls that differ by backend
    def open_pit(self, index: str, keep_alive: str = "5m") -> str:
        if self.backend == "elasticsearch":
            return with_retries(lambda: self.raw.open_point_in_time(index=index, keep_alive=keep_alive)["id"])
        return with_retries(lambda: self.raw.create_pit(index=index, params={"keep_alive": keep_alive})["pit_id"])

    def close_pit(self, pit_id: str) -> None:
        try:
            if self.backend == "elasticsearch":
                self.raw.close_point_in_time(id=pit_id)
            else:
                self.raw.delete_pit(body={"pit_id": [pit_id]})
        except Exception as exc:  # an expired PIT is gone anyway; never fail a pass over it
            logger.debug("closing point in time failed: %s", exc)

    def wait_for_index(self, index: str, timeout_s: int = 60) -> None:
        """Until the index's primaries have started (a just-created index answers 503 before)."""
        if self.backend == "elasticsearch":
            self.raw.cluster.health(index=index, wait_for_status="yellow", timeout=f"{timeout_s}s")
        else:  # opensearch-py takes a `timeout` parameter as its own request timeout: the server's 30 s default
            self.raw.cluster.health(index=index, params={"wait_for_status": "yellow"})

    def tiebreaker_sort(self) -> dict:
        """A unique, PIT-stable last sort key for search_after (OpenSearch has no `_shard_doc`)."""
        return {"_shard_doc": "asc"} if self.backend == "elasticsearch" else {"_id": "asc"}

    def search(self, body: dict) -> dict:
        """A search whose body names its PIT (so no index in the path)."""
        if self.backend == "elasticsearch":
            return with_retries(lambda: self.raw.search(body=body).body)
        return with_retries(lambda: self.raw.search(body=body))

    def search_index(self, index: str, body: dict) -> dict:
        result = self.raw.search(index=index, body=body)
        return result.body if self.backend == "elasticsearch" else result

    def bulk(self, operations: list[dict]) -> dict:
        result = self.raw.bulk(body=operations)
        return result.body if self.backend == "elasticsearch" else result

    def refresh(self, index: str) -> None:
        with_retries(lambda: self.raw.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True))

    def ingest_processors(self) -> set[str]:
        """Processor types every ingest node offers (empty: no ingest node or no processors)."""
        nodes = self.raw.nodes.info(metric="ingest")
        nodes = nodes.body if self.backend == "elasticsearch" else nodes
        per_node = [{p["type"] for p in (n.get("ingest") or {}).get("processors", [])}
                    for n in nodes.get("nodes", {}).values() if "ingest" in (n.get("roles") or ["ingest"])]
        return set.intersection(*per_node) if per_node else set()

    def matching_indices(self, pattern: str) -> list[str]:
        result = self.raw.indices.get(index=pattern, allow_no_indices=True, ignore_unavailable=True,
                                      expand_wildcards="open")
        result = result.body if self.backend == "elasticsearch" else result
        return sorted(result)

    def field_types(self, pattern: str, fields: Iterable[str]) -> dict[str, str]:
        """Mapped type of each field that exists in any index of `pattern`."""
        # a list, not a joined string: the clients URL-encode the comma and ask for one field named "a,b"
        result = self.raw.field_caps(index=pattern, fields=list(fields), allow_no_indices=True,
                                     ignore_unavailable=True)
        result = result.body if self.backend == "elasticsearch" else result
        return {name: next(iter(types)) for name, types in (result.get("fields") or {}).items() if types}

    def close(self) -> None:
        self.raw.close()


def connect(url: str, backend: str = "auto", ca_certs: Optional[str] = None, **extra) -> ClusterClient:
    return ClusterClient(ConnectionSettings.from_env(url, backend=backend, ca_certs=ca_certs, **extra))
