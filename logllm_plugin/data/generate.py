"""Synthetic microservice request sequences with labeled anomaly categories (`data generate`).

Each sequence is one request through a service: received → session check → config → DB
connection → (lock → write → unlock | read) → downstream call → answer → store → publish →
respond, 6-15 lines, with realistic parameters (ids, IPs, amounts, latencies) and timestamps that
grow with the line order.

Unlike the original project's generator, where every anomaly carries ERROR lines (a keyword
filter separates it perfectly), an anomaly here shows in one of three ways, at a configurable mix:
  explicit  error lines at the failing step, the request cut short (the classic case)
  order     the same steps in a wrong order and nothing else: a session checked after the data
            was read, a write before its lock, an event published before the row was stored
  count     a step missing or repeated: retries, a config never loaded, a GC storm
and normal sequences carry benign WARN noise (slow query, cache miss, deprecated header), so a
WARN line alone means nothing. Order anomalies leave the bag of templates unchanged: a
template-count baseline cannot see them, an order-aware model must.

Categories follow the knowledge base of the default analyzer (analyzers/knowledge_base.yaml)
where it has one; `concurrency_conflict` has no class there. Same seed, same output.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Sequence

CATEGORIES = (
    "cascading_failure",  # cascading service failure
    "auth_error",  # authentication / authorization failure
    "resource_exhaustion",
    "timeout",  # network timeout
    "data_format_error",  # data corruption
    "concurrency_conflict",
    "configuration_error",
    "database_error",  # database connection failure
)
KINDS = ("explicit", "order", "count")
MIN_LINES, MAX_LINES = 6, 15
_START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)

# --------------------------------------------------------------------------- the request flow
# Steps by role. {p} fields are filled from the request's parameters (see _params).
_STEPS: dict[str, tuple[str, str]] = {
    "received": ("INFO", "received {method} {path} from {ip} user={user}"),
    "auth": ("INFO", "session token validated for user={user} scope={scope}"),
    "config": ("DEBUG", "loaded routing config revision {rev}"),
    "db_acquire": ("DEBUG", "db pool: connection acquired ({used}/{pool} in use)"),
    "lock": ("DEBUG", "lock acquired on {entity}={eid}"),
    "write": ("INFO", "{entity}={eid} updated to version {version}"),
    "unlock": ("DEBUG", "lock released on {entity}={eid}"),
    "read": ("INFO", "read {rows} rows from {table} for user={user}"),
    "call": ("INFO", "calling {downstream} {op} for {entity}={eid}"),
    "answer": ("INFO", "{downstream} answered 200 in {ms} ms"),
    "store": ("INFO", "stored {entity}={eid} checksum={checksum}"),
    "publish": ("INFO", "published event {event} for {entity}={eid}"),
    "respond": ("INFO", "responded {status} to {ip} in {total_ms} ms"),
}
_WRITE_FLOW = ("received", "auth", "config", "db_acquire", "lock", "write", "unlock", "call", "answer", "store",
               "publish", "respond")
_READ_FLOW = ("received", "auth", "config", "db_acquire", "read", "call", "answer", "respond")
_SHORT_READ_FLOW = ("received", "auth", "config", "db_acquire", "read", "respond")

_SERVICES = {
    "checkout-service": dict(entity="order", table="orders", downstream="payment-service", op="charge",
                             event="OrderPlaced", method="POST", path="/api/v1/orders"),
    "inventory-service": dict(entity="sku", table="stock", downstream="warehouse-service", op="reserve",
                              event="StockReserved", method="PUT", path="/api/v1/stock"),
    "profile-service": dict(entity="profile", table="profiles", downstream="email-service", op="notify",
                            event="ProfileChanged", method="PATCH", path="/api/v2/profiles"),
    "billing-service": dict(entity="invoice", table="invoices", downstream="ledger-service", op="post",
                            event="InvoiceIssued", method="POST", path="/api/v1/invoices"),
}

# Benign noise: WARN lines that do not mean trouble, and routine lines.
_NOISE = (
    ("WARN", "slow query on {table} took {slow_ms} ms (threshold 200 ms)"),
    ("WARN", "cache miss for key user:{uid}, loading from store"),
    ("WARN", "client {ip} sent deprecated header X-Api-Version: 1"),
    ("WARN", "retrying {downstream} {op} (attempt 2 of 3) after connection reset; succeeded"),
    ("DEBUG", "feature flag new_pricing={flag} for user={user}"),
    ("INFO", "gc pause {gc_ms} ms, heap {heap}% of {heap_mb} MB"),
)
_GC = ("INFO", "gc pause {gc_ms} ms, heap {heap}% of {heap_mb} MB")

# ----------------------------------------------------------------------------- explicit errors
# category -> (the step where it fails, error lines, response status, explanation)
_EXPLICIT: dict[str, tuple[str, tuple[tuple[str, str], ...], int, str]] = {
    "cascading_failure": ("call", (
        ("ERROR", "{downstream} {op} failed: 503 Service Unavailable (upstream {upstream} unhealthy)"),
        ("WARN", "circuit breaker OPEN for {downstream} after {fails} consecutive failures"),
    ), 502, "{downstream} failed because its own dependency {upstream} was down; the circuit breaker opened "
            "and the request failed with 502."),
    "auth_error": ("auth", (
        ("ERROR", "authentication failed for user={user}: invalid token (expired {age} s ago)"),
    ), 401, "The session token of user={user} had expired, so authentication failed and the request was rejected."),
    "resource_exhaustion": ("write", (
        ("WARN", "heap usage at {high_heap}% of {heap_mb} MB"),
        ("ERROR", "java.lang.OutOfMemoryError: Java heap space while serialising {entity}={eid}"),
    ), 500, "The service ran out of heap memory while serialising {entity}={eid}."),
    "timeout": ("call", (
        ("ERROR", "{downstream} {op} timed out after {timeout_ms} ms"),
    ), 504, "The call to {downstream} timed out after {timeout_ms} ms, so the request failed with 504."),
    "data_format_error": ("store", (
        ("ERROR", "checksum mismatch for {entity}={eid}: stored {checksum} computed {checksum2}, record corrupt"),
    ), 500, "The stored record {entity}={eid} is corrupt: its checksum does not match the computed one."),
    "concurrency_conflict": ("write", (
        ("WARN", "version conflict on {entity}={eid}: expected {version} found {version2}"),
        ("ERROR", "concurrent modification of {entity}={eid}, update rejected after {fails} attempts"),
    ), 409, "Two requests modified {entity}={eid} at the same time; the update was rejected with 409."),
    "configuration_error": ("config", (
        ("ERROR", "missing required parameter {env_var} in environment; config revision {rev} not applied"),
    ), 500, "The required setting {env_var} is missing from the environment, so the config could not load."),
    "database_error": ("db_acquire", (
        ("ERROR", "database {db_host}:5432 rejected a new connection: too many connections for role app"),
        ("ERROR", "db pool: no connection available after {timeout_ms} ms"),
    ), 503, "The database at {db_host} accepted no new connection (too many connections), so the request "
            "could not get one."),
}


# ------------------------------------------------------------------- order / count anomalies
def _move_before(roles: list[str], role: str, before: str) -> tuple[list[str], list[int]]:
    out = [r for r in roles if r != role]
    out.insert(out.index(before), role)
    return out, [out.index(role)]


def _move_after(roles: list[str], role: str, after: str) -> tuple[list[str], list[int]]:
    out = [r for r in roles if r != role]
    out.insert(out.index(after) + 1, role)
    return out, [out.index(role)]


def _repeat(roles: list[str], role: str, times: int) -> tuple[list[str], list[int]]:
    i = roles.index(role)
    out = roles[: i + 1] + [role] * (times - 1) + roles[i + 1 :]
    return out, list(range(i + 1, i + times))


def _insert_after(roles: list[str], role: str, after: str, times: int) -> tuple[list[str], list[int]]:
    i = roles.index(after) + 1
    return roles[:i] + [role] * times + roles[i:], list(range(i, i + times))


def _drop(roles: list[str], role: str) -> tuple[list[str], list[int]]:
    i = roles.index(role)
    return roles[:i] + roles[i + 1 :], [i]  # evidence: the step that follows the gap


@dataclass(frozen=True)
class _Silent:
    kind: str  # "order" | "count"
    needs: tuple[str, ...]  # roles the flow must hold
    edit: Callable[[list[str], random.Random], tuple[list[str], list[int]]]
    explanation: str


_SILENT: dict[str, _Silent] = {
    "cascading_failure": _Silent("order", ("call", "answer", "respond"),
                                 lambda r, g: _move_before(r, "respond", "answer"),
                                 "The service answered its client before {downstream} replied: it fell back "
                                 "without the downstream result, the first sign of a failure spreading."),
    "auth_error": _Silent("order", ("auth", "db_acquire"),
                          lambda r, g: _move_before(r, "auth", "respond"),
                          "The session of user={user} was validated only after the data had been accessed: "
                          "the authorization check ran out of order."),
    "resource_exhaustion": _Silent("count", ("config",),
                                   lambda r, g: _insert_after(r, "gc", "config", g.randint(4, 6)),
                                   "Garbage collection ran again and again within one request: the heap is "
                                   "close to exhaustion."),
    "timeout": _Silent("count", ("call", "answer"),
                       lambda r, g: _repeat(_drop(r, "answer")[0], "call", g.randint(2, 3)),
                       "{downstream} never answered; the call was repeated and the request went on without it."),
    "data_format_error": _Silent("order", ("store", "publish"),
                                 lambda r, g: _move_before(r, "publish", "store"),
                                 "The {event} event was published before {entity}={eid} was stored: consumers "
                                 "can read data that does not exist yet."),
    "concurrency_conflict": _Silent("order", ("lock", "write"),
                                    lambda r, g: _move_before(r, "write", "lock"),
                                    "{entity}={eid} was updated before its lock was acquired: a write outside "
                                    "the lock can be lost to a concurrent request."),
    "configuration_error": _Silent("count", ("config",),
                                   lambda r, g: _drop(r, "config"),
                                   "The request ran without loading its routing config: the config step is "
                                   "missing."),
    "database_error": _Silent("count", ("db_acquire",),
                              lambda r, g: _repeat(r, "db_acquire", g.randint(3, 4)),
                              "The service had to acquire a database connection several times for one "
                              "request: connections are being dropped."),
}


@dataclass
class GenerateOptions:
    n: int = 1000
    anomaly_rate: float = 0.3
    seed: int = 0
    categories: tuple[str, ...] = CATEGORIES
    silent_rate: float = 0.5  # share of anomalies that show only in order/count (split evenly between them)
    noise_rate: float = 0.4  # share of sequences with benign WARN/DEBUG noise lines

    def problems(self) -> list[str]:
        out = []
        if self.n < 1:
            out.append(f"--n must be at least 1, got {self.n}")
        for name in ("anomaly_rate", "silent_rate", "noise_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            out.append(f"unknown categories {', '.join(unknown)}; choose from {', '.join(CATEGORIES)}")
        if not self.categories:
            out.append("at least one category is needed")
        return out


def _params(rng: random.Random, service: str) -> dict[str, Any]:
    p: dict[str, Any] = dict(_SERVICES[service])
    p.update(
        service=service,
        ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        user=f"u{rng.randint(10000, 99999)}", uid=rng.randint(10000, 99999),
        scope=rng.choice(["read", "write", "admin"]), rev=rng.randint(100, 999),
        used=rng.randint(1, 15), pool=20, eid=f"{rng.randint(10**7, 10**8 - 1)}",
        version=rng.randint(1, 60), rows=rng.randint(1, 200), ms=rng.randint(8, 180),
        checksum=f"{rng.getrandbits(32):08x}", checksum2=f"{rng.getrandbits(32):08x}",
        status={"POST": 201}.get(p["method"], 200), slow_ms=rng.randint(210, 900),
        flag=rng.choice(["true", "false"]), gc_ms=rng.randint(3, 40), heap=rng.randint(30, 70),
        heap_mb=rng.choice([512, 1024, 2048]), high_heap=rng.randint(95, 99),
        upstream=rng.choice(["pricing-service", "auth-service", "catalog-service"]),
        fails=rng.randint(3, 9), age=rng.randint(5, 86400), timeout_ms=rng.choice([1000, 2000, 5000, 30000]),
        env_var=rng.choice(["PAYMENT_API_URL", "DB_PASSWORD_FILE", "LEDGER_ENDPOINT", "SMTP_HOST"]),
        db_host=f"db-{rng.randint(1, 3)}.internal",
    )
    p["version2"] = p["version"] + rng.randint(1, 3)
    p["total_ms"] = p["ms"] + rng.randint(5, 120)
    return p


def _flow(rng: random.Random, needs: Sequence[str] = ()) -> list[str]:
    flows = [f for f in (_WRITE_FLOW, _READ_FLOW, _SHORT_READ_FLOW) if all(r in f for r in needs)]
    return list(rng.choice(flows))


class _Builder:
    """Lines with increasing timestamps, and which of them are evidence."""

    def __init__(self, rng: random.Random, start: datetime, params: dict[str, Any]):
        self.rng, self.t, self.p = rng, start, params
        self.lines: list[str] = []
        self.evidence: list[int] = []

    def add(self, level: str, text: str, evidence: bool = False) -> None:
        self.t += timedelta(milliseconds=self.rng.randint(1, 400))
        stamp = self.t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.t.microsecond // 1000:03d}Z"
        trace = self.p["trace"]
        if evidence:
            self.evidence.append(len(self.lines))
        self.lines.append(f"{stamp} {level:<5} {self.p['service']} [trace={trace}] {text.format(**self.p)}")


def _noise_slots(rng: random.Random, n_steps: int, noisy: bool) -> dict[int, list[tuple[str, str]]]:
    """Benign lines to put after some steps; never more than MAX_LINES in all."""
    if not noisy:
        return {}
    room = max(0, MAX_LINES - n_steps)
    count = min(room, rng.randint(1, 3))
    slots: dict[int, list[tuple[str, str]]] = {}
    for _ in range(count):
        slots.setdefault(rng.randrange(1, n_steps), []).append(rng.choice(_NOISE))
    return slots


def _render(b: _Builder, roles: list[str], evidence_at: Sequence[int], noise: dict[int, list[tuple[str, str]]]) -> None:
    for i, role in enumerate(roles):
        level, text = _GC if role == "gc" else _STEPS[role]
        b.add(level, text, evidence=i in evidence_at)
        for level, text in noise.get(i + 1, ()):
            b.add(level, text)


def _one(rng: random.Random, opts: GenerateOptions, index: int, start: datetime) -> dict[str, Any]:
    service = rng.choice(sorted(_SERVICES))
    params = _params(rng, service)
    params["trace"] = f"{rng.getrandbits(64):016x}"
    anomalous = rng.random() < opts.anomaly_rate
    noisy = rng.random() < opts.noise_rate
    category = rng.choice(list(opts.categories)) if anomalous else None
    kind = None
    if anomalous:
        kind = _SILENT[category].kind if rng.random() < opts.silent_rate else "explicit"
    b = _Builder(rng, start, params)
    explanation = None
    if kind is None:
        roles = _flow(rng)
        _render(b, roles, (), _noise_slots(rng, len(roles), noisy))
    elif kind == "explicit":
        fail_at, errors, status, explanation = _EXPLICIT[category]
        roles = _flow(rng, (fail_at,))
        roles = roles[: roles.index(fail_at) + (0 if fail_at in ("auth", "config", "db_acquire") else 1)]
        room = MAX_LINES - len(roles) - len(errors) - 1  # noise must not push the error past the last line
        for i, role in enumerate(roles):
            b.add(*_STEPS[role])
            if room > 0 and i and i < len(roles) - 1 and noisy and rng.random() < 0.3:
                b.add(*rng.choice(_NOISE))
                room -= 1
        for level, text in errors:
            b.add(level, text, evidence=True)
        params["status"] = status
        while len(b.lines) < MIN_LINES - 1:  # what a failing service logs before it answers
            b.add("DEBUG", "db pool: connection released ({used}/{pool} in use)")
        b.add(*_STEPS["respond"])
    else:
        silent = _SILENT[category]
        explanation = silent.explanation
        for _ in range(50):  # a flow whose edited length stays within 6-15 lines
            roles, evidence_at = silent.edit(_flow(rng, silent.needs), rng)
            if MIN_LINES <= len(roles) <= MAX_LINES:
                break
        # Noise never adds a GC line to a GC-storm sequence's neighbours' count, and never holds
        # the repeated step: the anomaly stays exactly what its kind says.
        slots = _noise_slots(rng, len(roles), noisy and len(roles) < MAX_LINES)
        if category == "resource_exhaustion":
            slots = {k: [x for x in v if x != _GC] for k, v in slots.items()}
        _render(b, roles, evidence_at, slots)
    row: dict[str, Any] = {
        "id": f"gen{opts.seed}-{index:06d}",
        "key": params["trace"],
        "lines": b.lines,
        "label": int(anomalous),
        "category": category,
        "anomaly_kind": kind,
        "explanation": explanation.format(**params) if explanation else None,
        "line_labels": [int(i in b.evidence) for i in range(len(b.lines))] if anomalous else None,
        "source": f"logllm-plugin data generate (seed {opts.seed})",
    }
    return {k: v for k, v in row.items() if v is not None}


def generate(opts: Optional[GenerateOptions] = None) -> list[dict[str, Any]]:
    """Sequence JSONL rows (id, key, lines, label, category, anomaly_kind, explanation, line_labels).

    Raises ValueError listing every problem with the options.
    """
    opts = opts or GenerateOptions()
    problems = opts.problems()
    if problems:
        raise ValueError("; ".join(problems))
    rng = random.Random(opts.seed)
    rows, t = [], _START
    for i in range(opts.n):
        t += timedelta(milliseconds=rng.randint(50, 5000))
        rows.append(_one(rng, opts, i, t))
    return rows
