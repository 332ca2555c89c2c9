// SPDX-License-Identifier: GPL-2.0
/*
 * gc.c - garbage collection (metad.h; Documentation/repository.rst,
 * "Garbage collection"): chunks no version needs, copies beyond what R
 * needs and strays (chunks nodes hold that metad never knew, from commits
 * that never published) are deleted from the nodes.  It never fails a
 * commit: the chunks a commit in flight counts on are spared
 * (sessions.c).
 *
 *  1. Mark, in a read transaction: every chunk an extent refers to.
 *  2. Sweep, SWEEP_BATCH chunks per write transaction, under the
 *     sessions' lock: unreferenced chunks nobody wants are forgotten and
 *     go to doomed with their nodes; referenced ones lose their extra
 *     copies to doomed; strays older than the grace period too.
 *  3. Delete what is doomed on the nodes, DELETE_BATCH ids per request
 *     (one index transaction on the node).  A node dead or failing keeps
 *     its deletes in orphans, for the next gc.
 *  4. Clear doomed, a batch per transaction.
 *
 * While a chunk is doomed, a commit that locates it is told to wait; the
 * gc's end makes it plain unknown, and the commit uploads it afresh.  A
 * gc interrupted by a crash has doomed left: the next one (or metad's
 * start) finishes its deletes first.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

#define SWEEP_BATCH 4096 /* chunks looked at per write transaction */

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

/*
 * 1. Mark, in a read transaction: every chunk id an extent of a version
 * refers to.  A version published after this snapshot tells the gc its
 * chunks (sessions.c), which the sweep spares.
 */
static int gc_mark(struct metad *m, struct idset *live)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int err = sessions_gc_mark(m, &txn);

	if (err)
		return err;
	err = db_err(mdb_cursor_open(txn, m->db.extmap, &cur));
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size == 1 + BLOBCR_ID_SIZE &&
		    *(uint8_t *)v.mv_data == BLOBCR_EXT_DATA)
			err = idset_add(live, (uint8_t *)v.mv_data + 1);
	if (!err)
		mdb_cursor_close(cur);
	db_txn_abort(txn);
	if (!err && live->n)
		qsort(live->ids, live->n, BLOBCR_ID_SIZE, cmp_id);
	return err;
}

/*
 * A doomed record: kind u8, then the node ids whose copies go.  Kind
 * DOOM_CHUNK: no version needs the chunk, it is gone from chunks;
 * DOOM_COPIES: extra copies of a chunk that stays; DOOM_STRAY: a chunk
 * metad never knew.
 */
enum { DOOM_CHUNK = 0, DOOM_COPIES = 1, DOOM_STRAY = 2 };

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

/* Test hook (--test-gc-pause): wait while PATH.@stop exists. */
static void test_pause(struct metad *m, const char *stop)
{
	char path[4096];

	if (!m->gc_pause)
		return;
	snprintf(path, sizeof(path), "%s.%s", m->gc_pause, stop);
	if (access(path, F_OK))
		return;
	log_info("gc: paused at %s (test hook)", stop);
	while (!access(path, F_OK))
		usleep(50 * 1000);
}

/* Whether a gc deletes @id on @node already. */
static bool doomed_on(MDB_txn *txn, struct metad *m, const uint8_t *id,
		      uint32_t node)
{
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;

	if (mdb_get(txn, m->db.doomed, &k, &v))
		return false;
	for (size_t off = v.mv_size % 4; off + 4 <= v.mv_size; off += 4)
		if (get_be32((uint8_t *)v.mv_data + off) == node)
			return true;
	return false;
}

/* A restarted metad does not know the commits in flight: it waits. */
static bool grace_over(struct metad *m)
{
	return blobcr_now_ms() - m->started_ms >= m->gc_start_wait_ms;
}

/*
 * Doom every copy of @id, however many locations it has (holders_load()
 * sees MAX_HOLDERS), lost ones too, and forget it.
 */
static int doom_whole(MDB_txn *txn, struct metad *m, const uint8_t *id)
{
	uint32_t raw[64], nodes[64];
	MDB_cursor *cur;
	int n, err = db_err(mdb_cursor_open(txn, m->db.chunks, &cur));

	while (!err && (n = db_chunk_nodes(cur, id, raw, 64)) != 0) {
		if (n < 0) {
			err = n;
			break;
		}
		for (int i = 0; i < n; i++)
			nodes[i] = raw[i] & ~LOC_LOST;
		err = doom_add(txn, m, id, DOOM_CHUNK, nodes, n);
		for (int i = 0; i < n && !err; i++)
			err = db_chunk_del(txn, &m->db, id, raw[i]);
	}
	if (!err)
		mdb_cursor_close(cur);
	return err ? err : db_chunk_forget(txn, &m->db, id);
}

/* Doom chunk @id whole (no version needs it), or its extra copies. */
static int gc_doom_one(MDB_txn *txn, struct metad *m, MDB_cursor *ccur,
		       MDB_cursor *wcur, const uint8_t *id, bool needed,
		       struct blobcr_gc_stats *st)
{
	uint32_t extra[MAX_HOLDERS];
	struct holders h;
	int n, err;

	/* A commit in flight counts on it: neither it nor a copy goes. */
	if (session_wanted_locked(m, id) || (!needed && !grace_over(m))) {
		if (needed)
			st->chunks_kept++;
		else
			st->spared++;
		return 0;
	}
	if (!needed)
		return doom_whole(txn, m, id);
	err = holders_load(m, ccur, wcur, id, 0, &h);
	if (err)
		return err;
	st->chunks_kept++;
	n = holders_extras(m, id, &h, extra);
	err = n ? doom_add(txn, m, id, DOOM_COPIES, extra, n) : 0;
	for (int i = 0; i < n && !err; i++)
		err = db_chunk_del(txn, &m->db, id, extra[i]);
	return err;
}

/*
 * One batch of the sweep, after *@after: SWEEP_BATCH chunks.
 * Return: 1 more to do, 0 done, -errno.
 */
static int gc_sweep_batch(struct metad *m, const struct idset *live,
			  uint8_t *after, bool *has_after,
			  struct blobcr_gc_stats *st)
{
	struct holder_walk w = { 0 };
	MDB_txn *txn = NULL;
	MDB_val k = { BLOBCR_ID_SIZE, after }, v;
	int rc, n = 0, err;

	/* The transaction first: a publish notes its chunks inside its own. */
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	sessions_lock(m);
	err = holder_walk_open(txn, m, m->db.chunks, &w);
	rc = err ? MDB_NOTFOUND :
	     mdb_cursor_get(w.walk, &k, &v, *has_after ? MDB_SET_RANGE : MDB_FIRST);
	if (!rc && *has_after && !memcmp(k.mv_data, after, BLOBCR_ID_SIZE))
		rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
	while (!rc && !err && n < SWEEP_BATCH) {
		uint8_t id[BLOBCR_ID_SIZE];

		if (k.mv_size != BLOBCR_ID_SIZE) {
			rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
			continue;
		}
		memcpy(id, k.mv_data, BLOBCR_ID_SIZE);
		err = gc_doom_one(txn, m, w.chunks, w.writers, id,
				  idset_has(live, id), st);
		memcpy(after, id, BLOBCR_ID_SIZE);
		*has_after = true;
		n++;
		/* Deletes moved the cursor: find the next id afresh. */
		k.mv_size = BLOBCR_ID_SIZE;
		k.mv_data = id;
		rc = mdb_cursor_get(w.walk, &k, &v, MDB_SET_RANGE);
		if (!rc && !memcmp(k.mv_data, id, BLOBCR_ID_SIZE))
			rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
	}
	holder_walk_close(&w);
	/* Committed before a locate may look: it finds the chunk doomed. */
	err = txn_end(txn, err);
	sessions_unlock(m);
	return err ? err : rc == 0;
}

/*
 * 2b. Strays seen in a node's inventory longer ago than the grace period,
 * that no commit counts on and metad still does not know: doomed.
 */
static int gc_strays(struct metad *m, struct blobcr_gc_stats *st)
{
	uint64_t now = blobcr_wall_s() * 1000;
	MDB_cursor *cur;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	int err;

	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	sessions_lock(m);
	err = db_err(mdb_cursor_open(txn, m->db.strays, &cur));
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *id = k.mv_data;
		MDB_val ck = { BLOBCR_ID_SIZE, (void *)id }, cv;
		uint32_t node;

		if (k.mv_size != BLOBCR_ID_SIZE + 4 || v.mv_size != 8) {
			err = db_err(mdb_cursor_del(cur, 0));
			continue;
		}
		node = get_be32((uint8_t *)k.mv_data + BLOBCR_ID_SIZE);
		/* Known since (published): not a stray. */
		if (!mdb_get(txn, m->db.chunks, &ck, &cv)) {
			err = db_err(mdb_cursor_del(cur, 0));
			continue;
		}
		if (doomed_on(txn, m, id, node))
			continue; /* going already; its record goes with it */
		if (session_wanted_locked(m, id) || !grace_over(m) ||
		    now - get_be64(v.mv_data) < m->gc_grace_ms) {
			st->spared++;
			continue;
		}
		err = doom_add(txn, m, id, DOOM_STRAY, &node, 1);
		if (!err)
			err = db_err(mdb_cursor_del(cur, 0));
	}
	err = txn_end(txn, err);
	sessions_unlock(m);
	return err;
}

/*
 * Orphans (deletes that failed before) are doomed again, unless that node
 * holds the chunk for metad again (re-uploaded since).
 */
static int gc_retry_orphans(struct metad *m)
{
	MDB_cursor *cur, *ccur = NULL;
	MDB_txn *txn;
	MDB_val k, v;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	sessions_lock(m);
	err = db_err(mdb_cursor_open(txn, m->db.orphans, &cur));
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	for (int rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     !rc && !err; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
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
		/* A commit in flight may have put it there again: later. */
		if (session_wanted_locked(m, kb))
			continue;
		err = db_err(mdb_cursor_del(cur, 0));
		/* That node holds it for metad again: not garbage any more. */
		if (err || !mdb_cursor_get(ccur, &ck, &cv, MDB_GET_BOTH))
			continue;
		known = !mdb_cursor_get(ccur, &ck, &cv, MDB_SET_KEY);
		err = doom_add(txn, m, kb, known ? DOOM_COPIES : DOOM_CHUNK,
			       &nid, 1);
	}
	err = txn_end(txn, err);
	sessions_unlock(m);
	return err;
}

struct doomed_batch {
	uint8_t (*ids)[BLOBCR_ID_SIZE];
	uint32_t *nodes; /* the node of each entry */
	uint8_t *kinds; /* DOOM_*, each entry */
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
	db_txn_abort(txn);
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

/*
 * 3. Delete @b's chunks held by @node, DELETE_BATCH ids per request; mark
 * in @failed the entries whose delete failed.  @sel and @idx are scratch.
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
		if (node_state(node) != NODE_REMOVED)
			log_warn("gc: node %" PRIu32 ": %s; %zu deletes kept for "
				 "the next gc", node->id, strerror(-derr), chunk);
		st->delete_failures += chunk;
		for (size_t j = off; j < off + chunk; j++)
			failed[idx[j]] = true;
	}
}

/*
 * 4. The deletes that failed go to orphans (a removed node's are
 * dropped: it will not come back to delete anything), then doomed is
 * cleared, a batch per transaction.
 */
static int gc_clear_doomed(struct metad *m, const struct doomed_batch *b,
			   const bool *failed)
{
	size_t i = 0;
	int err = 0;

	while (!err && i < b->n) {
		size_t end = i + DELETE_BATCH < b->n ? i + DELETE_BATCH : b->n;
		MDB_txn *txn;

		err = txn_begin(m, 0, &txn);
		if (err)
			break;
		for (; !err && i < end; i++) {
			MDB_val dk = { BLOBCR_ID_SIZE, b->ids[i] };
			struct node *nd = node_find(m, b->nodes[i]);
			uint8_t kb[BLOBCR_ID_SIZE + 4];
			MDB_val k = { sizeof(kb), kb }, v = { 0, kb };
			int rc;

			memcpy(kb, b->ids[i], BLOBCR_ID_SIZE);
			put_be32(kb + BLOBCR_ID_SIZE, b->nodes[i]);
			if (failed[i] && (!nd || node_state(nd) != NODE_REMOVED))
				err = db_err(mdb_put(txn, m->db.orphans, &k, &v, 0));
			/* Deleted there: no stray any more, whatever it was. */
			rc = err || failed[i] ? 0 : mdb_del(txn, m->db.strays, &k, NULL);
			if (rc && rc != MDB_NOTFOUND)
				err = db_err(rc);
			rc = err ? 0 : mdb_del(txn, m->db.doomed, &dk, NULL);
			if (rc && rc != MDB_NOTFOUND)
				err = db_err(rc);
		}
		err = txn_end(txn, err);
	}
	return err;
}

/* 3 and 4: the deletes of what is doomed, then doomed cleared. */
static int gc_finish(struct metad *m, struct blobcr_gc_stats *st)
{
	struct doomed_batch b = { 0 };
	uint8_t (*sel)[BLOBCR_ID_SIZE] = NULL;
	size_t *idx = NULL, count;
	bool *failed = NULL;
	int err = gc_load_doomed(m, &b);

	if (!err) {
		sel = malloc((b.n ? b.n : 1) * BLOBCR_ID_SIZE);
		idx = malloc((b.n ? b.n : 1) * sizeof(*idx));
		failed = calloc(b.n ? b.n : 1, sizeof(*failed));
		err = sel && idx && failed ? 0 : -ENOMEM;
	}
	if (!err && b.n)
		test_pause(m, "delete");
	count = node_count(m);
	for (size_t ni = 0; !err && ni < count; ni++)
		gc_delete_on_node(m, &m->nodes[ni], &b, sel, idx, failed, st);
	if (!err)
		err = gc_clear_doomed(m, &b, failed);
	/* doomed holds one record per id, loaded as one entry per node */
	for (size_t i = 0; !err && i < b.n; i++) {
		if (b.kinds[i] == DOOM_COPIES)
			st->copies_trimmed++;
		else if (b.kinds[i] == DOOM_STRAY)
			st->strays_deleted++;
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

static int gc_run(struct metad *m, struct blobcr_gc_stats *st)
{
	struct blobcr_gc_stats left = { 0 };
	struct idset live = { 0 };
	uint8_t after[BLOBCR_ID_SIZE];
	bool has_after = false;
	int r, err;

	/* A gc a crash interrupted: its deletes first. */
	err = gc_finish(m, &left);
	if (!err)
		err = gc_retry_orphans(m);
	if (!err) {
		err = gc_mark(m, &live);
		if (!err)
			test_pause(m, "mark");
		while (!err &&
		       (r = gc_sweep_batch(m, &live, after, &has_after, st)) > 0)
			;
		if (!err && r < 0)
			err = r;
		if (!err)
			err = gc_strays(m, st);
		sessions_gc_done(m);
	}
	if (!err && m->gc_delay_ms) {
		log_info("gc: test delay of %d ms", m->gc_delay_ms);
		usleep((useconds_t)m->gc_delay_ms * 1000);
	}
	free(live.ids);
	if (!err)
		err = gc_finish(m, st);
	return err;
}

int do_gc(struct metad *m, struct blobcr_dec *req, struct blobcr_enc *reply)
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
	err = gc_run(m, &st);
	pthread_mutex_unlock(&m->gc_mu);
	if (err) {
		log_err("gc failed: %s", strerror(-err));
		return err;
	}
	log_info("gc: %" PRIu64 " chunks deleted, %" PRIu64 " kept, %" PRIu64
		 " extra copies trimmed, %" PRIu64 " strays deleted, %" PRIu64
		 " spared for commits in flight, %" PRIu64 " node deletes "
		 "deferred", st.chunks_deleted, st.chunks_kept, st.copies_trimmed,
		 st.strays_deleted, st.spared, st.delete_failures);
	if (st.spared && !grace_over(m))
		log_info("gc: metad started %" PRIu64 " s ago: what no version "
			 "needs stays until --gc-start-wait-s (%" PRIu64 " s) is "
			 "over, in case a commit from before the start counts on it",
			 (blobcr_now_ms() - m->started_ms) / 1000,
			 m->gc_start_wait_ms / 1000);
	blobcr_enc_u64(reply, st.chunks_deleted);
	blobcr_enc_u64(reply, st.chunks_kept);
	blobcr_enc_u64(reply, st.delete_failures);
	blobcr_enc_u64(reply, st.copies_trimmed);
	blobcr_enc_u64(reply, st.strays_deleted);
	blobcr_enc_u64(reply, st.spared);
	return reply->err;
}

/* A gc interrupted by a crash is finished before serving. */
int resume_gc(struct metad *m)
{
	struct blobcr_gc_stats st = { 0 };
	MDB_stat ms;
	MDB_txn *txn;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = db_err(mdb_stat(txn, m->db.doomed, &ms));
	db_txn_abort(txn);
	if (err || !ms.ms_entries)
		return err;
	log_warn("finishing the gc a crash interrupted (nodes are not yet "
		 "live: their deletes are deferred to the next gc)");
	return gc_finish(m, &st);
}
