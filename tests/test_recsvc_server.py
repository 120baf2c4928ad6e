"""``python -m recsvc`` as an operator runs it: granian on a port, stopped by SIGTERM."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.support import free_port


def _wait_for_health(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before it answered"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s} s")


@pytest.mark.slow
def test_the_server_answers_and_removes_the_metrics_directory_it_made_when_stopped(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(scratch),  # where the server makes its metrics directory
        "POSTERREC_HOME": str(tmp_path / "home"),
        "POSTERREC_BIND": f"127.0.0.1:{port}",
        "POSTERREC_WORKERS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "recsvc"], env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        assert [path.name[:18] for path in scratch.iterdir()] == ["posterrec-metrics-"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0 and list(scratch.iterdir()) == []
