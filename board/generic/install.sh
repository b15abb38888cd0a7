#!/bin/sh
# Make this machine a generic cxr-edge station (after installing the package), as root:
#   sudo /usr/share/cxr-edge/board/generic/install.sh [--force]
exec "$(dirname "$0")/../install.sh" generic "$@"
