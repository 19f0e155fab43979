# Shared setup steps, sourced by scripts/test, scripts/lab and scripts/binder-standin.
SETUP_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup.sh"
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

# debian_root SUITE PACKAGES ROOT: a Debian SUITE root at ROOT (debootstrap's minbase, from
# debian_mirror) with PACKAGES (one string, as apt-get takes them) installed without
# recommends. Built when ROOT is missing, as root (debootstrap installed with apt_install when
# missing), one build at a time, and moved into place when complete; then kept as it is: another
# suite or package set needs another ROOT. No service starts in it (policy-rc.d) and it knows
# localhost. Debian 12's debootstrap has no script for forky: sid's fits any suite after trixie.
# The roots live in $NUROPB_DEBIAN_ROOTS (default /var/cache/nuropb-lab/debian-roots), outside
# the clone, so that every clean clone (CI) on the machine reuses them; building needs root.
debian_roots() {
    echo "${NUROPB_DEBIAN_ROOTS:-/var/cache/nuropb-lab/debian-roots}"
}

debian_root() {
    local suite="$1" packages="$2" root="$3"
    [ -f "$root/.complete" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "note: building a Debian root ($root) needs root (debootstrap, chroot)" >&2
        return 2
    fi
    command -v debootstrap >/dev/null || apt_install "a Debian $suite root" debootstrap || return 1
    mkdir -p "$(dirname "$root")"
    (
        exec 9>"$root.lock"
        flock 9 # a second build waits for the first and uses it
        [ -f "$root/.complete" ] && exit 0
        local partial="$root.partial" log="$root.log" mirror script=() started=$SECONDS
        mirror=$(debian_mirror) || exit 1
        [ -e "/usr/share/debootstrap/scripts/$suite" ] || script=(/usr/share/debootstrap/scripts/sid)
        echo "building a Debian $suite root in $root from $mirror ..." >&2
        rm -rf "$partial"
        # in a mount namespace of its own, so a build cut short leaves nothing mounted
        if ! timeout 1800 unshare --mount --propagation private debootstrap --variant=minbase \
            "$suite" "$partial" "$mirror" "${script[@]}" >"$log" 2>&1; then
            echo "debootstrap failed; its log: $log" >&2 && tail -20 "$log" >&2 && exit 1
        fi
        printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
        chmod 755 "$partial/usr/sbin/policy-rc.d"
        printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$partial/etc/hosts"
        # a testing suite's Release may be past its Valid-Until on a mirror snapshot
        echo 'Acquire::Check-Valid-Until "false";' >"$partial/etc/apt/apt.conf.d/99no-valid-until"
        if [ -n "$packages" ] && ! in_debian_root "$partial" timeout 1800 sh -c "apt-get -qq update &&
            DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends install $packages &&
            apt-get clean" </dev/null >>"$log" 2>&1; then
            echo "installing $packages in the root failed; its log: $log" >&2 && tail -20 "$log" >&2
            exit 1
        fi
        touch "$partial/.complete"
        mv "$partial" "$root"
        echo "built $root in $((SECONDS - started)) s" >&2
    )
}

# mount_system_dirs ROOT: a /proc (of this PID namespace), /dev with /dev/pts, and /sys in ROOT;
# in a private mount namespace (unshare -m), where they go away with it.
mount_system_dirs() {
    mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && mount --rbind /sys "$1/sys"
}

# in_debian_root ROOT COMMAND...: COMMAND run as root chrooted in ROOT, in mount and PID
# namespaces of its own: nothing stays mounted, and what it started ends with it. The shell
# stays the namespace's first process (no exec): a program of the root in its place would have
# no parent, and coreutils 9.10's timeout then exits 125 at once.
# (tests/nodes/in-root does the same for a node's programs, with a folder shared in.)
in_debian_root() {
    unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
        source "$1" && mount_system_dirs "$2" || exit 1
        root="$2"
        shift 2
        chroot "$root" "$@"
        exit $?' bash "$SETUP_SH" "$@"
}

# setup_rabbitmq_root [SUITE] [SERIES]: prints the path of a Debian SUITE root (default forky)
# with rabbitmq-server SERIES.x (default 4.3) installed (debian_root), where tests/nodes starts
# throwaway nodes of that version beside this machine's own broker, whatever its version. About
# a minute and 340 MB the first time; the exact version installed is in the root's
# /etc/nuropb-lab-root. Returns 2 (saying so) where it cannot be built: not root.
setup_rabbitmq_root() {
    local suite="${1:-forky}" series="${2:-4.3}" status=0
    local root
    root="$(debian_roots)/$suite-rabbitmq-$series"
    debian_root "$suite" "'rabbitmq-server=$series.*'" "$root" || status=$?
    [ "$status" = 0 ] || return "$status"
    if [ ! -f "$root/etc/nuropb-lab-root" ]; then
        local version
        version=$(chroot "$root" dpkg-query -W -f '${Version}' rabbitmq-server) || return 1
        echo "suite=$suite version=$version mirror=$(debian_mirror) built=$(date -u +%FT%TZ)" \
            >"$root/etc/nuropb-lab-root"
    fi
    echo "$root"
}
