"""Two services with planted bugs on the published nuropb 0.1.8: what ``lab.check`` is tried on.

Run by the python of the nuropb venv (not the lab's):

    python nuropb_buggy_service.py AMQP_URL BUGGY_NAME LAX_NAME

- BUGGY_NAME (:class:`Buggy`): methods that check their params and are correct (``add``,
  ``greet``, ``echo``, the encrypted ``secret``) beside planted bugs: ``ratio`` divides by a
  parameter that may be 0, ``initial`` takes the first character of a string that may be
  empty, ``hang`` never answers; and nuropb 0.1.8 runs a plaintext call to ``secret``.
- LAX_NAME (:class:`Lax`): correct for what it is described to take, but checks nothing, so
  params that do not fit are run and answered.

Both are served with nuropb's own ``RMQAPI`` (prefetch 50: the calls ``hang`` holds leave the
others room). Prints one line ``READY`` on stdout once both are connected and runs until stdin
closes or SIGTERM/SIGINT. No ``from __future__ import annotations``: nuropb 0.1.8's describe
reads ``annotation.__name__``.
"""

import asyncio
import logging
import sys
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from nuropb.contexts.describe import publish_to_mesh
from nuropb.interface import NuropbValidationError
from nuropb.rmq_api import RMQAPI
from peer_life import serve, until_stopped


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NuropbValidationError(description=f"{name} must be an int")
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise NuropbValidationError(description=f"{name} must be a str")
    return value


class Buggy:
    """Correct methods, and three planted bugs."""

    def __init__(self, service_name: str) -> None:
        self._service_name = service_name
        self._version = "0.1.8-buggy"
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def add(self, a: int, b: int = 2) -> int:
        """Correct: checks its params."""
        return _int("a", a) + _int("b", b)

    def greet(self, name: str, excited: bool = False) -> str:
        """Correct: checks its params."""
        if not isinstance(excited, bool):
            raise NuropbValidationError(description="excited must be a bool")
        return f"hello {_str('name', name)}" + ("!" if excited else "")

    def echo(self, value: Any) -> Any:
        """Correct: takes anything (unannotated)."""
        return value

    @publish_to_mesh(requires_encryption=True)
    def secret(self, text: str) -> str:
        """Correct, but nuropb 0.1.8 runs it for a plaintext call too."""
        return _str("text", text)[::-1]

    def ratio(self, total: int, parts: int) -> float:
        """Planted: divides by ``parts``, which may be 0 (a sync method: nuropb reports it as
        a NuropbException naming ZeroDivisionError)."""
        return _int("total", total) / _int("parts", parts)

    async def initial(self, name: str) -> str:
        """Planted: the first character of ``name``, which may be empty (async: nuropb reports
        the IndexError by its class)."""
        return _str("name", name)[0]

    async def hang(self, seconds: float = 0.0) -> None:
        """Planted: never answers."""
        await asyncio.Event().wait()


class Lax:
    """Correct for what it is described to take, but checks nothing."""

    def __init__(self, service_name: str) -> None:
        self._service_name = service_name
        self._version = "0.1.8-lax"

    def scale(self, x: int, factor: int = 2) -> int:
        return x * factor

    def label(self, name: str) -> str:
        return f"<{name}>"


async def main(amqp_url: str, buggy_name: str, lax_name: str) -> int:
    stop = until_stopped()
    apis = [
        RMQAPI(
            amqp_url=amqp_url,
            service_name=name,
            service_instance=instance,
            transport_settings={"prefetch_count": 50},
        )
        for name, instance in ((buggy_name, Buggy(buggy_name)), (lax_name, Lax(lax_name)))
    ]
    return await serve(apis, stop)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(f"usage: {sys.argv[0]} AMQP_URL BUGGY_NAME LAX_NAME", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])))
