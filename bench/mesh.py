"""The mesh of one benchmark run, shared by every part: the run's settings, a fresh vhost,
and the peers on it (a service and a client of each kind, each a process of its own;
nuropb's under the nuropb 0.1.8 venv's python).

``Mesh.measured`` runs a command on a client and adds the CPU per operation the service
and the broker (the process listening on the AMQP port, when it runs on this machine)
spent on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nuropb_lab.mesh import ManagementAPI, configure_mesh, parse_amqp_url

from .peer import Peer

__all__ = [
    "BARE_QUEUE",
    "LAB_SERVICE",
    "NUROPB_SERVICE",
    "PAIRS",
    "PEERS",
    "ROOT",
    "SERVICE_NAMES",
    "Mesh",
    "Settings",
    "broker_cpu",
    "fresh_mesh",
    "nuropb_python",
]

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
NUROPB_VENV = ROOT / ".cache" / "nuropb-0.1.8"
NUROPB_PYTHON = NUROPB_VENV / "bin" / "python"

LAB_SERVICE = "bench-lab"
NUROPB_SERVICE = "bench-nuropb"
BARE_QUEUE = "bench-bare-echo"

# (label, client kind, service kind)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("lab->lab", "lab", "lab"),
    ("nuropb->nuropb", "nuropb", "nuropb"),
    ("lab->nuropb", "lab", "nuropb"),
    ("nuropb->lab", "nuropb", "lab"),
    ("bare aio-pika", "bare", "bare"),
)
SERVICE_NAMES = {"lab": LAB_SERVICE, "nuropb": NUROPB_SERVICE, "bare": BARE_QUEUE}


@dataclasses.dataclass
class Settings:
    base_url: str
    rounds: int
    seq_n: int
    conc_n: int
    concurrency: int
    prefetch: int
    publish_n: int
    encrypted_seq_n: int
    encrypted_conc_n: int
    uvloop: bool
    json_path: Path
    profile_dir: Path | None
    parts: frozenset[str]
    tail_n: int = 50_000
    tail_total: int = 200_000
    tail_rows: int = 10_000
    discovery_n: int = 20
    pairs: tuple[tuple[str, str, str], ...] = PAIRS


# --- environment ------------------------------------------------------------------------


def nuropb_python() -> Path:
    """The nuropb 0.1.8 venv's python, made by scripts/setup.sh when missing."""
    check = [str(NUROPB_PYTHON), "-c", "import nuropb.rmq_api"]
    if not NUROPB_PYTHON.exists() or subprocess.run(check, capture_output=True).returncode:
        script = "source scripts/setup.sh && setup_nuropb_venv"
        subprocess.run(["bash", "-c", script], cwd=ROOT, check=True)
    return NUROPB_PYTHON


_BROKER_PID: list[int | None] = []


def _broker_pid(port: int) -> int | None:
    """The pid of the process listening on the broker's port, when it runs on this machine."""
    try:
        import psutil
    except ImportError:
        return None
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid is not None else None
    return None


def broker_cpu(port: int) -> float | None:
    """CPU seconds of the broker process so far (None when it cannot be seen)."""
    if not _BROKER_PID:
        _BROKER_PID.append(_broker_pid(port))
    pid = _BROKER_PID[0]
    if pid is None:
        return None
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


# --- the mesh and its peers ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_mesh(base_url: str) -> AsyncIterator[str]:
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    url = f"{base_url}/{vhost}"
    await configure_mesh(url)
    try:
        yield url
    finally:
        management = ManagementAPI.for_target(parse_amqp_url(url))
        with contextlib.suppress(Exception):
            await management.delete_vhost(vhost)


class Mesh:
    """The peers of one run: a service and a client of each kind."""

    def __init__(self, settings: Settings, url: str, log_dir: Path) -> None:
        self.settings = settings
        self.url = url
        self.log_dir = log_dir
        self.services: dict[str, Peer] = {}
        self.clients: dict[str, Peer] = {}

    def _argv(self, kind: str, role: str) -> tuple[list[str], dict[str, str]]:
        s = self.settings
        env: dict[str, str] = {}
        if kind == "nuropb":
            python, script = str(nuropb_python()), "nuropb_peer.py"
        else:
            python, script = sys.executable, f"{kind}_peer.py"
            if s.profile_dir is not None and kind == "lab":
                env["BENCH_PROFILE"] = str((s.profile_dir / f"lab-{role}.prof").resolve())
        if role == "serve":
            args = ["serve", self.url, SERVICE_NAMES[kind], str(s.prefetch)]
        else:
            args = ["client", self.url, str(s.prefetch)]
        if kind != "nuropb" and s.uvloop:
            args.append("--uvloop")
        return [python, str(PEERS / script), *args], env

    async def start(self, kinds: set[str]) -> None:
        if self.settings.profile_dir is not None:
            self.settings.profile_dir.mkdir(parents=True, exist_ok=True)
        peers = []
        for kind in sorted(kinds):
            argv, env = self._argv(kind, "serve")
            self.services[kind] = Peer(f"{kind}-service", argv, self.log_dir, env)
            argv, env = self._argv(kind, "client")
            self.clients[kind] = Peer(f"{kind}-client", argv, self.log_dir, env)
            peers += [self.services[kind], self.clients[kind]]
        # services first: a client may call at once
        await asyncio.gather(*(self.services[k].start() for k in sorted(kinds)))
        await asyncio.gather(*(self.clients[k].start() for k in sorted(kinds)))

    async def peer(self, name: str, script: str, *args: str, nuropb: bool = True) -> Peer:
        """Start one more peer, ``bench/peers/{script} URL *args``: under the nuropb 0.1.8
        venv's python (the floods publish with its pika), or this one's."""
        python = str(nuropb_python()) if nuropb else sys.executable
        peer = Peer(name, [python, str(PEERS / script), self.url, *args], self.log_dir)
        await peer.start()
        return peer

    async def stop(self) -> None:
        await asyncio.gather(
            *(p.stop() for p in [*self.clients.values(), *self.services.values()]),
            return_exceptions=True,
        )

    async def measured(self, client: str, service: str, command: dict[str, Any]) -> dict[str, Any]:
        """Run ``command`` on a client; add the service's and the broker's CPU per operation."""
        service_peer = self.services[service]
        s_cpu0 = (await service_peer.ask({"op": "cpu"}))["cpu_s"]
        port = parse_amqp_url(self.url).port
        b_cpu0 = broker_cpu(port)
        result = await self.clients[client].ask(command)
        b_cpu1 = broker_cpu(port)
        s_cpu1 = (await service_peer.ask({"op": "cpu"}))["cpu_s"]
        n = max(1, int(result["n"]))
        result["client_cpu_us"] = result["client_cpu_s"] / n * 1e6
        result["service_cpu_us"] = (s_cpu1 - s_cpu0) / n * 1e6
        if b_cpu0 is not None and b_cpu1 is not None:
            result["broker_cpu_us"] = (b_cpu1 - b_cpu0) / n * 1e6
        return result
