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
