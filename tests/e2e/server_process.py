"""Start and stop `faultguard serve` as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def faultguard_command() -> list[str]:
    script = Path(sys.executable).with_name("faultguard")
    if script.exists():
        return [str(script)]
    found = shutil.which("faultguard")
    if found:
        return [found]
    return [sys.executable, "-m", "faultguard_core.cli"]


@dataclass
class Server:
    """A running `faultguard serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    metrics_url: str
    db_path: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def start_server(tmp_path: Path, settings: dict[str, str]) -> Server:
    port = free_port()
    metrics_port = free_port()
    db_path = tmp_path / "fallback.db"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FAULTGUARD_")
    }
    env.update(
        {
            "FAULTGUARD_SERVER__PORT": str(port),
            "FAULTGUARD_METRICS__PORT": str(metrics_port),
            "FAULTGUARD_STORAGE__PATH": str(db_path),
            "FAULTGUARD_PLUGINS__AUTOLOAD": "false",
        }
    )
    env.update(settings)
    log_path = tmp_path / "faultguard.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*faultguard_command(), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = Server(
        process,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{metrics_port}/metrics",
        db_path,
        log_path,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"faultguard exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"faultguard did not answer /health:\n{server.log()}")
