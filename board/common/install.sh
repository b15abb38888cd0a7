#!/bin/sh
# Set up (or switch) the board profile of an installed cxr-edge package, as root:
#   /usr/share/cxr-edge/board/install.sh [BOARD] [--force]
# BOARD: rpi4, rpi5, jetson-orin-nano or generic (default: detected from the device tree).
# Installs the profile's config as /etc/cxr-edge/config.toml (an existing one is kept unless
# --force, which saves it as config.toml.old first; 0640 root:cxr-edge) and its udev rules, makes
# sure the service user is in the device groups the board has, then enables and (re)starts the
# service. Nothing here touches /var/lib/cxr-edge (see debian/postinst).
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
# udev rules below hand the device nodes to them. video: cameras and framebuffers; gpio: GPIO
# buttons and panel lines; spi: SPI panels. Nothing else: the unit's DeviceAllow= lets through
# these device classes only. input and render, which earlier versions added, are taken away.
for g in gpio spi; do getent group "$g" >/dev/null || groupadd --system "$g"; done
for g in video gpio spi; do
  if getent group "$g" >/dev/null; then usermod -a -G "$g" cxr-edge; fi
done
for g in input render; do
  if id -nG cxr-edge | tr ' ' '\n' | grep -qx "$g"; then gpasswd -d cxr-edge "$g" >/dev/null; fi
done

# The configuration may hold the upload page's token: root writes it, the service's group reads
# it, nobody else does (0640 root:cxr-edge, also for a config kept from an earlier version).
CFG=/etc/cxr-edge/config.toml
mkdir -p /etc/cxr-edge
if [ -e "$CFG" ] && [ "$force" = 1 ]; then
  cp -p "$CFG" "$CFG.old"
fi
if [ ! -e "$CFG" ] || [ "$force" = 1 ]; then
  install -m 0640 -o root -g cxr-edge "$SHARE/$board/config.toml" "$CFG"
  echo "install.sh: $CFG is the $board profile"
else
  echo "install.sh: keeping the existing $CFG (use --force to replace it)"
fi
if [ -f "$CFG" ] && [ ! -L "$CFG" ]; then
  chown root:cxr-edge "$CFG"
  chmod 0640 "$CFG"
fi
install -D -m 0644 "$SHARE/$board/60-cxr-edge.rules" /etc/udev/rules.d/60-cxr-edge.rules
echo "$board" > /etc/cxr-edge/board
if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
  udevadm control --reload-rules && udevadm trigger --subsystem-match=video4linux \
    --subsystem-match=graphics --subsystem-match=spidev --subsystem-match=gpio || true
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
