"""AMQP targets: parsing, the dict form, and never showing a password."""

from __future__ import annotations

import pytest

from nuropb_lab.mesh.urls import mask_secrets, parse_amqp_url


def test_url_parts_and_masking() -> None:
    target = parse_amqp_url("amqp://alice:s3cr%40t@broker:5673/my-mesh")
    assert (target.host, target.port, target.username, target.password) == (
        "broker",
        5673,
        "alice",
        "s3cr@t",
    )
    assert target.vhost == "my-mesh" and not target.tls
    assert target.masked == "amqp://alice:***@broker:5673/my-mesh"
    assert "s3cr" not in repr(target)
    assert target.management_url() == "http://broker:15673"  # the AMQP port + 10000, as nuropb
    assert parse_amqp_url("amqp://u:p@h/v").management_url() == "http://h:15672"
    assert parse_amqp_url("amqps://u:p@h/v").management_url() == "https://h:15671"


def test_url_without_vhost_is_an_error() -> None:
    for url in ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@127.0.0.1:5672"):
        with pytest.raises(ValueError, match="no vhost"):
            parse_amqp_url(url)
    with pytest.raises(ValueError, match="amqp:// or amqps://"):
        parse_amqp_url("http://x/y")


def test_tls_url_and_dict_form() -> None:
    target = parse_amqp_url("amqps://u:p@h/v?cafile=/ca.pem&verify=false")
    assert target.tls and target.port == 5671 and target.cafile == "/ca.pem" and not target.verify
    d = parse_amqp_url(
        {"host": "h", "username": "u", "password": "pw", "vhost": "m", "cafile": "/ca"}
    )
    assert d.tls and d.port == 5671 and d.masked == "amqps://u:***@h:5671/m"
    with pytest.raises(ValueError, match="no 'vhost'"):
        parse_amqp_url({"host": "h"})


def test_mask_secrets_in_free_text() -> None:
    text = "failed amqp://bob:hunter2@x:1/v and amqps://c:d@e/f"
    assert mask_secrets(text) == "failed amqp://bob:***@x:1/v and amqps://c:***@e/f"
    assert parse_amqp_url("amqp://bob:hunter2@x/v").scrub("pw hunter2 leaked") == "pw *** leaked"
