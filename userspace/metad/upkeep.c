// SPDX-License-Identifier: GPL-2.0
/*
 * upkeep.c - the upkeep thread of blobcr-metad (metad.h): keeps chunk
 * locations true to what the nodes hold.
 *
 *  - Suspected copies (a client read them bad) are asked to their node
 *    with VERIFY; only the node's own "bad" or "missing" drops them.
 *  - Removed nodes' locations are forgotten, a batch per transaction.
 *  - A node that (re)joins, and every node every --reconcile-interval-s,
 *    is compared with its INVENTORY: a location the node lacks is dropped
 *    once a HAS confirms it; a copy metad had forgotten is recorded again.
 *  - Manifests left pending (manifests.c) are written to the nodes, and
 *    those with fewer than R live holders copied to more.
 *
 * Every drop keeps a chunk's last location (locations.c) and asks for
 * re-replication, which restores R from the good copies.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

#define VERIFY_BATCH 1024 /* suspects asked at once */
#define FORGET_BATCH 4096 /* locations of a removed node per transaction */
#define INVENTORY_PAGE 65536
#define KEEP_MS 10000 /* between checks of the manifests' holders */

typedef uint8_t chunk_id[BLOBCR_ID_SIZE];

void upkeep_kick(struct metad *m)
{
	pthread_mutex_lock(&m->upkeep_mu);
	m->upkeep_kick = true;
	pthread_cond_signal(&m->upkeep_cv);
	pthread_mutex_unlock(&m->upkeep_mu);
}

/* Sleep @ms or until kicked. */
static void upkeep_wait(struct metad *m, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->upkeep_mu);
	if (!m->upkeep_kick)
		pthread_cond_timedwait(&m->upkeep_cv, &m->upkeep_mu, &ts);
	m->upkeep_kick = false;
	pthread_mutex_unlock(&m->upkeep_mu);
}

/* Send @n @ids to @node as @op (VERIFY or HAS); the reply's count is checked. */
static int ids_call(struct metad *m, const struct node *node, uint8_t op,
		    const chunk_id *ids, size_t n, void **msg,
		    struct blobcr_dec *d)
{
	struct blobcr_enc e;
	int err = blobcr_enc_init(&e, 4 + n * BLOBCR_ID_SIZE);

	*msg = NULL;
	if (err)
		return err;
	blobcr_enc_u32(&e, (uint32_t)n);
	blobcr_enc_bytes(&e, ids, n * BLOBCR_ID_SIZE);
	err = node_call(m, node, op, &e, msg, d);
	blobcr_enc_free(&e);
	if (!err && blobcr_dec_u32(d) != n)
		err = -EBADMSG;
	return err;
}

/* ---- suspected copies ---- */

/* Ask @node about @n suspected @ids; drop those it says are bad. */
static void verify_on_node(struct metad *m, const struct node *node,
			   chunk_id *ids, size_t n)
{
	chunk_id *bad = calloc(n ? n : 1, sizeof(*bad));
	size_t nbad = 0, good = 0, dropped = 0;
	struct blobcr_dec d;
	MDB_txn *txn = NULL;
	void *msg;
	int err = bad ? ids_call(m, node, BLOBCR_OP_VERIFY, ids, n, &msg, &d) :
			-ENOMEM;

	for (size_t i = 0; !err && i < n; i++) {
		int32_t st = (int32_t)blobcr_dec_u32(&d);

		if (d.err)
			err = d.err;
		else if (st == -ENOENT || st == -EUCLEAN)
			memcpy(bad[nbad++], ids[i], BLOBCR_ID_SIZE);
		else if (st == 0)
			good++;
	}
	if (msg)
		nn_freemsg(msg);
	if (!err && good)
		err = txn_begin(m, 0, &txn);
	/* The node read them back whole: the client was wrong. */
	for (size_t i = 0; txn && !err && i < n; i++) {
		bool is_bad = false;

		for (size_t j = 0; j < nbad && !is_bad; j++)
			is_bad = !memcmp(bad[j], ids[i], BLOBCR_ID_SIZE);
		if (!is_bad)
			err = suspect_clear(txn, m, ids[i], node->id);
	}
	if (txn)
		err = txn_end(txn, err);
	if (!err && nbad)
		err = locations_confirmed_bad(m, node->id,
					      (const chunk_id *)bad, nbad, &dropped);
	if (err)
		log_warn("checking %zu suspected copies on node %" PRIu32 ": %s",
			 n, node->id, strerror(-err));
	else
		log_info("node %" PRIu32 " checked %zu suspected copies: %zu good, "
			 "%zu bad or missing (%zu dropped)", node->id, n, good,
			 nbad, dropped);
	free(bad);
}

/* One batch of suspects, node by node; those of dead nodes wait. */
static void verify_suspects(struct metad *m)
{
	chunk_id *ids = calloc(VERIFY_BATCH, sizeof(*ids));
	uint32_t *nodes = calloc(VERIFY_BATCH, sizeof(*nodes));
	size_t n = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;

	if (!ids || !nodes || txn_begin(m, MDB_RDONLY, &txn))
		goto out;
	if (!mdb_cursor_open(txn, m->db.suspects, &cur)) {
		while (n < VERIFY_BATCH && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != BLOBCR_ID_SIZE + 4)
				continue;
			memcpy(ids[n], k.mv_data, BLOBCR_ID_SIZE);
			nodes[n++] = get_be32((uint8_t *)k.mv_data + BLOBCR_ID_SIZE);
		}
		mdb_cursor_close(cur);
	}
	db_txn_abort(txn);
	/* Gather each node's suspects in front, ask, go on with the rest. */
	for (size_t done = 0; done < n;) {
		uint32_t node = nodes[done];
		struct node *nd = node_find(m, node);
		size_t cnt = done;

		for (size_t i = done; i < n; i++) {
			chunk_id t;

			if (nodes[i] != node)
				continue;
			memcpy(t, ids[cnt], BLOBCR_ID_SIZE);
			memcpy(ids[cnt], ids[i], BLOBCR_ID_SIZE);
			memcpy(ids[i], t, BLOBCR_ID_SIZE);
			nodes[i] = nodes[cnt];
			nodes[cnt++] = node;
		}
		if (nd && node_live(m, node))
			verify_on_node(m, nd, ids + done, cnt - done);
		done = cnt;
	}
out:
	free(ids);
	free(nodes);
}

/* ---- removed nodes ---- */

/*
 * Forget one batch of a removed node's locations, after @after.
 * Return: how many were looked at (0: none left), or -errno.
 */
static int forget_batch(struct metad *m, uint32_t node, chunk_id after,
			bool *has_after, size_t *kept)
{
	uint8_t kb[4 + BLOBCR_ID_SIZE];
	MDB_val k = { sizeof(kb), kb }, v;
	chunk_id *ids = calloc(FORGET_BATCH, sizeof(*ids));
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, n = 0, err = ids ? txn_begin(m, 0, &txn) : -ENOMEM;

	if (err) {
		free(ids);
		return err;
	}
	put_be32(kb, node);
	memcpy(kb + 4, after, BLOBCR_ID_SIZE);
	err = db_err(mdb_cursor_open(txn, m->db.node_chunks, &cur));
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && n < FORGET_BATCH && k.mv_size == sizeof(kb) &&
	     get_be32(k.mv_data) == node;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (*has_after && !memcmp((uint8_t *)k.mv_data + 4, after,
					  BLOBCR_ID_SIZE))
			continue;
		memcpy(ids[n++], (uint8_t *)k.mv_data + 4, BLOBCR_ID_SIZE);
	}
	if (!err)
		mdb_cursor_close(cur);
	for (int i = 0; i < n && !err; i++) {
		int r = location_drop(txn, m, ids[i], node);

		*kept += r == -EBUSY;
		if (r && r != -EBUSY && r != -ENOENT)
			err = r;
	}
	err = txn_end(txn, err);
	if (!err && n) {
		memcpy(after, ids[n - 1], BLOBCR_ID_SIZE);
		*has_after = true;
	}
	free(ids);
	return err ? err : n;
}

static void forget_removed(struct metad *m, bool *forgotten)
{
	size_t count = node_count(m);

	for (size_t i = 0; i < count && i < MAX_NODES; i++) {
		struct node *nd = &m->nodes[i];
		chunk_id after = { 0 };
		bool has_after = false;
		size_t kept = 0, total = 0;
		int r;

		if (forgotten[i] || node_state(nd) != NODE_REMOVED)
			continue;
		while ((r = forget_batch(m, nd->id, after, &has_after, &kept)) > 0 &&
		       !blobcr_stopping(&m->stop))
			total += (size_t)r;
		if (r < 0) {
			log_warn("forgetting removed node %" PRIu32 "'s copies: %s",
				 nd->id, strerror(-r));
			continue;
		}
		if (blobcr_stopping(&m->stop))
			return;
		forgotten[i] = true;
		if (total)
			log_info("removed node %" PRIu32 ": %zu locations forgotten, "
				 "%zu kept as the last of their chunk", nd->id,
				 total - kept, kept);
	}
}

/* ---- reconciliation with a node's inventory ---- */

struct idlist {
	chunk_id *ids;
	size_t n;
};

/*
 * metad's locations on @node with ids in (@after, @hi] (NULL: no bound),
 * at most @cap: *@truncated if more follow.
 */
static int metad_ids(struct metad *m, uint32_t node, const uint8_t *after,
		     const uint8_t *hi, struct idlist *out, size_t cap,
		     bool *truncated)
{
	uint8_t kb[4 + BLOBCR_ID_SIZE] = { 0 };
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, err = txn_begin(m, MDB_RDONLY, &txn);

	out->n = 0;
	*truncated = false;
	if (err)
		return err;
	put_be32(kb, node);
	if (after)
		memcpy(kb + 4, after, BLOBCR_ID_SIZE);
	err = db_err(mdb_cursor_open(txn, m->db.node_chunks, &cur));
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && k.mv_size == sizeof(kb) && get_be32(k.mv_data) == node;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *id = (uint8_t *)k.mv_data + 4;

		if (after && !memcmp(id, after, BLOBCR_ID_SIZE))
			continue;
		if (hi && memcmp(id, hi, BLOBCR_ID_SIZE) > 0)
			break;
		if (out->n == cap) {
			*truncated = true;
			break;
		}
		memcpy(out->ids[out->n++], id, BLOBCR_ID_SIZE);
	}
	if (!err)
		mdb_cursor_close(cur);
	db_txn_abort(txn);
	return err;
}

/* One page of @node's inventory, after @after (NULL: from the first). */
static int inventory_page(struct metad *m, const struct node *node,
			  const uint8_t *after, struct idlist *out, bool *more)
{
	static const uint8_t zero[BLOBCR_ID_SIZE];
	struct blobcr_enc e;
	struct blobcr_dec d;
	uint32_t n;
	void *msg;
	int err = blobcr_enc_init(&e, 64);

	if (err)
		return err;
	blobcr_enc_u8(&e, after != NULL);
	blobcr_enc_bytes(&e, after ? after : zero, BLOBCR_ID_SIZE);
	blobcr_enc_u32(&e, INVENTORY_PAGE);
	err = node_call(m, node, BLOBCR_OP_INVENTORY, &e, &msg, &d);
	blobcr_enc_free(&e);
	n = err ? 0 : blobcr_dec_u32(&d);
	if (!err && (d.err || n > INVENTORY_PAGE ||
		     d.left != (size_t)n * BLOBCR_ID_SIZE + 1))
		err = -EBADMSG;
	if (!err) {
		memcpy(out->ids, blobcr_dec_bytes(&d, (size_t)n * BLOBCR_ID_SIZE),
		       (size_t)n * BLOBCR_ID_SIZE);
		out->n = n;
		*more = blobcr_dec_u8(&d);
	}
	if (msg)
		nn_freemsg(msg);
	return err;
}

/*
 * Record again the copies @node holds of chunks metad knows elsewhere;
 * the chunks metad does not know at all are strays (a commit that never
 * published, or one still uploading), collected by gc after the grace
 * period unless they become known.
 */
static int readd_locations(struct metad *m, uint32_t node,
			   const struct idlist *extra, size_t *readded,
			   size_t *unknown)
{
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	for (size_t i = 0; i < extra->n && !err; i++) {
		MDB_val k = { BLOBCR_ID_SIZE, extra->ids[i] }, v;
		int r;

		if (chunk_doomed(txn, m, extra->ids[i]))
			continue; /* a gc is deleting it */
		/* Checked in this transaction: a gc may have just taken it. */
		if (mdb_get(txn, m->db.chunks, &k, &v)) {
			uint8_t kb[BLOBCR_ID_SIZE + 4], vb[8];
			MDB_val sk = { sizeof(kb), kb }, sv = { 8, vb };

			memcpy(kb, extra->ids[i], BLOBCR_ID_SIZE);
			put_be32(kb + BLOBCR_ID_SIZE, node);
			put_be64(vb, blobcr_wall_s() * 1000);
			r = mdb_put(txn, m->db.strays, &sk, &sv, MDB_NOOVERWRITE);
			if (r && r != MDB_KEYEXIST)
				err = db_err(r);
			(*unknown)++;
			continue;
		}
		r = db_chunk_add(txn, &m->db, extra->ids[i], node);
		if (r < 0)
			err = r;
		else
			*readded += (size_t)r;
	}
	return txn_end(txn, err);
}

/*
 * Keep, of @ids, those @node still says it has (@keep_held) or lacks, asked
 * with HAS: an inventory page is already old when it is compared.
 */
static int confirm_with_node(struct metad *m, const struct node *node,
			     struct idlist *ids, bool keep_held)
{
	struct blobcr_dec d;
	size_t k = 0;
	void *msg = NULL;
	int err = ids->n ? ids_call(m, node, BLOBCR_OP_HAS,
				    (const chunk_id *)ids->ids, ids->n, &msg,
				    &d) : 0;

	for (size_t i = 0; !err && i < ids->n; i++) {
		uint8_t has = blobcr_dec_u8(&d);

		if (d.err)
			err = d.err;
		else if (!has != keep_held)
			memmove(ids->ids[k++], ids->ids[i], BLOBCR_ID_SIZE);
	}
	if (msg)
		nn_freemsg(msg);
	if (!err)
		ids->n = k;
	return err;
}

/*
 * Compare metad's locations on @node with the node's inventory, page by
 * page in id order.  Return: 0 or -errno.
 */
static int reconcile_node(struct metad *m, const struct node *node)
{
	struct idlist inv = { calloc(INVENTORY_PAGE, sizeof(chunk_id)), 0 };
	struct idlist mine = { calloc(INVENTORY_PAGE, sizeof(chunk_id)), 0 };
	struct idlist missing = { calloc(INVENTORY_PAGE, sizeof(chunk_id)), 0 };
	struct idlist extra = { calloc(INVENTORY_PAGE, sizeof(chunk_id)), 0 };
	size_t nmissing = 0, dropped = 0, readded = 0, unknown = 0;
	chunk_id after;
	bool has_after = false, more = true;
	int err = inv.ids && mine.ids && missing.ids && extra.ids ? 0 : -ENOMEM;

	while (!err && more && !blobcr_stopping(&m->stop)) {
		const uint8_t *bound;
		bool truncated;
		size_t i = 0, j = 0, d = 0;

		err = inventory_page(m, node, has_after ? after : NULL, &inv, &more);
		if (!err)
			err = metad_ids(m, node->id, has_after ? after : NULL,
					more && inv.n ? inv.ids[inv.n - 1] : NULL,
					&mine, INVENTORY_PAGE, &truncated);
		if (err)
			break;
		/* Compare up to the smaller of the two pages' last ids. */
		bound = truncated ? mine.ids[mine.n - 1] :
			more && inv.n ? inv.ids[inv.n - 1] : NULL;
		missing.n = extra.n = 0;
		while (i < inv.n || j < mine.n) {
			int c = i == inv.n ? 1 : j == mine.n ? -1 :
				memcmp(inv.ids[i], mine.ids[j], BLOBCR_ID_SIZE);
			const uint8_t *id = c < 0 ? inv.ids[i] : mine.ids[j];

			if (bound && memcmp(id, bound, BLOBCR_ID_SIZE) > 0)
				break;
			if (c < 0)
				memcpy(extra.ids[extra.n++], inv.ids[i++], BLOBCR_ID_SIZE);
			else if (c > 0)
				memcpy(missing.ids[missing.n++], mine.ids[j++],
				       BLOBCR_ID_SIZE);
			else
				i++, j++;
		}
		if (bound) {
			memcpy(after, bound, BLOBCR_ID_SIZE);
			has_after = true;
		}
		more = bound != NULL;
		err = confirm_with_node(m, node, &missing, false);
		if (!err && missing.n)
			err = locations_confirmed_bad(m, node->id,
						      (const chunk_id *)missing.ids,
						      missing.n, &d);
		nmissing += missing.n;
		dropped += d;
		/* A copy listed then dropped as bad must not come back. */
		if (!err && extra.n)
			err = confirm_with_node(m, node, &extra, true);
		if (!err && extra.n)
			err = readd_locations(m, node->id, &extra, &readded,
					      &unknown);
	}
	if (err)
		log_warn("inventory of node %" PRIu32 ": %s", node->id,
			 strerror(-err));
	else if (nmissing || readded || unknown)
		log_warn("inventory of node %" PRIu32 ": %zu copies missing (%zu "
			 "dropped), %zu copies recorded again, %zu strays (chunks "
			 "no version knows)", node->id, nmissing, dropped, readded,
			 unknown);
	free(inv.ids);
	free(mine.ids);
	free(missing.ids);
	free(extra.ids);
	return err;
}

static void reconcile_nodes(struct metad *m)
{
	size_t count = node_count(m);

	for (size_t i = 0; i < count && !blobcr_stopping(&m->stop); i++) {
		struct node *nd = &m->nodes[i];

		if (!__atomic_load_n(&nd->reconcile, __ATOMIC_RELAXED) ||
		    !node_live(m, nd->id))
			continue;
		__atomic_store_n(&nd->reconcile, false, __ATOMIC_RELAXED);
		if (reconcile_node(m, nd))
			__atomic_store_n(&nd->reconcile, true, __ATOMIC_RELAXED);
	}
}

/* Which nodes are live, as one number: it changes when one dies or joins. */
static uint64_t live_nodes(struct metad *m)
{
	size_t count = node_count(m);
	uint64_t h = count;

	for (size_t i = 0; i < count; i++)
		if (node_live(m, m->nodes[i].id))
			h = h * 1000003 + m->nodes[i].id;
	return h;
}

static void *upkeep_thread(void *p)
{
	struct metad *m = p;
	uint64_t next = blobcr_now_ms() + (uint64_t)m->reconcile_s * 1000;
	bool *forgotten = calloc(MAX_NODES, sizeof(*forgotten));
	uint64_t kept = 0, next_keep = 0, live, last_live = 0;

	while (forgotten && !blobcr_stopping(&m->stop)) {
		size_t left;

		upkeep_wait(m, 1000);
		if (blobcr_stopping(&m->stop))
			break;
		if (__atomic_load_n(&m->rebuilding, __ATOMIC_ACQUIRE))
			continue;
		if (manifests_flush(m, &left) && left)
			log_warn("%zu manifests not written to the nodes yet", left);
		/* Manifests lose holders too: when copies may be missing or
		 * a node died, and now and then. */
		live = live_nodes(m);
		if (kept != __atomic_load_n(&m->repair_events, __ATOMIC_RELAXED) ||
		    live != last_live || blobcr_now_ms() >= next_keep) {
			kept = __atomic_load_n(&m->repair_events, __ATOMIC_RELAXED);
			last_live = live;
			next_keep = blobcr_now_ms() + KEEP_MS;
			manifests_keep(m);
		}
		verify_suspects(m);
		forget_removed(m, forgotten);
		if (m->reconcile_s && blobcr_now_ms() >= next) {
			for (size_t i = 0; i < node_count(m); i++)
				__atomic_store_n(&m->nodes[i].reconcile, true,
						 __ATOMIC_RELAXED);
			next = blobcr_now_ms() + (uint64_t)m->reconcile_s * 1000;
		}
		reconcile_nodes(m);
	}
	free(forgotten);
	return NULL;
}

int upkeep_start(struct metad *m, pthread_t *tid)
{
	return -pthread_create(tid, NULL, upkeep_thread, m);
}
