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

# apt_install WHAT PACKAGE...: install Debian packages with apt-get when missing and running as
# root (bounded, non-interactive); fails, saying why, when it cannot.
apt_install() {
    local what="$1"
    shift
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "note: $what needs the Debian packages $* (install them as root)" >&2
        return 1
    fi
    echo "installing $* with apt-get ..." >&2
    local apt=(apt-get -o DPkg::Lock::Timeout=120 -y -qq --no-install-recommends)
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 "${apt[@]}" install "$@" </dev/null >/dev/null; then
        # a fresh machine's package lists may be empty or stale
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -qq update </dev/null >/dev/null || true
        if ! DEBIAN_FRONTEND=noninteractive timeout 900 "${apt[@]}" install "$@" </dev/null >/dev/null; then
            echo "warning: could not install $* with apt-get" >&2
            return 1
        fi
    fi
}

# setup_chromium: Debian's Chromium for the browser test, installed when missing (apt_install).
# Without it the browser test is skipped, and says why.
setup_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    apt_install "the browser test (skipped without it)" \
        chromium fonts-liberation fonts-noto-color-emoji || true # text and emoji glyphs
}

# debian_mirror: the Debian mirror this machine's apt uses ($NUROPB_DEBIAN_MIRROR overrides it).
debian_mirror() {
    if [ -n "${NUROPB_DEBIAN_MIRROR:-}" ]; then
        echo "$NUROPB_DEBIAN_MIRROR"
        return 0
    fi
    local codename mirror
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    # the site apt fetches the host's own release from (one-line or deb822 sources alike)
    mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null |
        awk -v release="$codename" '$2 == release { print $1; exit }')
    if [ -z "$mirror" ]; then
        echo "no Debian mirror found in apt's sources for '$codename': set NUROPB_DEBIAN_MIRROR" >&2
        return 1
    fi
    echo "$mirror"
}

# setup_rabbitmq_root [SUITE] [SERIES]: prints the path of a Debian SUITE root (default forky)
# with rabbitmq-server SERIES.x (default 4.3) installed, where tests/nodes starts throwaway
# nodes of that version beside this machine's own broker, whatever its version.
#
# Built once, from the mirror this machine's apt uses (debootstrap --variant=minbase, then
# apt-get install in the root: ~2 min, ~340 MB), then reused: it is cached outside the clone,
# in $NUROPB_RABBITMQ_ROOTS (default /var/cache/nuropb-lab/rabbitmq-roots), so that every clean
# clone (CI) does not pay for it; building needs root anyway. The cache is keyed by suite and
# series; the exact version installed is in the root's /etc/nuropb-lab-root. A build is made
# under a lock and moved into place when complete. Delete the folder to build it anew.
# Returns 2 (saying so) where it cannot be built: not root.
setup_rabbitmq_root() {
    local suite="${1:-forky}" series="${2:-4.3}"
    local cache="${NUROPB_RABBITMQ_ROOTS:-/var/cache/nuropb-lab/rabbitmq-roots}"
    local root="$cache/$suite-rabbitmq-$series"
    if [ -f "$root/etc/nuropb-lab-root" ]; then
        echo "$root"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "note: building a Debian root with RabbitMQ $series needs root (debootstrap, chroot)" >&2
        return 2
    fi
    command -v debootstrap >/dev/null || apt_install "a Debian $suite root" debootstrap || return 1
    mkdir -p "$cache"
    (
        exec 9>"$cache/.lock"
        flock 9 # one build at a time; a second waits for it and uses it
        [ -f "$root/etc/nuropb-lab-root" ] && exit 0
        local mirror building="$root.building" started=$SECONDS
        mirror=$(debian_mirror) || exit 1
        echo "building a Debian $suite root with rabbitmq-server $series.x from $mirror ..." >&2
        rm -rf "$building"
        # Debian 12's debootstrap has no script for forky: sid's fits any suite after trixie.
        # In a mount namespace of its own, so a build cut short leaves nothing mounted.
        timeout 900 unshare --mount --propagation private debootstrap --variant=minbase \
            "$suite" "$building" "$mirror" /usr/share/debootstrap/scripts/sid >"$cache/build.log" 2>&1 ||
            { echo "debootstrap failed; its log: $cache/build.log" >&2 && tail -20 "$cache/build.log" >&2 && exit 1; }
        printf '#!/bin/sh\nexit 101\n' >"$building/usr/sbin/policy-rc.d" # no service starts
        chmod +x "$building/usr/sbin/policy-rc.d"
        printf '127.0.0.1 localhost\n::1 localhost\n' >"$building/etc/hosts"
        # testing's Release may be past its Valid-Until on a mirror snapshot
        if ! timeout 900 tests/nodes/in-root "$building" "" sh -c "
            apt-get -qq -o Acquire::Check-Valid-Until=false update &&
            DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends \
                install 'rabbitmq-server=$series.*' &&
            apt-get clean" >>"$cache/build.log" 2>&1 </dev/null; then
            echo "installing rabbitmq-server $series.x in the root failed; its log: $cache/build.log" >&2
            tail -20 "$cache/build.log" >&2
            exit 1
        fi
        local version
        version=$(chroot "$building" dpkg-query -W -f '${Version}' rabbitmq-server)
        echo "suite=$suite version=$version mirror=$mirror built=$(date -u +%FT%TZ)" \
            >"$building/etc/nuropb-lab-root"
        mv "$building" "$root"
        echo "built $root (rabbitmq-server $version) in $((SECONDS - started)) s" >&2
    ) || return 1
    echo "$root"
}
