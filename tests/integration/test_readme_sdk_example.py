"""The README's OpenTelemetry SDK example, run as written (issue 16 item 13).

Only the server address changes (to the port a real `serve` got); the exporter is pointed at a test
OTLP receiver with the SDK's own environment variable, so the snippet's text is untouched.
"""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.integration.test_otel_collector import OtlpLogsReceiver
from tests.integration.test_serve_process import ServeProcess

pytestmark = pytest.mark.server
SECTION = "## Add logllm to a Python service (OpenTelemetry SDK)"


def _section() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]


def _snippet() -> str:
    return _section().split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_names_an_extra_that_provides_every_import_of_the_example():
    import importlib.metadata as md

    section = _section()
    extra = section.split("[", 1)[1].split("]", 1)[0]
    assert f"pip install -e '.[{extra}]'" in section
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    wanted = {line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
              for key in ("install_requires",) for line in parser["options"][key].splitlines() if line.strip()}
    wanted |= {line.split(">")[0].split("=")[0].strip().lower()
               for line in parser["options.extras_require"][extra].splitlines() if line.strip()}
    providers = md.packages_distributions()
    for line in _snippet().splitlines():
        if line.startswith("from ") and not line.startswith(("from collectors", "from logllm_plugin")):  # ours
            module = line.split()[1]
            top = module.split(".")[0]
            dists = {d.lower() for d in providers.get(top, [])}
            __import__(module)
            owner = next(d for d in dists if any(f.startswith(module.replace(".", "/") + "/") or
                                                  f == module.replace(".", "/") + ".py"
                                                  for f in (str(p) for p in (md.files(d) or []))))
            assert owner.replace("_", "-") in wanted, (module, owner, extra)


def test_the_readme_sdk_example_annotates_records_through_a_real_server():
    server = ServeProcess("--threads", "1")
    receiver = OtlpLogsReceiver()
    receiver.server.start()
    try:
        server.wait_serving()
        code = _snippet().replace("localhost:50051", f"127.0.0.1:{server.port}")
        assert code != _snippet()
        code += ("\nlog = provider.get_logger('checkout')\n"
                 "for n in range(3):\n"
                 "    log.emit(body=f'order {n} accepted', attributes={'service.name': 'checkout'})\n"
                 "provider.shutdown()\n")
        env = dict(os.environ, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                   OTEL_EXPORTER_OTLP_LOGS_INSECURE="true", PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                              cwd=REPO)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while len(receiver.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        bodies = [body for body, _ in receiver.records]
        assert bodies == [f"order {n} accepted" for n in range(3)]
        labels = {attributes.get("logllm.anomaly.label") for _, attributes in receiver.records}
        assert labels <= {"normal", "anomalous"} and labels, receiver.records
    finally:
        receiver.server.stop(0)
        server.stop()
