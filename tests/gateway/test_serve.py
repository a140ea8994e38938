"""`gateway serve` runs the app under gunicorn with the configured workers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_answers_health_checks_from_several_gunicorn_workers(instance: Settings) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(instance.config_path), "serve",
                               "--bind", f"127.0.0.1:{port}", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert body == {"status": "ok", "replica": "ok", "portal": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?token=never-logged-123", timeout=5):
            pass
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0
    assert output.count("Booting worker") == 2
    assert '"GET /healthz" 200' in output and "never-logged-123" not in output  # paths only in the access log
