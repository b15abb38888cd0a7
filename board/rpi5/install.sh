#!/bin/sh
# Make this machine a rpi5 cxr-edge station (after installing the package), as root:
#   sudo /usr/share/cxr-edge/board/rpi5/install.sh [--force]
exec "$(dirname "$0")/../install.sh" rpi5 "$@"
