// SPDX-License-Identifier: GPL-2.0
/*
 * nodes.c - blobcr-metad's storage node table: membership kept in LMDB,
 * liveness from heartbeats kept in memory (metad.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

	for (size_t i = 0; i < n; i++)
		if (m->nodes[i].id == id)
			return &m->nodes[i];
	return NULL;
}

static uint64_t node_last_seen(const struct node *n)
{
	return __atomic_load_n(&n->last_seen, __ATOMIC_RELAXED);
}

bool node_live(struct metad *m, uint32_t id)
{
	struct node *n = node_find(m, id);
	uint64_t seen = n ? node_last_seen(n) : 0;

	return seen && blobcr_now_ms() - seen <= m->dead_after_ms;
}

/* Append a node.  Caller holds nodes_mu (or is alone, at startup). */
static struct node *node_add(struct metad *m, uint32_t id, const char *addr)
{
	struct node *nv;

	if (m->nnodes == MAX_NODES)
		return NULL;
	nv = &m->nodes[m->nnodes];
	memset(nv, 0, sizeof(*nv));
	nv->id = id;
	snprintf(nv->addr, sizeof(nv->addr), "%s", addr);
	/* Readers see the entry whole once they see the new count. */
	__atomic_store_n(&m->nnodes, m->nnodes + 1, __ATOMIC_RELEASE);
	return nv;
}

int load_nodes(struct metad *m)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, err = 0;

	rc = mdb_txn_begin(m->db.env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return db_err(rc);
	rc = mdb_cursor_open(txn, m->db.nodes, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char addr[BLOBCR_ADDR_MAX];

		if (k.mv_size != 4 || v.mv_size >= sizeof(addr))
			continue;
		memcpy(addr, v.mv_data, v.mv_size);
		addr[v.mv_size] = 0;
		if (!node_add(m, get_be32(k.mv_data), addr))
			err = -ENOMEM;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

/* ---- heartbeats and the node list ---- */

static int register_node(struct metad *m, const char *addr, uint32_t *id)
{
	MDB_val k = { strlen(addr), (void *)addr }, v;
	uint8_t vb[4];
	uint64_t next;
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	err = db_meta_get(txn, &m->db, "next_node", &next);
	if (!err) {
		*id = (uint32_t)(next ? next : 1);
		put_be32(vb, *id);
		v.mv_size = 4;
		v.mv_data = vb;
		err = db_err(mdb_put(txn, m->db.node_addrs, &k, &v, 0));
	}
	if (!err)
		err = db_err(mdb_put(txn, m->db.nodes, &v, &k, 0));
	if (!err)
		err = db_meta_put(txn, &m->db, "next_node", *id + 1);
	err = txn_end(txn, err);
	if (!err && !node_add(m, *id, addr))
		err = -ENOMEM;
	if (!err)
		log_info("new storage node %" PRIu32 " at %s", *id, addr);
	return err;
}

static struct node *node_by_addr(struct metad *m, const char *addr)
{
	size_t n = node_count(m);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(m->nodes[i].addr, addr))
			return &m->nodes[i];
	return NULL;
}

int do_heartbeat(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply)
{
	char addr[BLOBCR_ADDR_MAX];
	struct node *n = NULL;
	uint64_t cap, used, chunks;
	uint32_t id = 0;
	int err = blobcr_dec_str(req, addr, sizeof(addr));

	cap = blobcr_dec_u64(req);
	used = blobcr_dec_u64(req);
	chunks = blobcr_dec_u64(req);
	err = err ? err : blobcr_dec_end(req);
	if (err)
		return err;
	n = node_by_addr(m, addr);
	if (!n) {
		pthread_mutex_lock(&m->nodes_mu);
		n = node_by_addr(m, addr); /* a racing first heartbeat? */
		if (!n) {
			err = register_node(m, addr, &id);
			n = err ? NULL : node_find(m, id);
		}
		pthread_mutex_unlock(&m->nodes_mu);
		if (err)
			return err;
	}
	if (!node_live(m, n->id))
		log_info("node %" PRIu32 " (%s) is live", n->id, n->addr);
	__atomic_store_n(&n->last_seen, blobcr_now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&n->capacity, cap, __ATOMIC_RELAXED);
	__atomic_store_n(&n->used, used, __ATOMIC_RELAXED);
	__atomic_store_n(&n->chunks, chunks, __ATOMIC_RELAXED);
	blobcr_enc_u32(reply, n->id);
	return reply->err;
}

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
		uint64_t seen = node_last_seen(n), now = blobcr_now_ms();

		blobcr_enc_u32(reply, n->id);
		blobcr_enc_u8(reply, node_live(m, n->id) ? BLOBCR_NODE_LIVE :
							   BLOBCR_NODE_DEAD);
		blobcr_enc_str(reply, n->addr);
		blobcr_enc_u64(reply, seen ? (now > seen ? now - seen : 0) : UINT64_MAX);
		blobcr_enc_u64(reply, __atomic_load_n(&n->capacity, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->used, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->chunks, __ATOMIC_RELAXED));
	}
	return reply->err;
}
