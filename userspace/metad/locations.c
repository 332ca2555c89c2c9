// SPDX-License-Identifier: GPL-2.0
/*
 * locations.c - chunk locations' upkeep: replicas added by a repair,
 * dropped on a report, and the under-replicated chunks listed (metad.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

int do_chunk_add_locations(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply)
{
	uint32_t n = blobcr_dec_u32(req), added = 0;
	MDB_txn *txn;
	int err;

	if (req->err || n > MAX_BATCH || req->left != (size_t)n * 36)
		return -EBADMSG;
	err = txn_begin(m, 0, &txn);
	for (uint32_t i = 0; i < n && !err; i++) {
		const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
		uint32_t node = blobcr_dec_u32(req);
		MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;

		if (!node_find(m, node)) {
			err = -EINVAL;
			break;
		}
		/* Only chunks still known and not being collected. */
		if (mdb_get(txn, m->db.chunks, &k, &v) || chunk_doomed(txn, m, id))
			continue;
		err = db_chunk_add(txn, &m->db, id, node);
		added++;
	}
	if (err && txn)
		mdb_txn_abort(txn);
	else if (!err)
		err = txn_end(txn, 0);
	if (err)
		return err;
	blobcr_enc_u32(reply, added);
	return reply->err;
}

int do_chunk_drop_location(struct metad *m, struct blobcr_dec *req)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t node = blobcr_dec_u32(req);
	uint8_t vb[4];
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v = { 4, vb };
	char hex[65];
	MDB_txn *txn;
	int err = blobcr_dec_end(req);

	if (err || (err = txn_begin(m, 0, &txn)))
		return err;
	put_be32(vb, node);
	err = db_err(mdb_del(txn, m->db.chunks, &k, &v));
	err = txn_end(txn, err == -ENOENT ? 0 : err);
	blobcr_id_hex(id, hex);
	if (!err)
		log_warn("chunk %s reported bad on node %" PRIu32
			 ": location dropped", hex, node);
	return err;
}

int do_under_replicated(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	uint8_t has_after = blobcr_dec_u8(req);
	const uint8_t *after = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t max = blobcr_dec_u32(req), n = 0;
	size_t count_off;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_txn *txn;
	int rc, err = blobcr_dec_end(req);

	if (err || (err = txn_begin(m, MDB_RDONLY, &txn)))
		return err;
	if (max > MAX_BATCH)
		max = MAX_BATCH;
	err = db_err(mdb_cursor_open(txn, m->db.chunks, &cur));
	count_off = enc_count_slot(reply);
	k.mv_size = BLOBCR_ID_SIZE;
	k.mv_data = (void *)after;
	rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (!rc && has_after && !memcmp(k.mv_data, after, BLOBCR_ID_SIZE))
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
	for (; !rc && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
		uint32_t nodes[BLOBCR_MAX_REPLICAS * 2];
		uint8_t id[BLOBCR_ID_SIZE];
		int cnt, live = 0;

		if (k.mv_size != BLOBCR_ID_SIZE)
			continue;
		memcpy(id, k.mv_data, BLOBCR_ID_SIZE);
		cnt = db_chunk_nodes(cur, id, nodes, BLOBCR_MAX_REPLICAS * 2);
		for (int i = 0; i < cnt; i++)
			live += node_live(m, nodes[i]);
		if (cnt >= 0 && live < m->replicas) {
			blobcr_enc_bytes(reply, id, BLOBCR_ID_SIZE);
			err = enc_locations(m, cur, reply, id, true);
			n++;
		}
		/* enc_locations moved the cursor; it is back on @id's dups. */
		k.mv_size = BLOBCR_ID_SIZE;
		k.mv_data = id;
		if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY))
			break;
	}
	blobcr_enc_u8(reply, rc == 0); /* more to come */
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}
