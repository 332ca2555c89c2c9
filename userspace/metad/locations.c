// SPDX-License-Identifier: GPL-2.0
/*
 * locations.c - chunk locations' upkeep (metad.h): copies added by a
 * repair, copies reported bad (by a client: suspected until the node
 * confirms; by the node itself: dropped), the under-replicated chunks
 * listed.  A chunk's last location is never dropped but marked LOC_LOST:
 * a chunk whose every copy is gone stays visible, as lost, rather than
 * vanish.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

int location_drop(MDB_txn *txn, struct metad *m, const uint8_t *id,
		  uint32_t node)
{
	uint32_t nodes[MAX_HOLDERS];
	bool here = false;
	MDB_cursor *cur;
	int n, err = db_err(mdb_cursor_open(txn, m->db.chunks, &cur));

	if (err)
		return err;
	n = db_chunk_nodes(cur, id, nodes, MAX_HOLDERS);
	mdb_cursor_close(cur);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		here |= nodes[i] == node;
	if (!here)
		return -ENOENT;
	if (n == 1) {
		char hex[65];

		blobcr_id_hex(id, hex);
		log_err("chunk %s: its last copy, on node %" PRIu32 ", is bad or "
			"missing; location kept, the chunk is lost unless that "
			"copy comes back", hex, node);
		err = db_chunk_mark_lost(txn, &m->db, id, node);
		if (!err)
			repair_wanted(m);
		return err ? err : -EBUSY;
	}
	err = db_chunk_del(txn, &m->db, id, node);
	if (!err)
		repair_wanted(m);
	return err;
}

int do_chunk_add_locations(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply)
{
	uint32_t n = blobcr_dec_u32(req), added = 0;
	MDB_txn *txn;
	int err;

	if (req->err || n > MAX_BATCH || req->left != (size_t)n * 36)
		return -EBADMSG;
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	for (uint32_t i = 0; i < n && !err; i++) {
		const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
		uint32_t node = blobcr_dec_u32(req);
		MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;
		struct node *nd = node_find(m, node);
		int r;

		if (!nd || node_state(nd) == NODE_REMOVED) {
			err = -EINVAL;
			break;
		}
		/* Only chunks still known and not being collected. */
		if (mdb_get(txn, m->db.chunks, &k, &v) || chunk_doomed(txn, m, id))
			continue;
		r = db_chunk_add(txn, &m->db, id, node);
		if (r < 0)
			err = r;
		else
			added += (uint32_t)r;
	}
	err = txn_end(txn, err);
	if (err)
		return err;
	blobcr_enc_u32(reply, added);
	return reply->err;
}

static void suspect_key(uint8_t k[BLOBCR_ID_SIZE + 4], const uint8_t *id,
			uint32_t node)
{
	memcpy(k, id, BLOBCR_ID_SIZE);
	put_be32(k + BLOBCR_ID_SIZE, node);
}

/*
 * A client read a bad copy (or none) of @id from @node.  One client's word
 * is not enough to forget a copy (the fault may be the client's, or its
 * network's): the copy is suspected until the node itself is asked
 * (upkeep.c).
 */
int do_chunk_suspect(struct metad *m, struct blobcr_dec *req)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t node = blobcr_dec_u32(req);
	uint8_t kb[BLOBCR_ID_SIZE + 4], vb[8];
	MDB_val k = { sizeof(kb), kb }, v = { 8, vb };
	char hex[65];
	MDB_txn *txn;
	int err = blobcr_dec_end(req);

	if (err || (err = txn_begin(m, 0, &txn)))
		return err;
	if (!node_find(m, node))
		err = -EINVAL;
	suspect_key(kb, id, node);
	put_be64(vb, blobcr_wall_s());
	if (!err)
		err = db_err(mdb_put(txn, m->db.suspects, &k, &v, 0));
	err = txn_end(txn, err);
	if (err)
		return err;
	blobcr_id_hex(id, hex);
	log_warn("chunk %s reported bad on node %" PRIu32 ": asking the node",
		 hex, node);
	upkeep_kick(m);
	return 0;
}

/* Forget the suspicion about @id on @node, if any. */
int suspect_clear(MDB_txn *txn, struct metad *m, const uint8_t *id,
		  uint32_t node)
{
	uint8_t kb[BLOBCR_ID_SIZE + 4];
	MDB_val k = { sizeof(kb), kb };
	int err;

	suspect_key(kb, id, node);
	err = db_err(mdb_del(txn, m->db.suspects, &k, NULL));
	return err == -ENOENT ? 0 : err;
}

/* Drop the copies of @n @ids on @node, which says they are bad or gone. */
int locations_confirmed_bad(struct metad *m, uint32_t node,
			    const uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n,
			    size_t *dropped)
{
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	*dropped = 0;
	for (size_t i = 0; i < n && !err; i++) {
		int r = location_drop(txn, m, ids[i], node);

		if (r && r != -ENOENT && r != -EBUSY)
			err = r;
		*dropped += !r;
		if (!err)
			err = suspect_clear(txn, m, ids[i], node);
	}
	return txn_end(txn, err);
}

/* A node reports chunks it found bad itself (scrub or read): they are. */
int do_node_bad_chunks(struct metad *m, struct blobcr_dec *req)
{
	uint32_t node = blobcr_dec_u32(req), n;
	const uint8_t *uuid = blobcr_dec_bytes(req, BLOBCR_UUID_SIZE);
	const uint8_t *ids;
	struct node *nd = node_find(m, node);
	size_t dropped;
	int err;

	n = blobcr_dec_u32(req);
	if (req->err || n > MAX_BATCH || req->left != (size_t)n * BLOBCR_ID_SIZE)
		return -EBADMSG;
	ids = blobcr_dec_bytes(req, (size_t)n * BLOBCR_ID_SIZE);
	if (!nd)
		return -ENOENT;
	pthread_mutex_lock(&m->nodes_mu);
	err = memcmp(nd->uuid, uuid, BLOBCR_UUID_SIZE) ? -ESTALE : 0;
	pthread_mutex_unlock(&m->nodes_mu);
	if (!err)
		err = locations_confirmed_bad(m, node,
					      (const uint8_t (*)[BLOBCR_ID_SIZE])ids,
					      n, &dropped);
	if (!err)
		log_warn("node %" PRIu32 " found %" PRIu32 " bad chunks: %zu "
			 "copies dropped, to be re-replicated", node, n, dropped);
	return err;
}

/* Is @id short of copies?  Its live holders and writers go in @h. */
static int chunk_short(struct metad *m, MDB_cursor *ccur, MDB_cursor *wcur,
		       const uint8_t *id, struct holders *h)
{
	int err = holders_load(m, ccur, wcur, id, 0, h);

	return err ? err : holders_replicas(h) < m->replicas;
}

int do_under_replicated(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	uint8_t has_after = blobcr_dec_u8(req);
	const uint8_t *after = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t max = blobcr_dec_u32(req), n = 0;
	struct holder_walk w;
	size_t count_off;
	MDB_val k, v;
	MDB_txn *txn;
	int rc, err = blobcr_dec_end(req);

	if (err || (err = txn_begin(m, MDB_RDONLY, &txn)))
		return err;
	if (max > MAX_BATCH)
		max = MAX_BATCH;
	err = holder_walk_open(txn, m, m->db.chunks, &w);
	count_off = enc_count_slot(reply);
	k.mv_size = BLOBCR_ID_SIZE;
	k.mv_data = (void *)after;
	rc = err ? MDB_NOTFOUND : mdb_cursor_get(w.walk, &k, &v, MDB_SET_RANGE);
	if (!rc && has_after && !memcmp(k.mv_data, after, BLOBCR_ID_SIZE))
		rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP);
	for (; !rc && !err && n < max;
	     rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT_NODUP)) {
		struct holders h;
		int r;

		if (k.mv_size != BLOBCR_ID_SIZE)
			continue;
		r = chunk_short(m, w.chunks, w.writers, k.mv_data, &h);
		if (r <= 0) {
			err = r;
			continue;
		}
		blobcr_enc_bytes(reply, k.mv_data, BLOBCR_ID_SIZE);
		blobcr_enc_u8(reply, (uint8_t)(h.nlive < BLOBCR_MAX_REPLICAS ?
					       h.nlive : BLOBCR_MAX_REPLICAS));
		for (int i = 0, k2 = 0; i < h.n && k2 < BLOBCR_MAX_REPLICAS; i++)
			if (node_live(m, h.nodes[i])) {
				blobcr_enc_u32(reply, h.nodes[i]);
				k2++;
			}
		blobcr_enc_u8(reply, (uint8_t)h.nwriters);
		for (int i = 0; i < h.nwriters; i++)
			blobcr_enc_u32(reply, h.writers[i]);
		n++;
	}
	blobcr_enc_u8(reply, rc == 0); /* more to come */
	holder_walk_close(&w);
	db_txn_abort(txn);
	enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}

int node_chunks_short(struct metad *m, uint32_t node, uint64_t *short_of)
{
	uint8_t kb[4];
	MDB_val k = { 4, kb }, v;
	struct holder_walk w;
	MDB_txn *txn;
	int rc, err = txn_begin(m, MDB_RDONLY, &txn);

	*short_of = 0;
	if (err)
		return err;
	err = holder_walk_open(txn, m, m->db.node_chunks, &w);
	put_be32(kb, node);
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(w.walk, &k, &v, MDB_SET_RANGE);
	     !rc && !err && k.mv_size == 4 + BLOBCR_ID_SIZE &&
	     get_be32(k.mv_data) == node;
	     rc = mdb_cursor_get(w.walk, &k, &v, MDB_NEXT)) {
		struct holders h;

		err = holders_load(m, w.chunks, w.writers,
				   (uint8_t *)k.mv_data + 4, node, &h);
		if (!err && holders_replicas(&h) < m->replicas)
			(*short_of)++;
	}
	holder_walk_close(&w);
	db_txn_abort(txn);
	return err;
}
