"""A peer process of the benchmark, driven over stdin/stdout (see peers/_common.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["Peer", "PeerError"]

READY_TIMEOUT = 45.0
STOP_TIMEOUT = 10.0


class PeerError(RuntimeError):
    pass


class Peer:
    """One peer process: ``start()``, then ``ask(command)`` for each JSON command."""

    def __init__(
        self, label: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.argv = argv
        self.log_path = log_dir / f"{label}.log"
        self.env = {**os.environ, **(env or {})}
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=self.env,
            limit=1 << 20,
        )
        try:
            answer = await self._read(READY_TIMEOUT)
        except PeerError:
            await self.stop()
            raise
        if not answer.get("ready"):
            await self.stop()
            raise PeerError(f"{self.label} did not start: {answer}\n{self._tail()}")

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            raise PeerError(f"{self.label}: no answer within {timeout} s\n{self._tail()}") from None
        if not line:
            await self._proc.wait()
            raise PeerError(
                f"{self.label} exited ({self._proc.returncode}) before answering\n{self._tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(command) + "\n").encode())
        await self._proc.stdin.drain()
        answer = await self._read(timeout)
        if "failure" in answer:
            raise PeerError(f"{self.label} failed {command}: {answer['failure']}\n{self._tail()}")
        return answer

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


async def settled(
    count: Callable[[], int], what: str, quiet: float = 0.5, timeout: float = 120.0
) -> None:
    """Wait until ``count()`` has stopped growing for ``quiet`` seconds (a flood has been
    taken in); PeerError after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        now = count()
        if now == seen and now:
            return
        seen = now
        await asyncio.sleep(quiet)
    raise PeerError(f"{what} after {timeout:g} s")
