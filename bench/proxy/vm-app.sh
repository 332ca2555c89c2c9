#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The application of bench/proxy/run's VM (its /app/run.sh): it only runs,
# with its root file system mounted for the guest agent to freeze; the
# host writes the checkpoints' data into the VM's data disk through QEMU.
echo "bench=ready"
exec sleep 1000000
