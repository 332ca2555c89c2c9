// SPDX-License-Identifier: GPL-2.0
/*
 * nodes.c - blobcr-metad's storage node table: membership and node
 * records kept in LMDB, liveness from heartbeats kept in memory (metad.h).
 *
 * A node is known by its store's UUID, which every heartbeat carries: a
 * new UUID at a known address is a new, empty node (the old store was
 * wiped), and the node that had that address is removed, its copies no
 * longer counted.  A node keeps its id when it moves to another address.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

size_t node_count(struct metad *m)
{
	return __atomic_load_n(&m->nnodes, __ATOMIC_ACQUIRE);
}

struct node *node_find(struct metad *m, uint32_t id)
{
	size_t n = node_count(m);

	/* Ids are handed out in order from 1: entry id - 1, unless a gap. */
	if (id >= 1 && id <= n && m->nodes[id - 1].id == id)
		return &m->nodes[id - 1];
	for (size_t i = 0; i < n; i++)
		if (m->nodes[i].id == id)
			return &m->nodes[i];
	return NULL;
}

uint8_t node_state(const struct node *n)
{
	return __atomic_load_n(&n->state, __ATOMIC_RELAXED);
}

static bool heard_lately(struct metad *m, const struct node *n)
{
	uint64_t seen = __atomic_load_n(&n->last_seen, __ATOMIC_RELAXED);

	return seen && blobcr_now_ms() - seen <= m->dead_after_ms;
}

bool node_live(struct metad *m, uint32_t id)
{
	struct node *n = node_find(m, id);

	return n && node_state(n) != NODE_REMOVED && heard_lately(m, n);
}

bool node_counts(struct metad *m, uint32_t id)
{
	struct node *n = node_find(m, id);

	return n && node_state(n) == NODE_ACTIVE && heard_lately(m, n);
}

void node_addr(struct metad *m, const struct node *n, char out[BLOBCR_ADDR_MAX])
{
	pthread_mutex_lock(&m->nodes_mu);
	memcpy(out, n->addr, BLOBCR_ADDR_MAX);
	pthread_mutex_unlock(&m->nodes_mu);
}

int node_call(struct metad *m, const struct node *n, uint8_t op,
	      struct blobcr_enc *e, void **msg, struct blobcr_dec *d)
{
	return node_call_timeout(m, n, op, e, msg, d, m->node_timeout_ms);
}

int node_call_timeout(struct metad *m, const struct node *n, uint8_t op,
		      struct blobcr_enc *e, void **msg, struct blobcr_dec *d,
		      int timeout_ms)
{
	char addr[BLOBCR_ADDR_MAX];
	struct blobcr_peer peer;
	int err;

	*msg = NULL;
	node_addr(m, n, addr);
	/* As metad, in a session of its own: the node must prove it is one. */
	err = blobcr_peer_open(&peer, addr, m->key, BLOBCR_ROLE_NODE,
			       timeout_ms);
	if (!err)
		err = blobcr_peer_call(&peer, op, e, msg, d);
	if (err && blobcr_auth_error(err))
		log_warn("node %" PRIu32 " (%s) refused metad's key: %s", n->id,
			 addr, blobcr_auth_detail());
	blobcr_peer_close(&peer);
	return err;
}

void repair_wanted(struct metad *m)
{
	__atomic_fetch_add(&m->repair_events, 1, __ATOMIC_RELAXED);
}

/* Fill the in-memory entry from @r.  Caller holds nodes_mu. */
static void node_set(struct node *n, const struct node_rec *r)
{
	memcpy(n->addr, r->addr, sizeof(n->addr));
	memcpy(n->uuid, r->uuid, sizeof(n->uuid));
	memcpy(n->domain, r->domain, sizeof(n->domain));
	__atomic_store_n(&n->domain_hash, blobcr_domain_hash(r->domain),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&n->state, r->state, __ATOMIC_RELAXED);
}

/* Append a node.  Caller holds nodes_mu (or is alone, at startup). */
static struct node *node_add(struct metad *m, const struct node_rec *r)
{
	struct node *nv;

	if (m->nnodes == MAX_NODES)
		return NULL;
	nv = &m->nodes[m->nnodes];
	memset(nv, 0, sizeof(*nv));
	nv->id = r->id;
	node_set(nv, r);
	/* Readers see the entry whole once they see the new count. */
	__atomic_store_n(&m->nnodes, m->nnodes + 1, __ATOMIC_RELEASE);
	return nv;
}

static void node_rec_of(const struct node *n, struct node_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = n->id;
	r->state = node_state(n);
	memcpy(r->uuid, n->uuid, sizeof(r->uuid));
	memcpy(r->addr, n->addr, sizeof(r->addr));
	memcpy(r->domain, n->domain, sizeof(r->domain));
}

int load_nodes(struct metad *m)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, err = 0;

	err = txn_begin(m, MDB_RDONLY, &txn);
	if (err)
		return err;
	rc = mdb_cursor_open(txn, m->db.nodes, &cur);
	if (rc) {
		db_txn_abort(txn);
		return db_err(rc);
	}
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct node_rec r;

		if (db_node_decode(&k, &v, &r)) {
			log_warn("node record %" PRIu32 " is damaged: skipped",
				 k.mv_size == 4 ? get_be32(k.mv_data) : 0);
			continue;
		}
		/* Never a reason not to start: the table is full, say so. */
		if (!node_add(m, &r)) {
			log_err("more than %d storage nodes in the database: "
				"node %" PRIu32 " (%s) and later ones ignored",
				MAX_NODES, r.id, r.addr);
			break;
		}
	}
	mdb_cursor_close(cur);
	db_txn_abort(txn);
	return err;
}

/* ---- heartbeats ---- */

/* Store @r in its own transaction.  Caller holds nodes_mu. */
static int node_persist(struct metad *m, const struct node_rec *r)
{
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (!err)
		err = txn_end(txn, db_node_put(txn, &m->db, r));
	return err;
}

/*
 * A new node with the next id.  Caller holds nodes_mu.  Return: the node,
 * or NULL with *@err set.
 */
static struct node *register_node(struct metad *m, struct node_rec *r,
				  int *err)
{
	uint64_t next;
	MDB_txn *txn;

	/* Full: refuse before anything is committed, or metad cannot start. */
	if (m->nnodes >= MAX_NODES) {
		log_warn("node at %s refused: %d storage nodes already", r->addr,
			 MAX_NODES);
		*err = -ENOSPC;
		return NULL;
	}
	*err = txn_begin(m, 0, &txn);
	if (*err)
		return NULL;
	*err = db_meta_get(txn, &m->db, "next_node", &next);
	if (!*err) {
		r->id = (uint32_t)(next ? next : 1);
		r->state = NODE_ACTIVE;
		*err = db_node_put(txn, &m->db, r);
	}
	if (!*err)
		*err = db_meta_put(txn, &m->db, "next_node", r->id + 1);
	*err = txn_end(txn, *err);
	if (*err)
		return NULL;
	log_info("new storage node %" PRIu32 " at %s, failure domain %s",
		 r->id, r->addr, r->domain);
	return node_add(m, r); /* room was checked above */
}

/* Caller holds nodes_mu. */
static struct node *node_by_uuid(struct metad *m, const uint8_t *uuid)
{
	static const uint8_t zero[BLOBCR_UUID_SIZE];

	if (!memcmp(uuid, zero, sizeof(zero)))
		return NULL;
	for (size_t i = 0; i < m->nnodes; i++)
		if (!memcmp(m->nodes[i].uuid, uuid, BLOBCR_UUID_SIZE))
			return &m->nodes[i];
	return NULL;
}

/* The node not removed at @addr.  Caller holds nodes_mu. */
static struct node *node_by_addr(struct metad *m, const char *addr)
{
	for (size_t i = 0; i < m->nnodes; i++)
		if (node_state(&m->nodes[i]) != NODE_REMOVED &&
		    !strcmp(m->nodes[i].addr, addr))
			return &m->nodes[i];
	return NULL;
}

/*
 * The node a heartbeat comes from, registered or updated as needed.
 * Caller holds nodes_mu.  Return: the node, or NULL with *@err set.
 */
static struct node *heartbeat_node(struct metad *m, const struct node_rec *hb,
				   int *err)
{
	struct node *n = node_by_uuid(m, hb->uuid), *old;
	struct node_rec r;

	*err = 0;
	if (n && node_state(n) == NODE_REMOVED) {
		*err = -ENODEV;
		return NULL;
	}
	if (!n && (old = node_by_addr(m, hb->addr))) {
		static const uint8_t zero[BLOBCR_UUID_SIZE];

		if (!memcmp(old->uuid, zero, sizeof(zero))) {
			n = old; /* known before stores had an identity */
		} else {
			/* Another store at this address: the old one is gone. */
			node_rec_of(old, &r);
			r.state = NODE_REMOVED;
			*err = node_persist(m, &r);
			if (*err)
				return NULL;
			__atomic_store_n(&old->state, NODE_REMOVED, __ATOMIC_RELAXED);
			log_warn("node %" PRIu32 " at %s came back with another store: "
				 "its copies are gone, it is a new node now",
				 old->id, old->addr);
			repair_wanted(m);
			upkeep_kick(m);
		}
	}
	if (!n) {
		r = *hb;
		return register_node(m, &r, err);
	}
	if (strcmp(n->addr, hb->addr) || strcmp(n->domain, hb->domain) ||
	    memcmp(n->uuid, hb->uuid, BLOBCR_UUID_SIZE)) {
		node_rec_of(n, &r);
		memcpy(r.uuid, hb->uuid, sizeof(r.uuid));
		memcpy(r.addr, hb->addr, sizeof(r.addr));
		memcpy(r.domain, hb->domain, sizeof(r.domain));
		*err = node_persist(m, &r);
		if (*err)
			return NULL;
		log_info("node %" PRIu32 " is at %s in failure domain %s", n->id,
			 r.addr, r.domain);
		node_set(n, &r);
	}
	return n;
}

int do_heartbeat(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply)
{
	struct node_rec hb = { 0 };
	const uint8_t *uuid;
	struct node *n;
	uint64_t incarnation, cap, used, chunks;
	int err = blobcr_dec_str(req, hb.addr, sizeof(hb.addr));

	uuid = blobcr_dec_bytes(req, BLOBCR_UUID_SIZE);
	if (!err)
		err = blobcr_dec_str(req, hb.domain, sizeof(hb.domain));
	incarnation = blobcr_dec_u64(req);
	cap = blobcr_dec_u64(req);
	used = blobcr_dec_u64(req);
	chunks = blobcr_dec_u64(req);
	err = err ? err : blobcr_dec_end(req);
	if (!err && !blobcr_addr_valid(hb.addr))
		err = -EINVAL; /* clients could not reach it */
	if (err)
		return err;
	if (!hb.addr[0] || !blobcr_valid_name(hb.domain, sizeof(hb.domain)))
		return -EINVAL;
	memcpy(hb.uuid, uuid, sizeof(hb.uuid));
	pthread_mutex_lock(&m->nodes_mu);
	n = heartbeat_node(m, &hb, &err);
	pthread_mutex_unlock(&m->nodes_mu);
	if (!n)
		return err;
	if (!heard_lately(m, n))
		log_info("node %" PRIu32 " (%s) is live", n->id, hb.addr);
	/* Back, or restarted: it may have lost copies, check its inventory. */
	if (__atomic_exchange_n(&n->incarnation, incarnation, __ATOMIC_RELAXED) !=
	    incarnation || !heard_lately(m, n)) {
		__atomic_store_n(&n->reconcile, true, __ATOMIC_RELAXED);
		upkeep_kick(m);
	}
	__atomic_store_n(&n->last_seen, blobcr_now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&n->capacity, cap, __ATOMIC_RELAXED);
	__atomic_store_n(&n->used, used, __ATOMIC_RELAXED);
	__atomic_store_n(&n->chunks, chunks, __ATOMIC_RELAXED);
	blobcr_enc_u32(reply, n->id);
	return reply->err;
}

/* ---- the node list, drain and removal ---- */

int do_node_list(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply)
{
	size_t count = node_count(m);
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	blobcr_enc_u8(reply, (uint8_t)m->replicas);
	blobcr_enc_u32(reply, (uint32_t)count);
	for (size_t i = 0; i < count; i++) {
		struct node *n = &m->nodes[i];
		uint64_t seen = __atomic_load_n(&n->last_seen, __ATOMIC_RELAXED);
		uint64_t now = blobcr_now_ms();
		struct node_rec r;

		pthread_mutex_lock(&m->nodes_mu);
		node_rec_of(n, &r);
		pthread_mutex_unlock(&m->nodes_mu);
		blobcr_enc_u32(reply, n->id);
		blobcr_enc_u8(reply, heard_lately(m, n) ? BLOBCR_NODE_LIVE :
							   BLOBCR_NODE_DEAD);
		blobcr_enc_str(reply, r.addr);
		blobcr_enc_u64(reply, seen ? (now > seen ? now - seen : 0) : UINT64_MAX);
		blobcr_enc_u64(reply, __atomic_load_n(&n->capacity, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->used, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->chunks, __ATOMIC_RELAXED));
		blobcr_enc_u8(reply, r.state);
		blobcr_enc_str(reply, r.domain);
	}
	return reply->err;
}

/* Set node @id's state from @from (0: any but removed) to @to. */
static int node_change_state(struct metad *m, uint32_t id, uint8_t from,
			     uint8_t to)
{
	struct node *n = node_find(m, id);
	struct node_rec r;
	int err = 0;

	if (!n)
		return -ENOENT;
	pthread_mutex_lock(&m->nodes_mu);
	if (node_state(n) == NODE_REMOVED || (from && node_state(n) != from)) {
		err = node_state(n) == NODE_REMOVED ? -ENOENT : -EINVAL;
	} else if (node_state(n) != to) {
		node_rec_of(n, &r);
		r.state = to;
		err = node_persist(m, &r);
		if (!err)
			__atomic_store_n(&n->state, to, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&m->nodes_mu);
	return err;
}

/*
 * Drain (1) a node: it keeps serving reads but takes no new copies and
 * its copies stop counting, so re-replication copies them elsewhere; or
 * undrain it (0).
 */
int do_node_drain(struct metad *m, struct blobcr_dec *req)
{
	uint32_t id = blobcr_dec_u32(req);
	uint8_t drain = blobcr_dec_u8(req);
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	if (drain > 1)
		return -EINVAL;
	err = drain ? node_change_state(m, id, 0, NODE_DRAINING) :
		      node_change_state(m, id, NODE_DRAINING, NODE_ACTIVE);
	if (err)
		return err;
	log_info("node %" PRIu32 " %s", id, drain ? "draining: its copies are "
		 "re-replicated elsewhere" : "active again");
	repair_wanted(m);
	return 0;
}

/*
 * Remove a node for good, once every chunk it holds is kept well enough
 * without it (-EBUSY otherwise, with how many are not in the log).  Its
 * locations are then forgotten in the background (upkeep.c).
 */
int do_node_remove(struct metad *m, struct blobcr_dec *req)
{
	uint32_t id = blobcr_dec_u32(req);
	uint64_t short_of = 0;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	if (!node_find(m, id) || node_state(node_find(m, id)) == NODE_REMOVED)
		return -ENOENT;
	err = node_chunks_short(m, id, &short_of);
	if (!err && short_of) {
		log_warn("node %" PRIu32 " not removed: %" PRIu64 " of its chunks "
			 "lack R copies elsewhere (drain it and repair first)",
			 id, short_of);
		return -EBUSY;
	}
	if (!err)
		err = node_change_state(m, id, 0, NODE_REMOVED);
	if (err)
		return err;
	log_info("node %" PRIu32 " removed: stop its blobcr-noded and wipe its "
		 "data", id);
	upkeep_kick(m);
	return 0;
}
