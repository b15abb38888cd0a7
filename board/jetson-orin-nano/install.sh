#!/bin/sh
# Make this machine a jetson-orin-nano cxr-edge station (after installing the package), as root:
#   sudo /usr/share/cxr-edge/board/jetson-orin-nano/install.sh [--force]
exec "$(dirname "$0")/../install.sh" jetson-orin-nano "$@"
