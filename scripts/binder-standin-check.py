"""The Binder stand-in's checks (scripts/binder-standin runs this twice).

``run OUT``: inside the stand-in, as the command binder/start wraps (in place of the notebook
server): records when binder/start exec'd it, starts JupyterLab as Binder would and fetches its
pages, executes every notebook in ~/notebooks (nuropb_lab.demo.execute, as the test suite does),
reads the demo broker's memory limit through the documented ``ctl`` command and the management
API, and writes OUT/run.json. Standard library and the installed nuropb-lab only.

``report OUT``: on this machine afterwards: reads OUT (run.json and the build step's files),
writes OUT/results.json with one entry per check, prints them; exit code 1 when one failed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

# the server must answer within JupyterHub's Spawner.http_timeout of the container's start
HTTP_TIMEOUT = 30.0
JUPYTER_PORT = 8888


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The command README and notebook 01 give, run as a user would from a Binder terminal."""
    command = [sys.executable, "-m", "nuropb_lab.demo.broker", "ctl", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=Path.home())


def _jupyter(log: IO[bytes], facts: dict[str, Any]) -> subprocess.Popen[bytes]:
    """JupyterLab as Binder starts it (a token, port 8888), once it answers; its pages fetched."""
    token = secrets.token_hex(16)
    options = ["--no-browser", "--ip=127.0.0.1", f"--port={JUPYTER_PORT}"]
    options += ["--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    server = subprocess.Popen(
        ["jupyter", "lab", *options], stdout=log, stderr=subprocess.STDOUT, cwd=Path.home()
    )
    base, auth = f"http://127.0.0.1:{JUPYTER_PORT}", {"Authorization": f"token {token}"}
    deadline = time.monotonic() + 60
    while _get(f"{base}/api/status", auth)[0] != 200 and time.monotonic() < deadline:
        if server.poll() is not None:
            break
        time.sleep(0.2)
    facts["answered_seconds"] = time.time() - float(os.environ["STANDIN_STARTED"])
    facts["pages"] = {page: _get(base + page, auth)[0] for page in ("/lab", "/tree")}
    return server


def _notebooks(out: Path) -> dict[str, dict[str, Any]]:
    from nuropb_lab.demo.execute import NotebookFailed, execute_notebook

    done = {}
    for path in sorted((Path.home() / "notebooks").glob("*.ipynb")):
        started = time.monotonic()
        try:
            execute_notebook(path, out / "executed" / path.name, timeout=120)
            error = ""
        except NotebookFailed as exc:
            error = str(exc)[-3000:]
        done[path.stem] = {"error": error, "seconds": round(time.monotonic() - started, 1)}
    return done


def _watermark(facts: dict[str, Any]) -> None:
    status = _ctl("status", "--formatter", "json")
    memory = json.loads(status.stdout) if status.returncode == 0 else {}
    facts["ctl_status"] = {
        "returncode": status.returncode,
        "stderr": status.stderr[-1000:],
        "limit": memory.get("vm_memory_high_watermark_limit"),
        "setting": memory.get("vm_memory_high_watermark_setting"),
    }
    queues = _ctl("list_queues", "-p", "nuropb-demo", "--quiet", "--no-table-headers", "name")
    facts["ctl_queues"] = {"returncode": queues.returncode, "names": queues.stdout.split()}
    token = base64.b64encode(b"guest:guest").decode()
    code, body = _get("http://127.0.0.1:15672/api/nodes", {"Authorization": f"Basic {token}"})
    facts["management_mem_limit"] = json.loads(body)[0]["mem_limit"] if code == 200 else None


def run(out: Path) -> int:
    facts: dict[str, Any] = {"exec_seconds": time.time() - float(os.environ["STANDIN_STARTED"])}
    facts["mem_limit"] = int(os.environ["MEM_LIMIT"])
    with (out / "jupyter.log").open("wb") as log:
        server = _jupyter(log, facts)
        try:
            facts["notebooks"] = _notebooks(out)
            _watermark(facts)
        finally:
            server.terminate()
            server.wait(30)
    lines = (out / "jupyter.log").read_text(errors="replace").splitlines()
    facts["jupyter_errors"] = [
        line for line in lines if line.startswith("[E ") or "Traceback" in line
    ]
    (out / "run.json").write_text(json.dumps(facts, indent=1))
    return 0


def _read(path: Path) -> str:
    return path.read_text(errors="replace").strip() if path.exists() else f"({path.name} missing)"


def report(out: Path) -> int:
    facts: dict[str, Any] = {}
    if (out / "run.json").exists():
        facts = json.loads((out / "run.json").read_text())
    share = 0.4  # nuropb_lab.demo.broker.WATERMARK_SHARE (not imported: this runs outside)
    expected = int(facts.get("mem_limit", 0) * share)
    notebooks = facts.get("notebooks", {})
    new_files = _read(out / "new-files.txt")
    checks = {
        "build": (_read(out / "build.rc") == "0", f"exit {_read(out / 'build.rc')}; build.log"),
        "pip check": (_read(out / "pip-check.rc") == "0", _read(out / "pip-check.txt")),
        "no build files in $HOME": (new_files == "", new_files or "none"),
        "the server answered in time": (
            facts.get("answered_seconds", HTTP_TIMEOUT) < HTTP_TIMEOUT,
            f"binder/start exec'd it after {facts.get('exec_seconds', float('nan')):.1f} s, it"
            f" answered after {facts.get('answered_seconds', float('nan')):.1f} s"
            f" (bound {HTTP_TIMEOUT:.0f} s)",
        ),
        "every notebook executed": (
            bool(notebooks) and not any(nb["error"] for nb in notebooks.values()),
            "; ".join(f"{k}: {v['error'] or 'ok'} ({v['seconds']} s)" for k, v in notebooks.items())
            or "none",
        ),
        "watermark from MEM_LIMIT (ctl status)": (
            facts.get("ctl_status", {}).get("limit") == expected and expected > 0,
            f"{facts.get('ctl_status')} (expected {expected})",
        ),
        "watermark from MEM_LIMIT (management API)": (
            facts.get("management_mem_limit") == expected and expected > 0,
            f"{facts.get('management_mem_limit')} (expected {expected})",
        ),
        "ctl lists the demo's queues": (
            "nuropb-orders-sq" in facts.get("ctl_queues", {}).get("names", []),
            str(facts.get("ctl_queues")),
        ),
        "JupyterLab and Notebook 7 pages, no error logged": (
            facts.get("pages") == {"/lab": 200, "/tree": 200} and not facts["jupyter_errors"],
            f"{facts.get('pages')}; errors logged: {facts.get('jupyter_errors')}",
        ),
    }
    results = {
        "facts": facts,
        "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in checks.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for name, (ok, detail) in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "report"):
        sys.exit("usage: binder-standin-check.py run|report OUT")
    sys.exit((run if sys.argv[1] == "run" else report)(Path(sys.argv[2])))
