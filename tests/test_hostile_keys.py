"""A hostile peer on the mesh against the lab's encryption: each attack of issue 20 (items 2, 3,
4 and the key parts of 7) tried on a real broker by a peer made of aio-pika and cryptography
only (no lab code on the attacker's side).

Any peer that may publish on the mesh's vhost can bind a queue of its own to the RPC exchange
with a service's routing key: it then gets a copy of every request to that service
(``nuropb_describe`` included), reads ``correlation_id`` and ``reply_to`` (in clear) and can
answer first. What it must never get: a secret in plaintext, a call encrypted for its key, a
result taken as the service's, or a second run of an encrypted request it replays.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from support import wait_until

import nuropb_lab as nl
from nuropb_lab.lab import Lab
from nuropb_lab.mesh import ManagementAPI

RPC_EXCHANGE = "nuropb-rpc-exchange"
DL_EXCHANGE = "nuropb-dl-exchange"
TRACE_EXCHANGE = "amq.rabbitmq.trace"
OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
SECRET = "hunter2-" + uuid.uuid4().hex[:8]  # what must never be seen in plaintext
# 512 bits: too small for cryptography to make one (and for RSA-OAEP-SHA256 to wrap a key)
KEY_512 = """-----BEGIN PUBLIC KEY-----
MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAJ5VP4ZuqinY+RUMLxRZuNrKdF1YyWY+
00hjZn7k086+6t3QKk6T02VHMQQoQHhC7+Anu73BBBJ98mBAEJPhnmkCAwEAAQ==
-----END PUBLIC KEY-----
"""


# --- the hostile peer: aio-pika and cryptography only ----------------------------------------


def headers(kind: str, encrypted: bool = False) -> dict[str, Any]:
    return {
        "nuropb_protocol": "0.1.1",
        "nuropb_version": "0.1.8",
        "nuropb_type": kind,
        "trace_id": None,
        "encrypted": "yes" if encrypted else "",
    }


def pem_of(key: rsa.RSAPublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def fingerprint_of(pem: str) -> str:
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def vault_description(name: str, pem: str | None, store_encrypted: bool = True) -> dict[str, Any]:
    """What the vault says of itself, as a peer would forge it."""
    params = {"type": "object", "properties": [["secret", {"type": "str"}]], "required": ["secret"]}
    return {
        "service_name": name,
        "service_version": None,
        "description": "Secrets.",
        "warnings": [],
        "encrypted_methods": store_encrypted,
        "public_key": pem,
        "methods": {
            "store": {
                "description": None,
                "requires_encryption": store_encrypted,
                "parameters": params,
            },
        },
    }


class HostilePeer:
    """A queue of the peer's own bound to the RPC exchange with a service's routing key: a copy
    of every request to that service. It answers ``nuropb_describe`` with ``describe`` (when
    given), tries to decrypt every encrypted request with its own ``key``, and with ``forge``
    answers every encrypted request first, in plaintext, with what ``forge`` makes of it."""

    def __init__(
        self,
        url: str,
        routing_key: str,
        describe: dict[str, Any] | None = None,
        key: rsa.RSAPrivateKey | None = None,
        forge: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.url = url
        self.routing_key = routing_key
        self.describe = describe
        self.key = key
        self.forge = forge
        self.copies: list[aio_pika.abc.AbstractIncomingMessage] = []
        self.read: list[bytes] = []  # encrypted requests it could decrypt
        self.describes = 0
        self.forged = 0
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> HostilePeer:
        connection = await self._stack.enter_async_context(await aio_pika.connect(self.url))
        self.channel = await connection.channel()
        self.queue = f"peer-{uuid.uuid4().hex[:8]}"
        queue = await self.channel.declare_queue(self.queue, exclusive=True)
        await queue.bind(RPC_EXCHANGE, routing_key=self.routing_key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def plaintexts(self) -> list[bytes]:
        """Every request body it saw in clear, and every one it could decrypt."""
        clear = [m.body for m in self.copies if (m.headers or {}).get("encrypted") != "yes"]
        return clear + self.read

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.copies.append(message)
        encrypted = (message.headers or {}).get("encrypted") == "yes"
        if encrypted:
            if self.key is not None:
                with contextlib.suppress(Exception):
                    wrapped, _, token = message.body.partition(b".")
                    fernet_key = self.key.decrypt(base64.b64decode(wrapped), OAEP)
                    self.read.append(Fernet(fernet_key).decrypt(base64.b64decode(token)))
            if self.forge is not None:
                self.forged += 1
                await self.answer(message, **self.forge(self.forged))
            return
        body = json.loads(message.body)
        if body.get("method") == "nuropb_describe":
            self.describes += 1
            if self.describe is not None:
                await self.answer(message, result=self.describe)

    async def answer(
        self,
        message: aio_pika.abc.AbstractIncomingMessage,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        body = {
            "tag": "response",
            "correlation_id": message.correlation_id,
            "context": {},
            "trace_id": None,
            "result": result,
            "error": error,
            "warning": None,
            "reply_to": message.reply_to,
        }
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                correlation_id=message.correlation_id,
                headers=headers("response"),
            ),
            routing_key=message.reply_to or "",
        )


class Wiretap:
    """What the broker carried: the firehose (``amq.rabbitmq.trace``, every publish and
    delivery) and a queue of its own on the dead-letter exchange. Tracing is switched on for
    the vhost (through the management API) while it runs."""

    def __init__(self, url: str, management: ManagementAPI) -> None:
        self.url = url
        self.vhost = url.rsplit("/", 1)[1]
        self.management = management
        self.traced: list[bytes] = []
        self.dead: list[bytes] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Wiretap:
        await self.management.set_tracing(self.vhost, True)
        self._stack.push_async_callback(self.management.set_tracing, self.vhost, False)
        connection = await self._stack.enter_async_context(await aio_pika.connect(self.url))
        self.channel = await connection.channel()
        trace = await self.channel.declare_queue(exclusive=True)
        await trace.bind(TRACE_EXCHANGE, routing_key="#")
        await trace.consume(self._traced, no_ack=True)
        dead = await self.channel.declare_queue(exclusive=True)
        await dead.bind(DL_EXCHANGE)
        await dead.consume(self._dead, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _traced(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.traced.append(message.body)

    async def _dead(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.dead.append(message.body)

    async def settle(self, service: str) -> None:
        """Send a marker the service dead-letters (an unknown method) behind everything sent
        before, and wait until the firehose and the dead-letter queue both carried it."""
        marker = f"marker-{uuid.uuid4().hex}"
        body = {"tag": "request", "service": service, "method": marker, "params": {}}
        body |= {"correlation_id": uuid.uuid4().hex, "context": {}, "trace_id": None}
        await self.channel.default_exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), headers=headers("request")),
            routing_key=f"nuropb-{service}-sq",
        )
        seen = marker.encode()
        await wait_until(
            lambda: any(seen in b for b in self.traced) and any(seen in b for b in self.dead),
            timeout=20,
            what="the marker in the firehose and the dead-letter queue",
        )

    def carried(self, text: str) -> list[bytes]:
        return [b for b in self.traced + self.dead if text.encode() in b]


# --- the victims: a lab-served vault and fresh Labs ------------------------------------------


class Vault:
    """Secrets over encrypted calls; ``busy`` holds the service's one slot (prefetch 1)."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.deposits = 0
        self.delay = 0.0
        self.busy_now = asyncio.Event()

    @nl.publish_to_mesh(requires_encryption=True)
    async def store(self, secret: str) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.stored.append(secret)
        return "stored"

    @nl.publish_to_mesh(requires_encryption=True)
    def deposit(self, amount: int) -> int:
        self.deposits += 1
        return self.deposits

    async def busy(self, seconds: float) -> str:
        self.busy_now.set()
        await asyncio.sleep(seconds)
        self.busy_now.clear()
        return "done"


@dataclasses.dataclass
class Rig:
    """A lab-served vault (prefetch 1) and a client of its own to keep it busy."""

    name: str
    vault: Vault
    api: nl.RMQAPI
    client: nl.RMQAPI

    @property
    def fingerprint(self) -> str:
        assert self.api.private_key is not None
        return fingerprint_of(pem_of(self.api.private_key.public_key()))

    async def hold(self, seconds: float) -> asyncio.Task[Any]:
        """Keep the vault busy for ``seconds``: a describe sent now waits behind it."""
        call = self.client.request(self.name, "busy", {"seconds": seconds}, {}, ttl=30_000)
        task = asyncio.create_task(call)
        await wait_until(self.vault.busy_now.is_set, what="the vault busy")
        return task


@contextlib.asynccontextmanager
async def vault_service(url: str) -> AsyncIterator[Rig]:
    name = f"vault-{uuid.uuid4().hex[:6]}"
    vault = Vault()
    settings = {"prefetch_count": 1}
    async with (
        nl.RMQAPI(
            url, service_name=name, service_instance=vault, transport_settings=settings
        ) as api,
        nl.RMQAPI(url) as client,
    ):
        yield Rig(name, vault, api, client)


@contextlib.asynccontextmanager
async def fresh_lab(
    url: str, known_keys: Path, monkeypatch: pytest.MonkeyPatch, describe_timeout: float = 1.0
) -> AsyncIterator[Lab]:
    """A new Lab (a notebook started afresh) whose known-keys file is ``known_keys``."""
    monkeypatch.setenv("NUROPB_LAB_KNOWN_KEYS", str(known_keys))
    lab = Lab(timeout=5, describe_timeout=describe_timeout)
    try:
        await lab.aconnect(url)
        yield lab
    finally:
        await asyncio.to_thread(lab.close)


async def refused(call: Any) -> str:
    """The one line a refused call says (its class and text)."""
    with pytest.raises(Exception) as info:
        await call
    error = info.value
    assert isinstance(error, (nl.NuropbException, ValueError)), repr(error)
    line = f"{type(error).__name__}: {error}"
    assert "\n" not in line
    return line


# --- 2: encryption fails closed -----------------------------------------------------------


async def test_busy_service_whose_describe_times_out_gets_no_plaintext(
    mesh_url: str, management: ManagementAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with vault_service(mesh_url) as rig, Wiretap(mesh_url, management) as tap:
        async with fresh_lab(mesh_url, tmp_path / "known_keys.json", monkeypatch) as lab:
            busy = await rig.hold(4)
            # the vault cannot answer its describe within 1 s: the lab cannot tell whether
            # store requires encryption and knows no key of the vault, so it sends nothing
            first = await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
            assert "encrypt=False" in first, first
            # nor for the next call (the describe is not asked again for a while), nor a bench
            await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
            bench = await refused(lab.abench(f"{rig.name}.store", {"secret": SECRET}, n=2))
            assert bench.startswith("EncryptionRefused"), bench
            assert await busy == "done"
            await tap.settle(rig.name)
    assert tap.carried(SECRET) == [], "a secret went over the broker in plaintext"
    assert rig.vault.stored == []


async def test_a_known_key_encrypts_when_the_describe_times_out(
    mesh_url: str, management: ManagementAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with vault_service(mesh_url) as rig, Wiretap(mesh_url, management) as tap:
        async with fresh_lab(mesh_url, tmp_path / "known_keys.json", monkeypatch) as lab:
            await lab.adescribe(rig.name)  # the key is known (and pinned) from here
            lab.connection().api.descriptions.forget(rig.name)  # what the vault offers is not
            busy = await rig.hold(2)
            assert await lab.acall(f"{rig.name}.store", secret=SECRET, timeout=10) == "stored"
            assert bool(lab.history(1).iloc[0]["encrypted"])
            await busy
            await tap.settle(rig.name)
    assert tap.carried(SECRET) == [] and rig.vault.stored == [SECRET]


async def test_plain_sends_anyway_and_the_history_says_so(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with vault_service(mesh_url) as rig:
        async with fresh_lab(mesh_url, tmp_path / "known_keys.json", monkeypatch) as lab:
            busy = await rig.hold(1.5)
            # sent in plaintext as asked; the vault itself refuses it once it is free
            with pytest.raises(nl.NuropbAuthorizationError, match="requires encryption"):
                await lab.acall(f"{rig.name}.store", secret="not secret", timeout=10, encrypt=False)
            await busy
            row = lab.history(1).iloc[0]
            assert not row["encrypted"] and "plaintext" in row["note"], row.to_dict()


# --- 3: pinned keys and checked descriptions ------------------------------------------------


async def test_a_substituted_key_reads_nothing(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    seen = fingerprint_of(pem_of(own_key.public_key()))
    async with vault_service(mesh_url) as rig:
        real = rig.fingerprint
        forged = vault_description(rig.name, pem_of(own_key.public_key()))
        async with HostilePeer(mesh_url, rig.name, describe=forged, key=own_key) as peer:
            for attempt in range(3):  # fresh Labs, nothing pinned
                async with fresh_lab(mesh_url, tmp_path / f"{attempt}.json", monkeypatch) as lab:
                    busy = await rig.hold(0.05)  # the peer answers the describe first
                    line = await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
                    await busy
                    assert real[:16] in line and seen[:16] in line, line
                    # the queues bound with the vault's routing key are named: the peer's too
                    assert peer.queue in line and f"nuropb-{rig.name}-sq" in line, line
                    warnings = (await lab.akeys(rig.name)).iloc[0]["warnings"]
                    assert any("conflict" in w for w in warnings), warnings
            assert peer.read == [] and rig.vault.stored == []

        # a Lab that pinned the vault's key before the peer came; the peer answers alone
        pinned = tmp_path / "pinned.json"
        async with fresh_lab(mesh_url, pinned, monkeypatch) as lab:
            assert await lab.acall(f"{rig.name}.store", secret="first") == "stored"
        async with HostilePeer(mesh_url, rig.name, describe=forged, key=own_key) as peer:
            busy = await rig.hold(3)  # the vault cannot answer its describe in time
            async with fresh_lab(mesh_url, pinned, monkeypatch) as lab:
                line = await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
                assert real[:16] in line and seen[:16] in line and "trust" in line, line
                keys = (await lab.akeys(rig.name)).iloc[0]
                assert keys["pinned"] == real and any(seen[:16] in w for w in keys["warnings"])
            busy.cancel()
            assert peer.read == [] and SECRET not in rig.vault.stored


async def test_a_downgraded_description_sends_no_plaintext(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with vault_service(mesh_url) as rig:
        downgraded = vault_description(rig.name, None, store_encrypted=False)
        pinned = tmp_path / "pinned.json"
        async with fresh_lab(mesh_url, pinned, monkeypatch) as lab:
            await lab.adescribe(rig.name)  # seen required, with its key, before the peer came
        async with HostilePeer(mesh_url, rig.name, describe=downgraded) as peer:
            async with fresh_lab(mesh_url, tmp_path / "fresh.json", monkeypatch) as lab:
                busy = await rig.hold(0.05)  # the peer answers the describe first
                line = await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
                assert "conflict" in line, line
                await busy
            busy = await rig.hold(3)  # only the peer answers the describe now
            async with fresh_lab(mesh_url, pinned, monkeypatch) as lab:
                line = await refused(lab.acall(f"{rig.name}.store", secret=SECRET))
                assert "requires encryption" in line, line
            busy.cancel()
            assert [p for p in peer.plaintexts if SECRET.encode() in p] == []
            assert SECRET not in rig.vault.stored


async def test_keys_under_2048_bits_are_refused(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for bits, pem, key in [(1024, pem_of(weak.public_key()), weak), (512, KEY_512, None)]:
        name = f"weak-{bits}-{uuid.uuid4().hex[:4]}"
        forged = vault_description(name, pem)
        async with HostilePeer(mesh_url, name, describe=forged, key=key) as peer:
            async with fresh_lab(mesh_url, tmp_path / f"{bits}.json", monkeypatch) as lab:
                line = await refused(lab.acall(f"{name}.store", secret=SECRET))
                assert f"{bits}-bit" in line and "2048" in line, line
                warnings = (await lab.akeys(name)).iloc[0]["warnings"]
                assert any(f"{bits}-bit" in w for w in warnings), warnings
            async with nl.RMQAPI(mesh_url) as client:  # the API alone refuses it too
                call = client.request(name, "store", {"secret": SECRET}, {}, 3000, encrypted=True)
                line = await refused(call)
                assert f"{bits}-bit" in line, line
            assert peer.read == []


async def test_a_describe_over_the_size_limit_is_refused(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"huge-{uuid.uuid4().hex[:4]}"
    description = vault_description(name, None, store_encrypted=False)
    description["description"] = "x" * 300_000
    async with HostilePeer(mesh_url, name, describe=description):
        async with fresh_lab(mesh_url, tmp_path / "k.json", monkeypatch) as lab:
            line = await refused(lab.adescribe(name))
            assert "262144" in line, line
            assert lab.connection().api.cached_description(name) is None


# --- 4: answers must match ------------------------------------------------------------------


async def test_a_forged_plaintext_answer_is_not_taken(
    mesh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forge(n: int) -> dict[str, Any]:
        if n % 2:
            return {"result": "forged"}
        # error text from an unauthenticated answer changes nothing (the key is not forgotten)
        error = {"error": "NuropbMessageError", "description": "body could not be decrypted"}
        return {"error": error}

    async with vault_service(mesh_url) as rig:
        rig.vault.delay = 0.05  # the forgery comes first
        async with fresh_lab(mesh_url, tmp_path / "k.json", monkeypatch) as lab:
            await lab.adescribe(rig.name)
            async with HostilePeer(mesh_url, rig.name, forge=forge) as peer:
                target = f"{rig.name}.store"
                results = [await lab.acall(target, secret=f"s{i}") for i in range(10)]
                assert peer.forged == 10 and peer.describes == 0
                # no real answer in time: the wait ends at the ttl, saying what came instead
                rig.vault.delay = 3
                with pytest.raises(nl.NuropbTimeoutError, match=r"a plaintext answer .*not taken"):
                    await lab.acall(target, secret="late", timeout=1)
            assert results == ["stored"] * 10
            assert lab.connection().api.stats["unauthenticated_responses"] == 11


# --- 7: replayed encrypted requests ---------------------------------------------------------


async def test_a_replayed_encrypted_request_is_refused(mesh_url: str) -> None:
    async with vault_service(mesh_url) as rig, HostilePeer(mesh_url, rig.name) as peer:
        client = rig.client
        assert await client.request(rig.name, "deposit", {"amount": 5}, {}, encrypted=True) == 1
        original = next(m for m in peer.copies if (m.headers or {}).get("encrypted") == "yes")
        answers: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        replies = await peer.channel.declare_queue(exclusive=True)
        await replies.consume(answers.put, no_ack=True)

        async def send(body: bytes, expiration: Any) -> dict[str, Any]:
            await peer.channel.default_exchange.publish(
                aio_pika.Message(
                    body,
                    headers=headers("request", encrypted=True),
                    correlation_id=uuid.uuid4().hex,
                    reply_to=replies.name,
                    expiration=expiration,
                ),
                routing_key=f"nuropb-{rig.name}-sq",
            )
            answer = await asyncio.wait_for(answers.get(), 10)
            if (answer.headers or {}).get("encrypted") == "yes":
                return {"error": None, "encrypted": True}
            return dict(json.loads(answer.body))

        # the same message again, as the peer copied it
        again = await send(original.body, original.expiration)
        assert again["error"] and "replay" in again["error"]["description"], again
        assert rig.vault.deposits == 1

        # a request made with the service's public key, its token two hours old
        info = await client.describe_service(rig.name)
        public = serialization.load_pem_public_key(info["public_key"].encode())
        assert isinstance(public, rsa.RSAPublicKey)

        def request(at: int) -> bytes:
            fernet_key = Fernet.generate_key()
            body = {"tag": "request", "service": rig.name, "method": "deposit"}
            body |= {"params": {"amount": 1}, "correlation_id": uuid.uuid4().hex}
            body |= {"context": {}, "trace_id": None}
            token = Fernet(fernet_key).encrypt_at_time(json.dumps(body).encode(), at)
            wrapped = base64.b64encode(public.encrypt(fernet_key, OAEP))
            return wrapped + b"." + base64.b64encode(token)

        old = await send(request(int(time.time()) - 7200), 60)  # expiration in seconds
        assert old["error"] and "old" in old["error"]["description"], old
        assert rig.vault.deposits == 1
        fresh = await send(request(int(time.time())), 60)  # the same made now: it runs
        assert fresh == {"error": None, "encrypted": True} and rig.vault.deposits == 2
