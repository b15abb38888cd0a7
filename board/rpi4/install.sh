#!/bin/sh
# Make this machine a rpi4 cxr-edge station (after installing the package), as root:
#   sudo /usr/share/cxr-edge/board/rpi4/install.sh [--force]
exec "$(dirname "$0")/../install.sh" rpi4 "$@"
