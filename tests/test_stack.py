"""The local stack launcher: exactly its own processes are stopped."""

from __future__ import annotations

import os
from pathlib import Path

from shared.stack import LocalStack, port_open


def test_a_reused_pid_in_a_stale_pid_file_is_never_signalled(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "s")
    stack.start_nats()
    real = stack.pid("nats")
    assert real is not None and port_open(stack.ports()["nats"])
    try:
        # As after a reboot: the pid file names a process that is not nats-server (this one).
        (stack.dir / "nats.pid").write_text(str(os.getpid()))
        assert stack.pid("nats") is None
        assert stack.stop_nats() is False  # and we are still alive to assert it
    finally:
        (stack.dir / "nats.pid").write_text(str(real))
        assert stack.stop_nats() is True
    assert not port_open(stack.ports()["nats"])
