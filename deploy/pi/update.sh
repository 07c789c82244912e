#!/usr/bin/env bash
# Updates learnroom on a room gateway and rolls back if the new version does not come up:
#   sudo deploy/pi/update.sh [SOURCE]     (SOURCE as for install.sh)
# The outbox keeps every reading meanwhile; the agent resends them after the restart.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
source_spec="${1:-$(cd "$here/../.." && pwd)}"
prefix=/opt/learnroom

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

rollback() {
    echo "update failed: rolling back to the previous version" >&2
    rm -rf "$prefix/venv"
    mv "$prefix/venv.previous" "$prefix/venv"
    systemctl restart learnroom-agent
    exit 1
}

rm -rf "$prefix/venv.previous"
cp -a "$prefix/venv" "$prefix/venv.previous"
case "$source_spec" in
    *" @ "*|*.whl) "$prefix/venv/bin/pip" install -q --upgrade "$source_spec" || rollback ;;
    *) "$prefix/venv/bin/pip" install -q --upgrade "${source_spec}[pi]" || rollback ;;
esac
"$prefix/venv/bin/learnroom" check-config /etc/learnroom/room.toml || rollback
systemctl restart learnroom-agent
# Type=notify: "active" only after the agent said READY; give it the watchdog's time
for _ in $(seq 1 30); do
    if systemctl is-active --quiet learnroom-agent; then
        echo "updated: $("$prefix/venv/bin/learnroom" --version)"
        exit 0
    fi
    sleep 2
done
rollback
