#!/bin/sh
# Set up (or switch) the board profile of an installed cxr-edge package, as root:
#   /usr/share/cxr-edge/board/install.sh [BOARD] [--force]
# BOARD: rpi4, rpi5, jetson-orin-nano or generic (default: detected from the device tree).
# Installs the profile's config as /etc/cxr-edge/config.toml (an existing one is kept unless
# --force, which saves it as config.toml.old first) and its udev rules, makes sure the service
# user is in the device groups the board has, then enables and (re)starts the service.
set -e
SHARE=/usr/share/cxr-edge/board
board=""; force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -*) echo "install.sh: unknown option $a" >&2; exit 2 ;;
    *) board="$a" ;;
  esac
done
[ -n "$board" ] || board="$("$SHARE/detect")"
if [ ! -f "$SHARE/$board/config.toml" ]; then
  echo "install.sh: no board profile '$board' (have: $(ls "$SHARE" | grep -v -e common -e detect -e install.sh | tr '\n' ' '))" >&2
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

# Device groups: created where the board's OS lacks them (JetPack has no gpio/spi groups);
# udev rules below hand the device nodes to them.
for g in gpio spi; do getent group "$g" >/dev/null || groupadd --system "$g"; done
for g in video gpio spi input render; do
  getent group "$g" >/dev/null && usermod -a -G "$g" cxr-edge
done

mkdir -p /etc/cxr-edge
if [ -e /etc/cxr-edge/config.toml ] && [ "$force" = 1 ]; then
  cp /etc/cxr-edge/config.toml /etc/cxr-edge/config.toml.old
fi
if [ ! -e /etc/cxr-edge/config.toml ] || [ "$force" = 1 ]; then
  install -m 0644 "$SHARE/$board/config.toml" /etc/cxr-edge/config.toml
  echo "install.sh: /etc/cxr-edge/config.toml is the $board profile"
else
  echo "install.sh: keeping the existing /etc/cxr-edge/config.toml (use --force to replace it)"
fi
install -D -m 0644 "$SHARE/$board/60-cxr-edge.rules" /etc/udev/rules.d/60-cxr-edge.rules
echo "$board" > /etc/cxr-edge/board
if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
  udevadm control --reload-rules && udevadm trigger --subsystem-match=video4linux \
    --subsystem-match=spidev --subsystem-match=gpio || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable cxr-edge.service
  systemctl restart cxr-edge.service
  echo "install.sh: service started; status: systemctl status cxr-edge; log: journalctl -u cxr-edge"
else
  echo "install.sh: systemd is not running here (a chroot?); the service starts at next boot"
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /lib/systemd/system/cxr-edge.service /etc/systemd/system/multi-user.target.wants/cxr-edge.service
fi
