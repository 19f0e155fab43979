"""The %nuropb magic in a real InteractiveShell, against real services on RabbitMQ."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from support import wait_for

import nuropb_lab as nl
from nuropb_lab.lab import get_lab
from nuropb_lab.lab.settings import setting_fields
from nuropb_lab.magics import NuropbMagics
from nuropb_lab.magics.args import parse_value, split_args
from nuropb_lab.magics.table import SUBCOMMANDS
from nuropb_lab.mesh import ManagementAPI

PEERS = Path(__file__).parent / "peers"


class Shop:
    """A shop."""

    def price(self, sku: str, qty: int = 1) -> float:
        return 2.5 * qty

    def echo(self, value: Any) -> Any:
        return value

    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    @nl.publish_to_mesh(requires_encryption=True)
    def vault(self, code: str) -> str:
        return code[::-1]


@pytest.fixture(scope="module")
def ip(mesh_url: str) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nuropb_lab")
    shell.user_ns["shop"] = Shop()
    yield shell
    lab = get_lab()
    if lab.connections:
        lab.disconnect(all=True)


def run(ip: InteractiveShell, line: str, cell: str | None = None) -> tuple[Any, str, str]:
    """(value, stdout, stderr) of one magic call."""
    with capture_output() as captured:
        if cell is None:
            value = ip.run_line_magic("nuropb", line)
        else:
            value = ip.run_cell_magic("nuropb", line, cell)
    return value, captured.stdout, captured.stderr


@pytest.fixture(scope="module")
def connected(ip: InteractiveShell, mesh_url: str) -> InteractiveShell:
    value, out, err = run(ip, f"connect {mesh_url} --alias main")
    assert value is None and err == ""
    assert out.strip() == f"connected to {mesh_url.replace(':guest@', ':***@')} as 'main'"
    _, out, _ = run(ip, "serve shop")
    assert out.strip().splitlines() == [
        "exposing 4 method(s) of shop: echo, price, slow, vault",
        "serving shop as 'shop' on main",
    ]
    return ip


def test_serve_refuses_a_module_a_class_and_a_builtin(connected: InteractiveShell) -> None:
    ip = connected
    ip.user_ns.update(os=__import__("os"), Shop=Shop, table={"a": 1})
    for name, kind in (("os", "module 'os'"), ("Shop", "class 'Shop'"), ("table", "builtin dict")):
        value, out, err = run(ip, f"serve {name}")
        assert value is None and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"LabError: refusing to serve a {kind}")
    said = run(ip, "serve os")[2]  # it names what it would expose: every acting name
    assert all(name in said for name in ("kill", "open", "popen", "system", "unlink"))
    assert "os" not in get_lab().connection("main").served
    # asked explicitly, it serves (here a dict's methods), after saying which
    _, out, err = run(ip, "serve table --name table --unsafe")
    assert err == "" and "exposing 11 method(s) of table: clear, copy, fromkeys, get" in out
    get_lab().runner.run(get_lab().connection("main").served.pop("table").disconnect(), 10)


def test_help_and_unknown_subcommand(ip: InteractiveShell) -> None:
    _, out, _ = run(ip, "help")
    assert "%nuropb connect [URL]" in out and "disconnect [ALIAS | --all]" in out
    result = ip.run_cell("%nuropb frobnicate")
    assert isinstance(
        result.error_in_exec, Exception
    ) and "unknown sub-command 'frobnicate'" in str(result.error_in_exec)


def test_help_of_a_subcommand_shows_every_option_it_parses(ip: InteractiveShell) -> None:
    _, listing, _ = run(ip, "help")
    for name, command in SUBCOMMANDS.items():
        assert f"%nuropb {name}" in listing and command.summary in listing, name
        _, out, _ = run(ip, f"help {name}")
        assert out.startswith(f"usage: %nuropb {name}"), (name, out)
        text = " ".join(out.split())  # as wrapped
        for action in command.parser._actions:
            for shown in action.option_strings or [action.metavar or action.dest]:
                assert shown in out, (name, shown)  # in the usage line and in the list
            assert " ".join((action.help or "").split()) in text, (name, action.help)
    _, out, _ = run(ip, "help call")  # what the hand-written help had lost
    assert all(o in out for o in ("--no-check", "--alias", "--raw", "-o VAR", "[k=v]..."))
    result = ip.run_cell("%nuropb help frobnicate")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "no sub-command 'frobnicate'" in str(result.error_in_exec)


def test_every_subcommand_is_parsed_by_its_parser(connected: InteractiveShell) -> None:
    for line in ("publish", "publish --alias main", "services --refresh", "benches x"):
        result = connected.run_cell(f"%nuropb {line}")
        assert type(result.error_in_exec).__name__ == "UsageError", line
    tail, _, _ = run(connected, "tail parsed.# -o parsed")
    _, out, _ = run(connected, 'publish parsed.one --alias main {"n": [1, 2]}')
    assert out.strip() == "published to parsed.one"
    wait_for(lambda: len(tail) == 1, what="the event published")
    assert tail.df["event"].iloc[0] == {"n": [1, 2]}
    tail.stop()


def test_settings_are_the_labs_own(ip: InteractiveShell) -> None:
    traits = NuropbMagics.class_traits(config=True)
    for field in setting_fields():
        trait = traits[field.name]
        default = trait.default()  # a list trait's (redact_keys) is a list, the setting's a tuple
        assert (tuple(default) if isinstance(default, list) else default) == field.default
        assert trait.help == field.metadata["help"]
    assert set(traits) == {f.name for f in setting_fields()}


def test_status_and_services(connected: InteractiveShell) -> None:
    widget, _, _ = run(connected, "status --widget")
    assert "● connected" in widget.value and "main" in widget.value
    widget.close()
    status, _, _ = run(connected, "status")
    assert isinstance(status, pd.DataFrame) and status.iloc[0]["alias"] == "main"
    assert status.iloc[0]["served"] == "shop" and status.iloc[0]["state"] == "connected"
    services, _, err = run(connected, "services")
    assert err == ""
    row = services.set_index("service").loc["shop"]
    assert (row["instances"], row["methods"], bool(row["encrypted"])) == (1, 4, True)
    assert row["description"] == "A shop."


def test_describe(connected: InteractiveShell) -> None:
    frame, _, _ = run(connected, "describe shop price")
    assert list(frame["parameter"]) == ["sku", "qty"]
    assert list(frame["required"]) == [True, False] and list(frame["default"]) == [None, 1]
    everything, _, _ = run(connected, "describe shop")
    assert bool(everything.set_index("method").loc["vault", "requires_encryption"])


def test_call_values_parse_as_json(connected: InteractiveShell) -> None:
    assert run(connected, "call shop.price sku=A qty=4")[0] == 10.0
    assert run(connected, 'call shop.echo value=["a", "b c"]')[0] == ["a", "b c"]
    assert run(connected, 'call shop.echo value={"k": [1, 2]}')[0] == {"k": [1, 2]}
    assert run(connected, "call shop.echo value=true")[0] is True
    assert run(connected, "call shop.echo value=null")[0] is None
    assert run(connected, "call shop.echo value=hello")[0] == "hello"
    assert run(connected, "call shop.echo value='two words'")[0] == "two words"
    assert run(connected, 'call shop.echo value="007"')[0] == "007"
    connected.user_ns["payload"] = {"from": "notebook"}
    assert run(connected, "call shop.echo value=$payload")[0] == {"from": "notebook"}


def test_call_options(connected: InteractiveShell) -> None:
    raw, _, _ = run(connected, 'call shop.price sku=A --trace t-42 --raw --context {"user": "me"}')
    assert raw["result"] == 2.5 and raw["trace_id"] == "t-42" and raw["context"] == {"user": "me"}
    value, _, _ = run(connected, "call shop.price sku=A -o price_result")
    assert value is None and connected.user_ns["price_result"] == 2.5
    assert run(connected, "call shop.vault code=abc")[0] == "cba"  # encrypted automatically
    assert run(connected, "call shop.price sku=A --encrypt")[0] == 2.5
    history, _, _ = run(connected, "history -n 2")
    assert list(history["encrypted"]) == [True, True]


def test_cell_body_is_the_params(connected: InteractiveShell) -> None:
    value, _, _ = run(connected, "call shop.price", '{"sku": "B", "qty": 2}')
    assert value == 5.0
    value, _, _ = run(connected, "call shop.echo", '{"value": "$not_expanded {x}"}')
    assert value == "$not_expanded {x}"


def test_expected_failures_print_one_line(connected: InteractiveShell) -> None:
    cases = {
        "call ghost.price sku=A": "NuropbNotDeliveredError: service 'ghost' is not on the mesh",
        "call shop.slow seconds=3 --timeout 0.2": "NuropbTimeoutError: no response from shop.slow",
        "call shop.vault code=x --plain": "EncryptionRefused: shop.vault requires encryption",
        "call shop.price qty=1 --no-check": "NuropbValidationError: invalid parameters for price",
        "call shop.price --alias nope": "LabError: no connection named 'nope'",
        "describe shop nope": "LabError: shop has no method 'nope'",
        "call shop.nope --no-check": "NuropbHandlingError: Unknown method nope",
        "describe ghost": "NuropbNotDeliveredError: service 'ghost' is not on the mesh",
    }
    for line, expected in cases.items():
        value, out, err = run(connected, line)
        assert value is None and out == ""
        assert err.startswith(expected), (line, err)
        assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_option_values_are_one_line_too(connected: InteractiveShell) -> None:
    cases = {
        "connect http://nowhere/x --alias bad": "OptionError: AMQP URL must start with amqp://",
        "dlq --limit 0": "OptionError: limit must be at least 1, got 0",
        "call shop.price sku=A --timeout -1": "OptionError: timeout must be > 0 seconds",
    }
    for line, expected in cases.items():
        value, out, err = run(connected, line)
        assert value is None and out == "", (line, out)
        assert err.startswith(expected) and err.count("\n") == 1, (line, err)


def test_a_bug_inside_the_lab_shows_its_traceback(
    connected: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(n: int | None = None) -> pd.DataFrame:
        raise TypeError("a bug in the lab")

    monkeypatch.setattr(get_lab(), "history", broken)
    with capture_output() as captured:
        result = connected.run_cell("%nuropb history")
    assert isinstance(result.error_in_exec, TypeError)  # not swallowed into one line
    assert "a bug in the lab" in captured.stdout + captured.stderr
    assert "Traceback" in captured.stdout + captured.stderr


def test_the_usage_errors_are_one_family() -> None:
    for name in ("ParamError", "BenchError", "OptionError", "FirehoseRefused"):
        assert issubclass(getattr(nl, name), nl.LabError), name
    # what was a ValueError before the family still is one
    assert issubclass(nl.ParamError, ValueError) and issubclass(nl.BenchError, ValueError)
    # the mesh's refusals stay nuropb errors, which RMQAPI users catch
    assert issubclass(nl.EncryptionRefused, nl.NuropbMessageError)
    assert issubclass(nl.DescribeConflict, nl.NuropbMessageError)


def test_params_are_checked_before_anything_is_sent(connected: InteractiveShell) -> None:
    before = len(get_lab().history())
    cases = {
        "call shop.price sku=A qty=notanumber": "ParamError: qty: expected int, got 'notanumber'",
        "call shop.price qty=1": "ParamError: sku: required but missing",
        "call shop.price sku=A colour=red": "ParamError: no parameter colour (it takes sku, qty)",
        "command shop.price sku=[7]": "ParamError: sku: expected str, got [7]",
        "call shop.nope": "ParamError: shop has no method 'nope' (methods: echo, price, slow,",
    }
    for line, expected in cases.items():
        value, out, err = run(connected, line)
        assert value is None and out == "" and err.count("\n") == 1, (line, err)
        assert err.startswith(expected), (line, err)
    assert len(get_lab().history()) == before  # nothing was sent
    # --no-check sends anyway: the service's own answer comes back
    _, _, err = run(connected, "call shop.price sku=A qty=notanumber --no-check")
    assert err.startswith("TypeError: can't multiply sequence"), err
    assert len(get_lab().history()) == before + 1


def test_a_bare_value_goes_as_text_where_the_method_takes_a_str(
    connected: InteractiveShell,
) -> None:
    # as JSON, 123 and true would be refused for `code: str`; the method's description says
    # text, so the text as written goes
    assert run(connected, "call shop.vault code=123")[0] == "321"
    assert run(connected, "call shop.vault code=true")[0] == "eurt"
    assert run(connected, "call shop.price sku=7 qty=2")[0] == 5.0  # qty stays a number
    assert run(connected, "call shop.echo value=7")[0] == 7  # untyped: JSON as before
    assert get_lab().history()["params"].iloc[-2] == '{"sku":"7","qty":2}'
    connected.user_ns["n"] = 5
    _, _, err = run(connected, "call shop.vault code=$n")  # a variable keeps its type
    assert err.startswith("ParamError: code: expected str, got 5"), err


def test_bench_runs_and_records_the_run(connected: InteractiveShell) -> None:
    history = len(get_lab().history())
    result, out, err = run(connected, "bench shop.price sku=A qty=2 -n 40 -c 4 --label m1")
    assert err == "" and out == ""
    s = result.summary()
    assert (s["label"], s["count"], s["ok"], s["concurrency"]) == ("m1", 40, 40, 4)
    value, out, _ = run(connected, "bench shop.echo value=1 --rate 50 -n 20 -o open_run")
    assert value is None and connected.user_ns["open_run"].summary()["model"] == "open"
    assert out.startswith("shop.echo (shop.echo, open rate=50/s): 20 calls")
    value, _, _ = run(connected, "bench shop.price sku=A --command -n 10 --label m-cmd")
    assert value.summary()["kind"] == "command" and value.summary()["ok"] == 10
    handle, _, _ = run(connected, "bench shop.slow seconds=0.01 --duration 30 --background -o bg")
    assert connected.user_ns["bg"] is handle and not handle.progress.finished
    handle.stop()
    assert handle.wait(timeout=20).state == "stopped"
    benches, _, _ = run(connected, "benches")
    assert {"m1", "m-cmd", "shop.echo", "shop.slow"} <= set(benches["label"])
    assert len(get_lab().history()) == history  # runs are recorded in benches(), not per call


def test_capacity_sweeps_and_says_where_the_knee_is(connected: InteractiveShell) -> None:
    value, out, err = run(
        connected, "capacity shop.slow seconds=0.01 --concurrency 1,4 -n 20 -o sw"
    )
    assert value is None and err == ""
    sweep = connected.user_ns["sw"]
    assert out.startswith("shop.slow: knee at concurrency") or out.startswith("shop.slow: no knee")
    assert list(sweep.df["load"]) == [1, 4] and (sweep.df["count"] == 20).all()
    value, _, _ = run(connected, "capacity shop.echo value=1 --rate 50,100 -n 10 --label r")
    assert value.by == "rate" and list(value.df["load"]) == [50, 100]
    assert {"shop.slow c=1", "shop.slow c=4", "r r=50", "r r=100"} <= set(
        get_lab().benches()["label"]
    )
    _, out, err = run(connected, "capacity shop.echo value=1 --concurrency 1 --rate 5")
    assert out == "" and err == "BenchError: sweep concurrency or rate, not both\n"
    result = connected.run_cell("%nuropb capacity shop.echo --concurrency 1,x")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "--concurrency takes whole numbers" in str(result.error_in_exec)


def test_bench_bad_input_is_one_line_and_sends_nothing(connected: InteractiveShell) -> None:
    before = len(get_lab().benches())
    cases = {
        "bench shop.price sku=A -n 0": "BenchError: n must be a whole number from 1 to",
        "bench shop.price sku=A -c 0": "BenchError: concurrency must be a whole number from 1",
        "bench shop.price sku=A --rate 0": "BenchError: rate must be more than 0",
        "bench shop.price sku=A --duration -1": "BenchError: duration must be more than 0",
        "bench shop.price sku=A -n 5 --duration 1": "BenchError: give n or duration, not both",
        "bench ghost.price sku=A": "NuropbNotDeliveredError: service 'ghost' is not on the mesh",
        "bench shop.nope": "ParamError: shop has no method 'nope'",
        "bench shop.price sku=A qty=x": "ParamError: qty: expected int, got 'x'",
        "bench shop.vault code=x --plain": "EncryptionRefused: shop.vault requires encryption",
    }
    for line, expected in cases.items():
        value, out, err = run(connected, line)
        assert value is None and out == "" and err.count("\n") == 1, (line, err)
        assert err.startswith(expected), (line, err)
    assert len(get_lab().benches()) == before
    result = connected.run_cell("%nuropb bench shop.price --encrypt --plain")
    assert type(result.error_in_exec).__name__ == "UsageError"


def test_bad_arguments_are_usage_errors_and_change_nothing(connected: InteractiveShell) -> None:
    before = len(get_lab().history())
    for line in (
        "call shop.price sku=[1,",
        "call shop.price 42",
        'call shop.price --context {"a":',
        "call shop.price --context [1]",
        "call shop.price --encrypt --plain",
        "call shop.price --bogus",
        "call shop.price value=$missing_variable",
        "publish topic {not json}",
        "connect --nope",
    ):
        result = connected.run_cell(f"%nuropb {line}")
        assert result.error_in_exec is not None, line
        assert type(result.error_in_exec).__name__ == "UsageError", (line, result.error_in_exec)
    result = connected.run_cell("%%nuropb call shop.price\n{not: json")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert len(get_lab().history()) == before


def test_command_publish_tail(connected: InteractiveShell) -> None:
    tail, _, _ = run(connected, "tail magic.# --max 10 -o events")
    assert connected.user_ns["events"] is tail and tail.max_rows == 10
    _, out, _ = run(connected, 'publish magic.one {"n": 1}')
    assert out.strip() == "published to magic.one"
    run(connected, "publish magic.two", '{"n": 2}')
    _, out, _ = run(connected, "command shop.price sku=A")
    assert out.strip() == "command shop.price sent"
    loop = asyncio.new_event_loop()
    try:
        deadline = loop.time() + 10
        while len(tail) < 2 and loop.time() < deadline:
            loop.run_until_complete(asyncio.sleep(0.02))
    finally:
        loop.close()
    assert list(tail.df["n"]) == [1, 2]
    tail.stop()


def test_keys(connected: InteractiveShell) -> None:
    frame, _, _ = run(connected, "keys shop")
    row = frame.iloc[0]
    assert row["public_key"] and row["key_size"] == 2048 and row["encrypted_methods"] == ["vault"]


def test_settings_are_validated_traitlets(
    connected: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    connected.run_cell("%config NuropbMagics.timeout = 7")
    assert get_lab().timeout == 7.0
    connected.run_cell("%config NuropbMagics.timeout = -1")  # %config logs the refusal
    assert get_lab().timeout == 7.0
    assert "timeout must be > 0 seconds" in caplog.text
    connected.run_cell("%config NuropbMagics.tail_max_rows = 500")
    assert get_lab().tail_max_rows == 500
    connected.run_cell("%config NuropbMagics.timeout = 30")


def test_redaction_settings(connected: InteractiveShell) -> None:
    connected.run_cell('%config NuropbMagics.redact_keys = ["tenant"]')
    assert get_lab().redact_keys == ("tenant",)
    assert get_lab().redactor.value({"Tenant": "acme"})[0] == {"Tenant": "[redacted]"}
    _, out, _ = run(connected, "status")
    assert "redaction: on (default keys + tenant," in out
    connected.run_cell("%config NuropbMagics.redact = False")
    _, out, _ = run(connected, "status")
    assert "redaction: off" in out
    connected.run_cell("%config NuropbMagics.redact = True")
    connected.run_cell("%config NuropbMagics.redact_keys = []")
    assert get_lab().redactor.describe().startswith("on (default keys,")


@pytest.mark.filterwarnings("ignore:`Completer.complete` is pending deprecation")
def test_completion(connected: InteractiveShell) -> None:
    run(connected, "services")

    def complete(line: str) -> list[str]:
        return list(connected.Completer.complete(line_buffer=line, cursor_pos=len(line))[1])

    assert "call" in complete("%nuropb ca")
    assert "shop." in complete("%nuropb call sh")
    assert set(complete("%nuropb call shop.")) >= {"shop.price", "shop.echo", "shop.vault"}
    assert complete("%nuropb call shop.price ") == ["sku=", "qty="]
    assert "price" in complete("%nuropb describe shop ")
    assert "main" in complete("%nuropb disconnect ")
    assert "bench" in complete("%nuropb help ")
    # check takes SERVICE or SERVICE.METHOD and nothing after; mock a service
    assert "shop" in complete("%nuropb check sh") and "shop." not in complete("%nuropb check sh")
    assert set(complete("%nuropb check shop.")) >= {"shop.price", "shop.echo"}
    assert not {"sku=", "qty="} & set(complete("%nuropb check shop.price "))  # no params
    assert "shop" in complete("%nuropb mock sh")


def test_magic_against_a_nuropb_service(
    connected: InteractiveShell, mesh_url: str, nuropb_python: Path
) -> None:
    name = f"ref-{uuid.uuid4().hex[:6]}"

    async def with_peer() -> list[Any]:
        peer = await asyncio.create_subprocess_exec(
            str(nuropb_python),
            str(PEERS / "nuropb_service.py"),
            mesh_url,
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert peer.stdout is not None
            line = await asyncio.wait_for(peer.stdout.readline(), 30)
            assert line.strip() == b"READY"
            results = []
            for command in (
                f"describe {name} add",
                f"call {name}.add a=2 b=3",
                f"call {name}.secret text=abc",
            ):
                results.append(await asyncio.to_thread(run, connected, command))
            services = await asyncio.to_thread(run, connected, "services")
            results.append(services)
            return results
        finally:
            if peer.returncode is None:
                peer.kill()
                await peer.wait()

    describe, add, secret, services = asyncio.run(with_peer())
    assert list(describe[0]["parameter"]) == ["a", "b"]
    assert add[0] == 5
    assert secret[0] is not None and secret[2] == ""
    assert name in set(services[0]["service"])


def test_no_password_in_anything_displayed(mesh_url: str, management: ManagementAPI) -> None:
    """A whole session with a distinctive password: no output, repr or row shows it."""
    password = f"pw-{uuid.uuid4().hex}"
    user = f"lab-{uuid.uuid4().hex[:6]}"
    vhost = mesh_url.rsplit("/", 1)[1]
    management.call_blocking("PUT", f"users/{user}", {"password": password, "tags": ""})
    management.call_blocking(
        "PUT", f"permissions/{vhost}/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    url = f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"
    shell = InteractiveShell.instance()
    seen: list[str] = []
    try:
        for line in (
            f"connect {url} --alias secret",
            "status",
            "services --alias secret",
            "describe shop --alias secret",
            "call shop.price sku=A --alias secret",
            "call shop.slow seconds=2 --timeout 0.1 --alias secret",
            "call ghost.x --alias secret",
            "keys shop --alias secret",
            "history",
            f"connect {url} --alias secret",
            "connect amqp://bad:wrong-secret@127.0.0.1:5672/x --alias other",
            "disconnect secret",
        ):
            value, out, err = run(shell, line)
            seen += [out, err, repr(value)]
            if isinstance(value, pd.DataFrame):
                seen.append(value.to_string())
                seen.append(value.to_html())
        seen.append(repr(get_lab()))
    finally:
        management.call_blocking("DELETE", f"users/{user}")
    text = "\n".join(seen)
    assert password not in text and "wrong-secret" not in text
    assert f"{user}:***@" in text  # the URL was shown, masked


def test_split_and_parse_helpers() -> None:
    assert split_args('a=1 b=["x", "y"] c={"k": [1, 2]} --t 5') == [
        "a=1",
        'b=["x", "y"]',
        'c={"k": [1, 2]}',
        "--t",
        "5",
    ]
    assert parse_value("3") == 3 and parse_value("1.5") == 1.5 and parse_value("abc") == "abc"
    assert sys.maxsize and parse_value("'x y'") == "x y"
