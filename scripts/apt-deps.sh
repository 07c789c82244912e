# shellcheck shell=bash
# Installs the Debian packages the tests talk to (real services, no mocks).
# Usage: source scripts/apt-deps.sh
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm packages the tests inject into web pages, kept in .cache/npm (not committed).
npm_install() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    local missing=()
    for pkg in "$@"; do
        [ -d "$root/.cache/npm/node_modules/${pkg%@*}" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing npm packages: ${missing[*]}" >&2
    npm install --prefix "$root/.cache/npm" --no-audit --no-fund --silent "${missing[@]}"
}
