# Shared setup steps, sourced by scripts/test and scripts/lab.
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
NUROPB_PEER_PYTHON="${NUROPB_PEER_PYTHON:-$(command -v python3.11 || command -v python3.10 || command -v python3)}"

# setup_venv EXTRA: .venv with the project installed editable (with the given extra).
setup_venv() {
    local extra="$1" stamp=".venv/.installed-$1"
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".[$extra]"
        touch "$stamp"
    fi
}

# setup_nuropb_venv: the published nuropb 0.1.8, the interop peer (it needs Python < 3.12).
setup_nuropb_venv() {
    local venv=".cache/nuropb-0.1.8"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import nuropb.rmq_api" 2>/dev/null; then
        rm -rf "$venv"
        mkdir -p .cache
        "$NUROPB_PEER_PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install -q "nuropb==0.1.8"
    fi
}

# setup_compat_venv: nuropb 0.1.8 and the lab installed side by side, as a user migrating from
# nuropb has them (the compatibility tests run code written for nuropb there). Rebuilt when
# pyproject.toml changes.
setup_compat_venv() {
    local venv=".cache/compat" stamp=".cache/compat/.installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] ||
        ! "$venv/bin/python" -c "import nuropb.rmq_api, nuropb_lab" 2>/dev/null; then
        rm -rf "$venv"
        mkdir -p .cache
        "$NUROPB_PEER_PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install -q "nuropb==0.1.8" -e .
        touch "$stamp"
    fi
}

# ensure_broker [URL]: a RabbitMQ broker with its management API answers at URL (default
# $NUROPB_AMQP_URL, else 127.0.0.1:5672), started when needed (nuropb_lab/demo/broker.py).
# Sets BROKER_STARTED=1 when this call started it, for stop_broker_if_started.
ensure_broker() {
    local out
    out=$(.venv/bin/python -m nuropb_lab.demo.broker ${1:+--url "$1"})
    echo "$out"
    BROKER_STARTED=0
    case "$out" in "RabbitMQ started"*) BROKER_STARTED=1 ;; esac
}

# stop_broker_if_started [URL]: stop the broker that ensure_broker started, and no other.
stop_broker_if_started() {
    if [ "${BROKER_STARTED:-0}" = 1 ]; then
        .venv/bin/python -m nuropb_lab.demo.broker stop ${1:+--url "$1"} || true
        BROKER_STARTED=0
    fi
}

# setup_chromium: Debian's Chromium for the browser test, installed with apt-get when missing
# and running as root (bounded, non-interactive). Without it the browser test is skipped, and
# says why.
setup_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "note: /usr/bin/chromium is missing (install Debian's chromium package as root);" \
            "the browser test will be skipped" >&2
        return 0
    fi
    echo "installing chromium with apt-get ..." >&2
    local apt=(apt-get -o DPkg::Lock::Timeout=120 -y -qq --no-install-recommends)
    local packages=(chromium fonts-liberation fonts-noto-color-emoji) # text and emoji glyphs
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 "${apt[@]}" install "${packages[@]}" </dev/null >/dev/null; then
        # a fresh machine's package lists may be empty or stale
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -qq update </dev/null >/dev/null || true
        DEBIAN_FRONTEND=noninteractive timeout 900 "${apt[@]}" install "${packages[@]}" </dev/null >/dev/null ||
            echo "warning: could not install chromium; the browser test will be skipped" >&2
    fi
}
