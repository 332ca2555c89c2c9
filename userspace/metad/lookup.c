// SPDX-License-Identifier: GPL-2.0
/*
 * lookup.c - where extents and chunks live: LOOKUP and CHUNK_LOCATE (metad.h).
 */
#include <errno.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

/*
 * Encode where a chunk lives: for reads, live holders first, then dead
 * ones (removed nodes never); with @counting_only, the holders whose copy
 * counts towards R (live and active).
 */
int enc_locations(struct metad *m, MDB_cursor *ccur,
		  struct blobcr_enc *e, const uint8_t *id, bool counting_only)
{
	uint32_t nodes[MAX_HOLDERS], out[BLOBCR_MAX_REPLICAS];
	int n = db_chunk_nodes(ccur, id, nodes, MAX_HOLDERS);
	int k = 0;

	if (n < 0)
		return n;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n && k < BLOBCR_MAX_REPLICAS; i++) {
			struct node *nd = node_find(m, nodes[i]);
			bool take = pass == 0 ? (counting_only ?
						 node_counts(m, nodes[i]) :
						 node_live(m, nodes[i])) :
				    !counting_only && nd && !node_live(m, nodes[i]) &&
				    node_state(nd) != NODE_REMOVED;

			if (take)
				out[k++] = nodes[i];
		}
	blobcr_enc_u8(e, (uint8_t)k);
	for (int i = 0; i < k; i++)
		blobcr_enc_u32(e, out[i]);
	return 0;
}

static int lookup_extents(MDB_txn *txn, struct metad *m, struct blobcr_dec *req,
			  const struct image *img, uint32_t ver, uint32_t n,
			  struct blobcr_enc *reply)
{
	MDB_cursor *ecur, *ccur;
	int err = db_err(mdb_cursor_open(txn, m->db.extmap, &ecur));

	if (err)
		return err;
	err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	if (err) {
		mdb_cursor_close(ecur);
		return err;
	}
	for (uint32_t i = 0; i < n && !err; i++) {
		uint64_t ext = blobcr_dec_u64(req);
		uint8_t kind = BLOBCR_EXT_ZERO, id[BLOBCR_ID_SIZE];
		int r;

		if (req->err || ext >= image_extents(img)) {
			err = req->err ? req->err : -ERANGE;
			break;
		}
		r = db_extent_find(ecur, &m->db, txn, img, ver, ext, &kind, id);
		if (r < 0) {
			err = r;
			break;
		}
		blobcr_enc_u8(reply, r ? kind : BLOBCR_EXT_ZERO);
		if (r && kind == BLOBCR_EXT_DATA) {
			blobcr_enc_bytes(reply, id, BLOBCR_ID_SIZE);
			err = enc_locations(m, ccur, reply, id, false);
		}
	}
	mdb_cursor_close(ccur);
	mdb_cursor_close(ecur);
	return err;
}

int do_lookup(struct metad *m, struct blobcr_dec *req,
	      struct blobcr_enc *reply)
{
	struct image img;
	uint32_t ver, n;
	MDB_txn *txn;
	int err = begin_on_image(m, MDB_RDONLY, req, &txn, &img);

	if (err)
		return err;
	ver = blobcr_dec_u32(req);
	n = blobcr_dec_u32(req);
	if (req->err || n > MAX_BATCH || req->left != (size_t)n * 8)
		err = -EBADMSG;
	if (!err)
		err = resolve_version(txn, m, &img, &ver);
	if (!err) {
		blobcr_enc_u32(reply, ver);
		blobcr_enc_u32(reply, img.extent_size);
		blobcr_enc_u32(reply, n);
		err = lookup_extents(txn, m, req, &img, ver, n, reply);
	}
	db_txn_abort(txn);
	return err ? err : reply->err;
}

/*
 * CHUNK_LOCATE: where chunks are, for a commit (its session) about to rely
 * on them: gc spares them from now on (sessions.c).  A chunk a gc is
 * deleting is answered CHUNK_DOOMED: ask again.
 */
int do_chunk_locate(struct metad *m, struct blobcr_dec *req,
		    struct blobcr_enc *reply)
{
	uint64_t session = blobcr_dec_u64(req);
	uint32_t n = blobcr_dec_u32(req);
	const uint8_t *ids;
	MDB_cursor *ccur;
	MDB_txn *txn;
	int err;

	if (req->err || n > MAX_BATCH || req->left != (size_t)n * BLOBCR_ID_SIZE)
		return -EBADMSG;
	ids = blobcr_dec_bytes(req, (size_t)n * BLOBCR_ID_SIZE);
	/* Wanted first: a sweep that did not see it has committed already. */
	err = session_want(m, session, ids, n);
	if (!err)
		err = txn_begin(m, MDB_RDONLY, &txn);
	if (err)
		return err;
	err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	if (err) {
		db_txn_abort(txn);
		return err;
	}
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n && !err; i++) {
		const uint8_t *id = ids + (size_t)i * BLOBCR_ID_SIZE;

		if (chunk_doomed(txn, m, id))
			blobcr_enc_u8(reply, CHUNK_DOOMED);
		else
			err = enc_locations(m, ccur, reply, id, true);
	}
	mdb_cursor_close(ccur);
	db_txn_abort(txn);
	return err ? err : reply->err;
}
