#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The end-to-end demo. Placeholder until blobcrd and `blobcrctl deploy`
# land (issue 5): says what the demo will do, and fails.
cat <<'MSG'
make demo is not available yet. When blobcrd and `blobcrctl deploy` land it will:
  1. start a small repository on loopback (3 blobcr-noded, 1 blobcr-metad);
  2. import an ext4 image and boot a guest that deploys it through dm-blobcr;
  3. run a small application that checkpoints a few times (commit ioctl);
  4. kill it, restart from a checkpoint in a second guest;
  5. print versions, bytes fetched vs image size, bytes committed, times.
Meanwhile `make check` runs the test suite.
MSG
exit 1
