/* SPDX-License-Identifier: GPL-2.0 */
/*
 * repair.h - blobcr-metad's re-replication thread: while some storage node
 * is dead, or after copies were found bad or missing, it runs
 * blobcr_repair() now and then, as a client of this very metad, so that
 * chunks get back to R copies without an operator.
 */
#ifndef BLOBCR_METAD_REPAIR_H
#define BLOBCR_METAD_REPAIR_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "blobcr_wire.h"

struct repairer {
	char self[BLOBCR_ADDR_MAX]; /* where this metad can be reached */
	const char *key_file; /* metad's own key */
	int interval_s; /* between checks */
	const uint64_t *events; /* atomic: changes when copies may be missing */
	volatile sig_atomic_t *stop;
	pthread_t tid;
};

/**
 * repairer_start() - start the thread; @listen is metad's bind address (a
 * wildcard host is reached through 127.0.0.1), @key_file metad's key.
 * Return: 0 or -errno.
 */
int repairer_start(struct repairer *r, const char *listen, const char *key_file,
		   int interval_s, const uint64_t *events,
		   volatile sig_atomic_t *stop);

/** repairer_join() - wait for the thread once *stop is set. */
void repairer_join(struct repairer *r);

#endif /* BLOBCR_METAD_REPAIR_H */
