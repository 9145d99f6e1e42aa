"""Start the three services as separate processes and stop exactly those (used by the demo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class Service:
    name: str
    argv: list[str]
    ready_url: str
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    """Child processes of the demo; each logs to ``<log_dir>/<name>.log``."""

    log_dir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, command: list[str], ready_url: str) -> Service:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The child gets its own copy of the file descriptor; the parent's is closed at once.
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "convtrack", *command],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops children in order
            )
        service = Service(name, command, ready_url, proc)
        self.services.append(service)
        return service

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for service in self.services:
            while True:
                assert service.proc is not None
                if service.proc.poll() is not None:
                    raise RuntimeError(
                        f"{service.name} exited with {service.proc.returncode}; "
                        f"see {self.log_dir / (service.name + '.log')}"
                    )
                try:
                    if httpx.get(service.ready_url, timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service.name} not ready at {service.ready_url}")
                time.sleep(0.2)

    def stop_all(self, grace: float = 15.0) -> None:
        for service in reversed(self.services):
            if service.proc and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for service in self.services:
            if not service.proc:
                continue
            try:
                service.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.proc.kill()
                service.proc.wait()
