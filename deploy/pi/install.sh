#!/usr/bin/env bash
# Installs the learnroom room gateway on Raspberry Pi OS (Bookworm), as root on the Pi:
#   sudo deploy/pi/install.sh [SOURCE]
# SOURCE is what pip installs: this checkout (default), a wheel, or a requirement such as
# 'learnroom @ git+https://...'. Safe to run again: it keeps an existing config.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
source_spec="${1:-$(cd "$here/../.." && pwd)}"
prefix=/opt/learnroom
etc=/etc/learnroom

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

echo "== packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    python3-venv python3-dev swig liblgpio-dev i2c-tools iw mosquitto mosquitto-clients

echo "== I2C"
if command -v raspi-config >/dev/null; then
    raspi-config nonint do_i2c 0
else
    echo "raspi-config not found: enable I2C yourself (dtparam=i2c_arm=on)" >&2
fi

echo "== user"
if ! id learnroom >/dev/null 2>&1; then
    useradd --system --home /var/lib/learnroom --shell /usr/sbin/nologin learnroom
fi
for group in gpio i2c input; do
    if getent group "$group" >/dev/null; then
        usermod -a -G "$group" learnroom
    fi
done

echo "== learnroom into $prefix/venv"
python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
case "$source_spec" in
    *" @ "*|*.whl) "$prefix/venv/bin/pip" install -q --upgrade "$source_spec" ;;
    *) "$prefix/venv/bin/pip" install -q --upgrade "${source_spec}[pi]" ;;
esac

echo "== config"
install -d -m 0755 "$etc"
if [ ! -e "$etc/room.toml" ]; then
    install -m 0640 -g learnroom "$here/room.example.toml" "$etc/room.toml"
    echo "edit $etc/room.toml (or copy the one \`learnroom provision\` made), then re-run" >&2
fi
if [ ! -e "$etc/secrets.env" ]; then
    install -m 0600 /dev/null "$etc/secrets.env"
fi

echo "== local broker for ESPHome satellites"
install -m 0644 "$here/mosquitto-satellites.conf" /etc/mosquitto/conf.d/learnroom.conf
install -m 0644 "$here/mosquitto-satellites.acl" /etc/mosquitto/learnroom-satellites.acl
if [ ! -e /etc/mosquitto/learnroom-satellites.passwd ]; then
    install -m 0640 -g mosquitto /dev/null /etc/mosquitto/learnroom-satellites.passwd
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    mosquitto_passwd -b /etc/mosquitto/learnroom-satellites.passwd satellite "$password"
    echo "satellites connect as user 'satellite' with password: $password" >&2
    echo "(put it in firmware_configs/secrets.yaml as mqtt_password)" >&2
    agent_password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    mosquitto_passwd -b /etc/mosquitto/learnroom-satellites.passwd learnroom-agent "$agent_password"
    echo "LEARNROOM_SATELLITES_PASSWORD=$agent_password" >> "$etc/secrets.env"
fi
systemctl restart mosquitto

echo "== logs kept small for the SD card"
install -D -m 0644 "$here/journald-learnroom.conf" /etc/systemd/journald.conf.d/learnroom.conf
systemctl restart systemd-journald

echo "== service"
install -m 0644 "$here/learnroom-agent.service" /etc/systemd/system/learnroom-agent.service
systemctl daemon-reload
if "$prefix/venv/bin/learnroom" check-config "$etc/room.toml"; then
    systemctl enable --now learnroom-agent
    echo "running: journalctl -u learnroom-agent -f"
else
    echo "the config has problems (above): fix them, then systemctl enable --now learnroom-agent" >&2
    exit 2
fi
