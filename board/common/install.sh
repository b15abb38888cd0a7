#!/bin/sh
# Set up (or switch) the board profile of an installed cxr-edge package, as root:
#   /usr/share/cxr-edge/board/install.sh [BOARD] [--force]
# BOARD: rpi4, rpi5, jetson-orin-nano or generic (default: detected from the device tree).
# Installs the profile's config as /etc/cxr-edge/config.toml (an existing one is kept unless
# --force, which saves it as config.toml.old first; 0640 root:cxr-edge; from the package's
# postinst through ucf, which keeps an admin's edits across upgrades), makes sure the service
# user is in the device groups the board has, applies the package's udev rules to devices already
# plugged in, and restarts the service if it is enabled (an admin's `systemctl disable` stands).
# The package's postinst runs it with CXR_EDGE_POSTINST=1: then deb-systemd-helper (the
# #DEBHELPER# part of the postinst) enables and starts the service instead.
# Nothing here touches /var/lib/cxr-edge (see debian/postinst).
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
  echo "install.sh: no board profile '$board' (have: $(for d in "$SHARE"/*/; do basename "$d"; done | tr '\n' ' '))" >&2
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }

# Device groups: created where the board's OS lacks them (JetPack has no gpio/spi groups);
# udev rules below hand the device nodes to them. video: cameras and framebuffers; gpio: GPIO
# buttons and panel lines; spi: SPI panels; input: USB keyboards, keypads, foot pedals and touch
# screens (read only: DeviceAllow=char-input r). Nothing else: the unit's DeviceAllow= lets
# through these device classes only. render, which earlier versions added, is taken away.
for g in gpio spi; do getent group "$g" >/dev/null || groupadd --system "$g"; done
for g in video gpio spi input; do
  if getent group "$g" >/dev/null; then usermod -a -G "$g" cxr-edge; fi
done
for g in render; do
  if id -nG cxr-edge | tr ' ' '\n' | grep -qx "$g"; then gpasswd -d cxr-edge "$g" >/dev/null; fi
done

# The configuration may hold the upload page's token: root writes it, the service's group reads
# it, nobody else does (0640 root:cxr-edge, also for a config kept from an earlier version).
CFG=/etc/cxr-edge/config.toml
mkdir -p /etc/cxr-edge
if [ -e "$CFG" ] && [ "$force" = 1 ]; then
  cp -p "$CFG" "$CFG.old"
fi
if [ "${CXR_EDGE_POSTINST:-0}" = 1 ] && command -v ucf >/dev/null 2>&1; then
  # From the package: the board profile is the maintainer's version of the config and ucf keeps
  # the admin's in charge. A config nobody edited follows the profile's changes on upgrade; an
  # edited one is kept, and when the profile changed too, debconf asks (with no one to ask,
  # e.g. unattended upgrades, the edited file stays and the new profile is left beside it as
  # config.toml.ucf-dist). The postinst has loaded debconf's confmodule for this.
  ucf --three-way --debconf-ok "$SHARE/$board/config.toml" "$CFG"
  ucfr cxr-edge "$CFG"
elif [ ! -e "$CFG" ] || [ "$force" = 1 ]; then
  install -m 0640 -o root -g cxr-edge "$SHARE/$board/config.toml" "$CFG"
  echo "install.sh: $CFG is the $board profile"
  # Tell ucf the file is the profile now, so the next upgrade treats it as unedited.
  if command -v ucf >/dev/null 2>&1 && command -v ucfq >/dev/null 2>&1 && ucfq -w cxr-edge 2>/dev/null | grep -q "^$CFG:"; then
    UCF_FORCE_CONFFNEW=1 ucf --three-way "$SHARE/$board/config.toml" "$CFG" 2>/dev/null || true
  fi
else
  echo "install.sh: keeping the existing $CFG (use --force to replace it)"
fi
if [ -f "$CFG" ] && [ ! -L "$CFG" ]; then
  chown root:cxr-edge "$CFG"
  chmod 0640 "$CFG"
fi
echo "$board" > /etc/cxr-edge/board
# Earlier versions copied a board's rules to /etc, named so that they ran before the USB
# properties they match on were known; the package's own rules replace them. An admin's own file
# of that name (not starting with our header) is left alone.
OLD_RULES=/etc/udev/rules.d/60-cxr-edge.rules
if [ -f "$OLD_RULES" ] && head -n 1 "$OLD_RULES" | grep -q '^# cxr-edge udev rules'; then
  rm -f "$OLD_RULES"
fi
if command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
  udevadm control --reload-rules && udevadm trigger --action=add --subsystem-match=video4linux \
    --subsystem-match=graphics --subsystem-match=spidev --subsystem-match=gpio || true
  udevadm settle --timeout=10 || true
fi
if [ "${CXR_EDGE_POSTINST:-0}" = 1 ]; then
  exit 0
fi
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet cxr-edge.service; then
  systemctl restart cxr-edge.service
  echo "install.sh: service restarted; status: systemctl status cxr-edge; log: journalctl -u cxr-edge"
else
  echo "install.sh: the service is not enabled (sudo systemctl enable --now cxr-edge starts it)"
fi
