/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forward.h - a storage node's copies to the other replicas of a chunk
 * (PUT_FWD): which nodes exist, and plain PUTs to them, in parallel.
 */
#ifndef BLOBCR_FORWARD_H
#define BLOBCR_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "blobcr.h"

struct forwarder;

/**
 * fwd_new() - a forwarder that learns the nodes from metad at @meta (NULL:
 * none, every forward list is refused) with the node's key file (NULL:
 * $BLOBCR_KEY) and @key, and sends with @key, encrypted if @encrypt.
 * Return: 0 or -ENOMEM.
 */
int fwd_new(const char *meta, const char *key_file, struct blobcr_key *key,
	    const char *domain, bool encrypt, struct forwarder **out);
void fwd_free(struct forwarder *f);

/** fwd_set_self() - this node's id (from its heartbeat): never a target. */
void fwd_set_self(struct forwarder *f, uint32_t id);

/**
 * fwd_check() - check a forward list: @n ids, distinct, none this node's,
 * each a node metad lists and has not removed.  Logs the reason of a
 * refusal.  Return: 0, -EINVAL (duplicate, this node), -ENXIO (unknown or
 * removed node, or no metad to ask), or metad's error.
 */
int fwd_check(struct forwarder *f, const uint32_t *ids, int n);

/**
 * fwd_put() - PUT the chunk @id (@len bytes at @data) to the @n nodes of a
 * checked list, all at once, each answered within @wait_ms: the status of
 * each (0 durable there, else -errno: -ECONNREFUSED or -EHOSTDOWN for a
 * node found dead, -ETIMEDOUT for one that did not answer in time) goes
 * to @status.  Return: how many bytes were sent.
 */
uint64_t fwd_put(struct forwarder *f, const uint32_t *ids, int n,
		 const uint8_t *id, const uint8_t *data, uint32_t len,
		 int wait_ms, int *status);

#endif /* BLOBCR_FORWARD_H */
