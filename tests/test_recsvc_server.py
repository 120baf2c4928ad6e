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
        second = subprocess.Popen(
            [sys.executable, "-m", "recsvc"], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, error = second.communicate(timeout=30)
        finally:
            if second.poll() is None:  # it started serving: stop it and its workers
                os.killpg(second.pid, signal.SIGKILL)
        assert second.returncode == 1, "a second server must not share the first one's port"
        assert f"error: POSTERREC_BIND: cannot listen on 127.0.0.1:{port}: Address already in use" in error
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0 and list(scratch.iterdir()) == []


def test_a_busy_port_or_a_host_name_is_a_setting_error_naming_it() -> None:
    import socket

    from posterrec_settings import ConfigError, check_can_listen

    with socket.socket() as busy:  # another server, sharing its port as granian does
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"^POSTERREC_BIND: cannot listen on 127\.0\.0\.1:{port}: Address already"
        ):
            check_can_listen("127.0.0.1", port, "POSTERREC_BIND")
    check_can_listen("127.0.0.1", port, "POSTERREC_BIND")  # free again
    with pytest.raises(ConfigError, match="^POSTERREC_BIND needs an IP address to listen on .*, got 'localhost'"):
        check_can_listen("localhost", port, "POSTERREC_BIND")


def test_host_and_port_without_dev_are_refused_rather_than_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    from recsvc.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["--port", "8124"])
    assert stopped.value.code == 2
    assert "--host and --port set --dev's address; the server's is POSTERREC_BIND=HOST:PORT" in capsys.readouterr().err


def test_metrics_on_the_api_address_are_refused_before_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from posterrec_settings import ConfigError

    from recsvc.__main__ import serve

    port = free_port()
    monkeypatch.setenv("POSTERREC_BIND", f"127.0.0.1:{port}")
    monkeypatch.setenv("POSTERREC_METRICS_BIND", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=f"metrics_bind 127.0.0.1:{port} is the API's own address"):
        serve(argparse.Namespace())


def test_help_describes_the_server_without_source_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from recsvc.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    assert "POSTERREC_BIND (HOST:PORT, default 127.0.0.1:8000)" in shown
    assert "``" not in shown and ":mod:" not in shown and ":class:" not in shown


def test_gunicorn_stops_with_one_line_naming_a_metrics_bind_it_cannot_use(tmp_path: Path) -> None:
    import socket

    from bench.support import REPO, gunicorn_command, service_env

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        metrics_port = busy.getsockname()[1]
        settings = {"POSTERREC_METRICS_BIND": f"127.0.0.1:{metrics_port}", "POSTERREC_HOME": str(tmp_path)}
        env = {**os.environ, **service_env(free_port(), 1, **settings), "TMPDIR": str(tmp_path)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        run = subprocess.run(gunicorn_command(), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert f"error: metrics_bind: cannot listen on 127.0.0.1:{metrics_port}: Address already in use" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not list(tmp_path.glob("posterrec-metrics-*")), "no temporary metrics folder is left behind"
