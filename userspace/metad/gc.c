// SPDX-License-Identifier: GPL-2.0
/*
 * gc.c - garbage collection: chunks no version needs are deleted from the
 * nodes (metad.h; Documentation/repository.rst, "Garbage collection").
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

int gc_epoch(MDB_txn *txn, struct metad *m, uint64_t *epoch)
{
	return db_meta_get(txn, &m->db, "gc_epoch", epoch);
}

bool chunk_doomed(MDB_txn *txn, struct metad *m, const uint8_t *id)
{
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;

	return mdb_get(txn, m->db.doomed, &k, &v) == 0;
}

struct idset {
	uint8_t *ids; /* sorted, BLOBCR_ID_SIZE each */
	size_t n, cap;
};

static int idset_add(struct idset *s, const uint8_t *id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint8_t *nv = realloc(s->ids, cap * BLOBCR_ID_SIZE);

		if (!nv)
			return -ENOMEM;
		s->ids = nv;
		s->cap = cap;
	}
	memcpy(s->ids + s->n++ * BLOBCR_ID_SIZE, id, BLOBCR_ID_SIZE);
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, BLOBCR_ID_SIZE);
}

static bool idset_has(const struct idset *s, const uint8_t *id)
{
	return bsearch(id, s->ids, s->n, BLOBCR_ID_SIZE, cmp_id) != NULL;
}

static int gc_mark(MDB_txn *txn, struct metad *m, struct idset *live)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int err = db_err(mdb_cursor_open(txn, m->db.extmap, &cur));

	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size == 1 + BLOBCR_ID_SIZE &&
		    *(uint8_t *)v.mv_data == BLOBCR_EXT_DATA)
			err = idset_add(live, (uint8_t *)v.mv_data + 1);
	if (!err)
		mdb_cursor_close(cur);
	if (!err && live->n)
		qsort(live->ids, live->n, BLOBCR_ID_SIZE, cmp_id);
	return err;
}

/*
 * A doomed record: kind u8, then the node ids whose copies go.  Kind
 * DOOM_CHUNK: no version needs the chunk, it is gone from chunks; kind
 * DOOM_COPIES: extra copies of a chunk that stays.
 */
enum { DOOM_CHUNK = 0, DOOM_COPIES = 1 };

/* Doom @n more copies of @id, merged with what is doomed already. */
static int doom_add(MDB_txn *txn, struct metad *m, const uint8_t *id,
		    uint8_t kind, const uint32_t *nodes, int n)
{
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;
	size_t old = 0, len;
	uint8_t *buf;
	int rc = mdb_get(txn, m->db.doomed, &k, &v), err;

	if (rc && rc != MDB_NOTFOUND)
		return db_err(rc);
	if (!rc && v.mv_size % 4 == 1)
		old = v.mv_size / 4;
	buf = malloc(1 + (old + (size_t)n) * 4);
	if (!buf)
		return -ENOMEM;
	buf[0] = old && ((uint8_t *)v.mv_data)[0] == DOOM_CHUNK ? DOOM_CHUNK : kind;
	if (old)
		memcpy(buf + 1, (uint8_t *)v.mv_data + 1, old * 4);
	len = 1 + old * 4;
	for (int i = 0; i < n; i++) {
		bool dup = false;

		for (size_t j = 1; j < len && !dup; j += 4)
			dup = get_be32(buf + j) == nodes[i];
		if (!dup) {
			put_be32(buf + len, nodes[i]);
			len += 4;
		}
	}
	v.mv_size = len;
	v.mv_data = buf;
	err = db_err(mdb_put(txn, m->db.doomed, &k, &v, 0));
	free(buf);
	return err;
}

/* Doom chunk @id whole (no version needs it), or its extra copies. */
static int gc_doom_one(MDB_txn *txn, struct metad *m, MDB_cursor *ccur,
		       MDB_cursor *wcur, const uint8_t *id, bool needed,
		       uint64_t *kept)
{
	uint32_t extra[MAX_HOLDERS];
	struct holders h;
	int n, err = holders_load(m, ccur, wcur, id, 0, &h);

	if (err)
		return err;
	if (!needed) {
		err = doom_add(txn, m, id, DOOM_CHUNK, h.nodes, h.n);
		return err ? err : db_chunk_forget(txn, &m->db, id);
	}
	(*kept)++;
	n = holders_extras(m, id, &h, extra);
	err = n ? doom_add(txn, m, id, DOOM_COPIES, extra, n) : 0;
	for (int i = 0; i < n && !err; i++)
		err = db_chunk_del(txn, &m->db, id, extra[i]);
	return err;
}

/* Move every unreferenced chunk, and every extra copy, to doomed. */
static int gc_doom(MDB_txn *txn, struct metad *m, const struct idset *live,
		   uint64_t *kept)
{
	struct holder_walk w;
	MDB_val k, v;
	int rc, err = holder_walk_open(txn, m, m->db.chunks, &w);

	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(w.walk, &k, &v, MDB_FIRST);
	     !rc && !err;) {
		uint8_t id[BLOBCR_ID_SIZE];

		if (k.mv_size != BLOBCR_ID_SIZE) {
			rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
			continue;
		}
		memcpy(id, k.mv_data, BLOBCR_ID_SIZE);
		err = gc_doom_one(txn, m, w.chunks, w.writers, id,
				  idset_has(live, id), kept);
		/* Deletes moved the cursor: find the next id afresh. */
		k.mv_size = BLOBCR_ID_SIZE;
		k.mv_data = id;
		rc = mdb_cursor_get(w.walk, &k, &v, MDB_SET_RANGE);
		if (!rc && !memcmp(k.mv_data, id, BLOBCR_ID_SIZE))
			rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
	}
	holder_walk_close(&w);
	return err;
}

/*
 * Orphans (deletes that failed before) are doomed again, unless that node
 * holds the chunk for metad again (re-uploaded since).
 */
static int gc_retry_orphans(MDB_txn *txn, struct metad *m)
{
	MDB_cursor *cur, *ccur = NULL;
	MDB_val k, v;
	int err = db_err(mdb_cursor_open(txn, m->db.orphans, &cur));

	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
		uint8_t kb[BLOBCR_ID_SIZE + 4], node[4];
		MDB_val ck = { BLOBCR_ID_SIZE, kb }, cv = { 4, node };
		bool known;
		uint32_t nid;

		if (k.mv_size != sizeof(kb)) {
			err = db_err(mdb_cursor_del(cur, 0));
			continue;
		}
		memcpy(kb, k.mv_data, sizeof(kb));
		memcpy(node, kb + BLOBCR_ID_SIZE, 4);
		nid = get_be32(node);
		err = db_err(mdb_cursor_del(cur, 0));
		/* That node holds it for metad again: not garbage any more. */
		if (err || !mdb_cursor_get(ccur, &ck, &cv, MDB_GET_BOTH))
			continue;
		known = !mdb_cursor_get(ccur, &ck, &cv, MDB_SET_KEY);
		err = doom_add(txn, m, kb, known ? DOOM_COPIES : DOOM_CHUNK,
			       &nid, 1);
	}
	if (ccur)
		mdb_cursor_close(ccur);
	mdb_cursor_close(cur);
	return err;
}

/* Phase 1, one transaction: epoch becomes odd, garbage becomes doomed. */
static int gc_begin(struct metad *m, uint64_t *kept)
{
	struct idset live = { 0 };
	uint64_t epoch;
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	err = gc_epoch(txn, m, &epoch);
	if (!err && !(epoch & 1)) {
		err = gc_mark(txn, m, &live);
		if (!err)
			err = gc_retry_orphans(txn, m);
		if (!err)
			err = gc_doom(txn, m, &live, kept);
		if (!err)
			err = db_meta_put(txn, &m->db, "gc_epoch", epoch + 1);
	}
	free(live.ids);
	return txn_end(txn, err);
}

struct doomed_batch {
	uint8_t (*ids)[BLOBCR_ID_SIZE];
	uint32_t *nodes; /* the node of each entry */
	uint8_t *kinds; /* DOOM_CHUNK or DOOM_COPIES, each entry */
	size_t n;
};

/* Room for @cap entries; on failure @b keeps what it had (freed later). */
static int doomed_grow(struct doomed_batch *b, size_t cap)
{
	void *ids = realloc(b->ids, cap * BLOBCR_ID_SIZE);

	if (!ids)
		return -ENOMEM;
	b->ids = ids;
	ids = realloc(b->nodes, cap * sizeof(*b->nodes));
	if (!ids)
		return -ENOMEM;
	b->nodes = ids;
	ids = realloc(b->kinds, cap);
	if (!ids)
		return -ENOMEM;
	b->kinds = ids;
	return 0;
}

static int gc_load_doomed(struct metad *m, struct doomed_batch *b)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	size_t cap = 0;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = db_err(mdb_cursor_open(txn, m->db.doomed, &cur));
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		/* A record of an older metad has no kind: its chunk went whole. */
		size_t first = v.mv_size % 4 == 1;
		uint8_t kind = first ? *(uint8_t *)v.mv_data : DOOM_CHUNK;

		for (size_t off = first; off + 4 <= v.mv_size && !err; off += 4) {
			if (b->n == cap) {
				err = doomed_grow(b, cap ? cap * 2 : 1024);
				if (err)
					break;
				cap = cap ? cap * 2 : 1024;
			}
			memcpy(b->ids[b->n], k.mv_data, BLOBCR_ID_SIZE);
			b->kinds[b->n] = kind;
			b->nodes[b->n++] = get_be32((uint8_t *)v.mv_data + off);
		}
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

/* Send DELETE for @n ids to @node, as metad.  Return: 0 or -errno. */
static int node_delete(struct metad *m, struct node *node,
		       uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 4 + n * BLOBCR_ID_SIZE);

	if (err)
		return err;
	blobcr_enc_u32(&e, (uint32_t)n);
	blobcr_enc_bytes(&e, ids, n * BLOBCR_ID_SIZE);
	err = node_call(m, node, BLOBCR_OP_DELETE, &e, &msg, &d);
	if (msg)
		nn_freemsg(msg);
	blobcr_enc_free(&e);
	return err;
}

/* Record the deletes that failed, for the next gc to retry. */
static int gc_record_orphans(MDB_txn *txn, struct metad *m,
			     const struct doomed_batch *b, const bool *failed)
{
	int err = 0;

	for (size_t i = 0; i < b->n && !err; i++) {
		uint8_t kb[BLOBCR_ID_SIZE + 4];
		MDB_val k = { sizeof(kb), kb }, v = { 0, kb };

		struct node *nd = node_find(m, b->nodes[i]);

		/* A removed node will not come back to delete anything. */
		if (!failed[i] || (nd && node_state(nd) == NODE_REMOVED))
			continue;
		memcpy(kb, b->ids[i], BLOBCR_ID_SIZE);
		put_be32(kb + BLOBCR_ID_SIZE, b->nodes[i]);
		err = db_err(mdb_put(txn, m->db.orphans, &k, &v, 0));
	}
	return err;
}

/*
 * Delete @b's chunks held by @node, DELETE_BATCH ids per request; mark in
 * @failed the entries whose delete failed.  @sel and @idx are scratch.
 */
static void gc_delete_on_node(struct metad *m, struct node *node,
			      const struct doomed_batch *b,
			      uint8_t (*sel)[BLOBCR_ID_SIZE], size_t *idx,
			      bool *failed, struct blobcr_gc_stats *st)
{
	size_t cnt = 0, chunk;

	for (size_t i = 0; i < b->n; i++) {
		if (b->nodes[i] != node->id)
			continue;
		memcpy(sel[cnt], b->ids[i], BLOBCR_ID_SIZE);
		idx[cnt++] = i;
	}
	for (size_t off = 0; off < cnt; off += chunk) {
		int derr;

		chunk = cnt - off < DELETE_BATCH ? cnt - off : DELETE_BATCH;
		derr = node_live(m, node->id) ?
			node_delete(m, node, sel + off, chunk) : -EHOSTDOWN;
		if (!derr)
			continue;
		log_warn("gc: node %" PRIu32 " (%s): %s; %zu deletes kept for the next gc",
			 node->id, node->addr, strerror(-derr), chunk);
		st->delete_failures += chunk;
		for (size_t j = off; j < off + chunk; j++)
			failed[idx[j]] = true;
	}
}

/*
 * Phase 2, outside any write transaction (publishes and other writes go
 * on, refused only if they overlap the gc): delete doomed chunks on their
 * nodes, node by node.  Phase 3, one transaction: what failed (node dead or
 * unreachable) goes to orphans for the next gc, doomed is emptied and the
 * epoch becomes even again.
 */
static int gc_finish(struct metad *m, struct blobcr_gc_stats *st)
{
	struct doomed_batch b = { 0 };
	uint8_t (*sel)[BLOBCR_ID_SIZE] = NULL;
	size_t *idx = NULL, count;
	bool *failed = NULL;
	MDB_txn *txn;
	uint64_t epoch;
	int err = gc_load_doomed(m, &b);

	if (!err) {
		sel = malloc((b.n ? b.n : 1) * BLOBCR_ID_SIZE);
		idx = malloc((b.n ? b.n : 1) * sizeof(*idx));
		failed = calloc(b.n ? b.n : 1, sizeof(*failed));
		err = sel && idx && failed ? 0 : -ENOMEM;
	}
	count = node_count(m);
	for (size_t ni = 0; !err && ni < count; ni++)
		gc_delete_on_node(m, &m->nodes[ni], &b, sel, idx, failed, st);
	if (!err)
		err = txn_begin(m, 0, &txn);
	if (!err) {
		err = gc_record_orphans(txn, m, &b, failed);
		if (!err)
			err = db_err(mdb_drop(txn, m->db.doomed, 0));
		if (!err)
			err = gc_epoch(txn, m, &epoch);
		if (!err)
			err = db_meta_put(txn, &m->db, "gc_epoch", (epoch | 1) + 1);
		err = txn_end(txn, err);
	}
	/* doomed holds one record per id, loaded as one entry per node */
	for (size_t i = 0; !err && i < b.n; i++) {
		if (b.kinds[i] == DOOM_COPIES)
			st->copies_trimmed++;
		else if (!i || memcmp(b.ids[i], b.ids[i - 1], BLOBCR_ID_SIZE))
			st->chunks_deleted++;
	}
	free(sel);
	free(idx);
	free(failed);
	free(b.ids);
	free(b.nodes);
	free(b.kinds);
	return err;
}

int do_gc(struct metad *m, struct blobcr_dec *req,
	  struct blobcr_enc *reply)
{
	struct blobcr_gc_stats st = { 0 };
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	/*
	 * A second gc would delete what the first one's commits re-upload;
	 * waiting for the first would hold a worker: refuse it at once.
	 */
	if (pthread_mutex_trylock(&m->gc_mu)) {
		log_info("gc refused: one is running");
		return -EALREADY;
	}
	err = gc_begin(m, &st.chunks_kept);
	if (!err && m->gc_delay_ms) {
		log_info("gc: test delay of %d ms", m->gc_delay_ms);
		usleep((useconds_t)m->gc_delay_ms * 1000);
	}
	if (!err)
		err = gc_finish(m, &st);
	pthread_mutex_unlock(&m->gc_mu);
	if (err) {
		log_err("gc failed: %s", strerror(-err));
		return err;
	}
	log_info("gc: %" PRIu64 " chunks deleted, %" PRIu64 " kept, %" PRIu64
		 " extra copies trimmed, %" PRIu64 " node deletes deferred",
		 st.chunks_deleted, st.chunks_kept, st.copies_trimmed,
		 st.delete_failures);
	blobcr_enc_u64(reply, st.chunks_deleted);
	blobcr_enc_u64(reply, st.chunks_kept);
	blobcr_enc_u64(reply, st.delete_failures);
	blobcr_enc_u64(reply, st.copies_trimmed);
	return reply->err;
}

/* A gc interrupted by a crash is finished before serving. */
int resume_gc(struct metad *m)
{
	struct blobcr_gc_stats st = { 0 };
	uint64_t epoch;
	MDB_txn *txn;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = gc_epoch(txn, m, &epoch);
	mdb_txn_abort(txn);
	if (err || !(epoch & 1))
		return err;
	log_warn("finishing the gc a crash interrupted (nodes are not yet "
		 "live: their deletes are deferred to the next gc)");
	return gc_finish(m, &st);
}
