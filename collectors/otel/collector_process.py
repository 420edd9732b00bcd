"""Build and run the real OpenTelemetry Collector (otelcol-logllm) for tests and benchmarks.

    from collectors.otel.collector_process import CollectorProcess, build_collector, free_port

    binary = build_collector()               # scripts/build-otelcol; cached outside the repo
    with CollectorProcess(config_yaml, binary) as col:
        ...                                  # the collector is running and ready here
        print(col.log_text())                # its stdout+stderr so far

Standard library only. The distribution's components (collectors/otel/otelcol/components.go):
receivers `otlp`, `file_log` (alias `filelog`); processors `batch`, `memory_limiter`, `logllm`
(collectors/otel/logllmprocessor); exporters `otlp_grpc`,
`otlp_http`, `debug`; extension `health_check`.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-otelcol"
READY_LINE = "Everything is ready"


class CollectorError(RuntimeError):
    """The collector could not be built, did not become ready, or exited early."""


def find_go() -> str | None:
    """Path of the Go toolchain the build script would use, or None when Go is not installed."""
    if os.environ.get("GO"):
        return os.environ["GO"]
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    return str(fallback) if fallback.is_file() and os.access(fallback, os.X_OK) else None


def build_collector(timeout: float = 1800.0) -> Path:
    """Run scripts/build-otelcol and return the binary's path (a cached binary returns at once).

    A cold build downloads the Go modules and compiles (minutes); its progress goes to stderr.
    Raises CollectorError with the script's output when the build fails.
    """
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise CollectorError(f"scripts/build-otelcol failed (exit {proc.returncode}):\n"
                             f"{proc.stderr[-4000:]}{proc.stdout[-1000:]}")
    binary = Path(lines[-1])
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise CollectorError(f"scripts/build-otelcol printed {binary}, which is not an executable file")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, from below the kernel's ephemeral range.

    A port read from a bind to port 0 is an ephemeral one: between closing it and the collector
    binding it, any outgoing connection on the host may be given the same port (CI: "bind: address
    already in use" for a collector's health port while Elasticsearch clients were connecting).
    Ports below that range are never handed out that way, so only an explicit bind can take one;
    each is returned once per process."""
    low = _ephemeral_low()
    for _ in range(200):
        port = _random.randrange(max(1024, low - 12000), low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded host: an ephemeral one
        sock.bind((host, 0))
        return sock.getsockname()[1]


_random = random.SystemRandom()
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class CollectorProcess:
    """Run the collector binary on `config_yaml` for the duration of a `with` block.

    The config is written to a fresh temp dir (`workdir`), the collector's stdout and stderr go
    to `workdir/collector.log` (`log_text()`). Readiness: when `health_port` is given (the
    config's `health_check` extension listens there) a GET on it must answer 200; otherwise
    the log must show "Everything is ready". Both also require the process to be alive.
    On exit: SIGTERM, then SIGKILL after `stop_timeout` seconds.
    """

    def __init__(self, config_yaml: str, binary: Path | str, *, health_port: int | None = None,
                 ready_timeout: float = 30.0, stop_timeout: float = 10.0,
                 env: dict[str, str] | None = None, args: list[str] | None = None):
        self.config_yaml = config_yaml
        self.binary = Path(binary)
        self.health_port = health_port
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = env
        self.args = list(args or [])
        self.workdir: Path | None = None
        self.config_path: Path | None = None
        self.log_path: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._log_fh = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "CollectorProcess":
        self._tmp = tempfile.TemporaryDirectory(prefix="otelcol-")
        self.workdir = Path(self._tmp.name)
        self.config_path = self.workdir / "config.yaml"
        self.config_path.write_text(self.config_yaml, encoding="utf-8")
        self.log_path = self.workdir / "collector.log"
        self._log_fh = open(self.log_path, "wb")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(
            [str(self.binary), f"--config=file:{self.config_path}", *self.args],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=self._log_fh, stderr=subprocess.STDOUT,
            env=env)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CollectorError(f"collector exited with {self.proc.returncode} before it was ready:\n"
                                     f"{self.log_text()[-6000:]}")
            if self._ready():
                return
            time.sleep(0.1)
        raise CollectorError(f"collector not ready after {self.ready_timeout:.0f}s:\n{self.log_text()[-6000:]}")

    def _ready(self) -> bool:
        if self.health_port is None:
            return READY_LINE in self.log_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=0.5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> int | None:
        """SIGTERM (graceful shutdown: the exporters flush), SIGKILL after stop_timeout; the exit code."""
        if self.proc is not None and self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.returncode = self.proc.returncode
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return self.returncode

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        # Keep the log readable after the block (log_text() reads it), remove it at cleanup().
        self.stop()
        self._saved_log = self.log_text()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- inspection ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """The collector's stdout+stderr so far (after the `with` block: all of it)."""
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        return getattr(self, "_saved_log", "")
