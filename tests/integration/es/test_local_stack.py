"""scripts/local-stack: `up` is idempotent, `status` and `down` find the server by its pid file."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.integration.es.conftest import LocalStack

pytestmark = pytest.mark.elasticsearch


def test_up_on_a_running_server_prints_the_same_url_and_status_names_it(elasticsearch_stack):
    stack, url = elasticsearch_stack
    assert stack.up() == url
    status = stack.status()
    assert status.returncode == 0 and url in status.stdout
    with urllib.request.urlopen(url + "/_cluster/health", timeout=10) as response:
        assert json.load(response)["status"] in ("yellow", "green")
    pid = int(open(os.path.join(stack.directory, "elasticsearch", "pid")).read())
    if os.getuid() == 0:  # Elasticsearch refuses root: the script runs it as a system user
        assert os.stat(f"/proc/{pid}").st_uid != 0


def test_down_stops_the_server_and_a_second_down_is_harmless():
    stack = LocalStack("elasticsearch")
    try:
        url = stack.up()
        pid = int(open(os.path.join(stack.directory, "elasticsearch", "pid")).read())
        stack._call("down", timeout_s=120)
        assert not os.path.exists(f"/proc/{pid}")
        assert stack.status().returncode == 3
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/_cluster/health", timeout=5)
        stack._call("down", timeout_s=60)
    finally:
        stack.down()
