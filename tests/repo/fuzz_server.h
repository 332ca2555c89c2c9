/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_server.h - the driver shared by fuzz_metad.c and fuzz_noded.c:
 * libFuzzer inputs through a server's whole request handling
 * (blobcr_server_process(): frame, session, role table, handler, reply),
 * with and without valid sessions.
 *
 * An input is: mode byte, session byte, then bytes.  Modes:
 *   0  the bytes as a frame, as anyone could send it
 *   1  opcode and payload, sealed in a valid session: the reply must be
 *      sealed for it and open
 *   2  the same, with one byte of the sealed frame changed: refused
 *   3  the same request twice: the second is refused as a replay
 * Sessions: one per role (node, host, admin, metad), each plain and
 * encrypted, opened at start through the same path.
 */
#ifndef BLOBCR_FUZZ_SERVER_H
#define BLOBCR_FUZZ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "blobcr_util.h"

/**
 * fz_init() - keys in a new directory (removed at exit): the server's,
 * of role @server_role, and one per role for clients; @s->auth set up, and
 * the clients' sessions opened through @s.  Aborts on failure.
 * Return: the directory, for the server's own files.
 */
const char *fz_init(struct blobcr_server *s, unsigned int server_role);

/** fz_one() - run one libFuzzer input through @s; aborts on a broken rule. */
void fz_one(struct blobcr_server *s, const uint8_t *data, size_t size);

#endif /* BLOBCR_FUZZ_SERVER_H */
