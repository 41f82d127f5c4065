"""Server processes for the benchmarks: start a command on a free loopback port, wait until it answers, stop it.

`free_port` and `launch` are also how the tests start their service processes (tests/support/service.py),
so benchmarks and tests run servers the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(module_args: list[str], port: int, log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m <module_args> --host 127.0.0.1 --port <port>` in the project root, output to `log`.

    The child gets this environment without its `SEG_*` variables (a caller's own service settings must not
    leak into the server under test), plus `env`.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEG_")}
    environment.update(env or {})
    return subprocess.Popen([sys.executable, "-m", *module_args, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Server:
    """A running server process; `url` is on 127.0.0.1."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, module_args: list[str], ready_path: str, log_dir: Path,
          env: dict[str, str] | None = None) -> Server:
    """`python -m <module_args> --port P` in the project root; returns once GET ready_path answers 200."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = launch(module_args, port, log, env)
    server = Server(name, process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}: {log_tail}")
        try:
            if httpx.get(server.url + ready_path, timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{name} did not become ready in {START_TIMEOUT_S} s; see {log_path}")
