/* SPDX-License-Identifier: GPL-2.0 */
/*
 * send.h - blobcrctl group send: copy a checkpoint group to another
 * repository, sending only what differs.  Returns blobcrctl's exit status
 * and prints its own errors.
 */
#ifndef BLOBCRCTL_SEND_H
#define BLOBCRCTL_SEND_H

struct blobcr_client;

int send_cmd_group(struct blobcr_client *c, int argc, char **argv);

#endif /* BLOBCRCTL_SEND_H */
