/* SPDX-License-Identifier: GPL-2.0 */
/*
 * client_internal.h - the client handle's insides, shared by client.c
 * (version manager calls), engine.c (parallel chunk I/O), commit.c and
 * imageio.c.
 */
#ifndef BLOBCR_CLIENT_INTERNAL_H
#define BLOBCR_CLIENT_INTERNAL_H

#include <stdbool.h>

#include "blobcr.h"
#include "blobcr_util.h"

#define MAX_INFLIGHT 16
#define PROBE_SOCK MAX_INFLIGHT /* socks[] index of the liveness probe */

struct node_conn {
	uint32_t id;
	uint8_t state; /* as metad last reported it */
	uint8_t role; /* likewise */
	uint32_t domain; /* blobcr_domain_hash() of its failure domain */
	char addr[BLOBCR_ADDR_MAX];
	int socks[MAX_INFLIGHT + 1]; /* requests, then the probe; -1: not yet */
	int auth_sock; /* for handshakes, -1: not opened yet */
	struct blobcr_session sess; /* sid 0: none yet */
	uint64_t down_until; /* blobcr_now_ms(): skipped until then */
	int down_err; /* why, when it refused our key; 0: unreachable */
	uint64_t last_reply; /* blobcr_now_ms() of its last reply, any */
	uint64_t last_served; /* engine: likewise, to a request (not a PING) */
	uint64_t probe_sent; /* engine: PING in flight since, 0: none */
	uint64_t probe_id; /* its request id */
	uint64_t probe_seq; /* its sequence number in sess */
	bool slow; /* engine: a PING went unanswered, its port answers */
	bool no_fwd; /* engine: answered PUT_FWD -EOPNOTSUPP (an older node) */
	int qhead, qtail; /* engine: ops queued for this node, -1: none */
};

struct blobcr_client {
	char meta_addr[BLOBCR_ADDR_MAX];
	char domain[BLOBCR_DOMAIN_MAX]; /* this host's failure domain */
	uint32_t domain_hash;
	struct blobcr_peer meta; /* the version manager */
	struct blobcr_key *key; /* ours */
	uint8_t sess_flags; /* BLOBCR_SESS_* asked of every server */
	int timeout_ms;
	int inflight;
	int replicas;
	bool forward; /* a chunk goes to one node, which sends it on (PUT_FWD) */
	struct node_conn *nodes;
	size_t nnodes;
};

/** meta_call() - one request to metad; see blobcr_peer_call(). */
int meta_call(struct blobcr_client *c, uint8_t op, struct blobcr_enc *e,
	      void **msg, struct blobcr_dec *d);

/** client_refresh_nodes() - reload the node list (and R) from metad. */
int client_refresh_nodes(struct blobcr_client *c);

struct node_conn *client_node(struct blobcr_client *c, uint32_t id);
/** client_node_usable() - live, not removed, not backed off: readable. */
bool client_node_usable(const struct node_conn *n);
/** client_node_writable() - usable and active: takes new copies. */
bool client_node_writable(const struct node_conn *n);

/**
 * place_chunk() - rank the writable nodes for chunk @id by rendezvous
 * hashing, leaving out the @nskip nodes in @skip and the nodes of the
 * @nexclude failure domains in @exclude: the best node of each domain
 * first, best domain first, then the others.  Return: how many ids were
 * written to @out (at most @max).
 */
int place_chunk(struct blobcr_client *c, const uint8_t *id,
		const uint32_t *skip, int nskip, const uint32_t *exclude,
		int nexclude, uint32_t *out, int max);

/** report_suspect() - tell metad that @node's copy of @id read bad or missing. */
void report_suspect(struct blobcr_client *c, const uint8_t *id, uint32_t node);

/* A CHUNK_LOCATE count: a gc is deleting the chunk, ask again. */
#define CHUNK_DOOMED 0xff

/**
 * chunk_locate() - the holders of @n ids that count (nhave, replicas; nhave
 * CHUNK_DOOMED: ask again), for commit @session (0: none), whose chunks
 * gc then spares.
 */
int chunk_locate(struct blobcr_client *c, uint64_t session,
		 const uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n,
		 struct blobcr_put *out);

#endif /* BLOBCR_CLIENT_INTERNAL_H */
