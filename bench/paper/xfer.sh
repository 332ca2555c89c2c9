#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The qcow2 baseline's repository on the host (bench/paper/run): socat runs
# this once per connection, the socket on stdin and stdout.
#   "PUT NAME\n" then the bytes until EOF: stored as DIR/NAME, fsynced,
#                answered "OK SIZE" (what the paper's proxy does: copy the
#                overlay whole to persistent storage)
#   "GET NAME\n": the bytes back
# Usage: xfer.sh DIR
set -u
dir=$1
read -r verb name || exit 1
case $name in '' | */* | .*) echo "ERR bad name"; exit 1 ;; esac
case $verb in
PUT)
	cat >"$dir/.$name" && sync "$dir/.$name" && mv "$dir/.$name" "$dir/$name" &&
		echo "OK $(stat -c %s "$dir/$name")"
	;;
GET) exec cat "$dir/$name" ;;
*) echo "ERR bad verb" ;;
esac
