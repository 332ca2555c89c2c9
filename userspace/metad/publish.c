// SPDX-License-Identifier: GPL-2.0
/*
 * publish.c - a new version, in one write transaction (metad.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

/*
 * Record one data entry's locations and its writer's domain; refuse it
 * unless R copies outside the writer's domain count (replicas.c).
 */
static int publish_chunk(MDB_txn *txn, struct metad *m, MDB_cursor *ccur,
			 struct blobcr_dec *req, const uint8_t *id,
			 uint32_t writer)
{
	uint8_t nrep = blobcr_dec_u8(req);
	struct holders h;
	int err = 0;

	if (nrep > BLOBCR_MAX_REPLICAS)
		return -EBADMSG;
	for (uint8_t i = 0; i < nrep && !err; i++) {
		uint32_t node = blobcr_dec_u32(req);
		struct node *nd = node_find(m, node);

		if (req->err)
			return req->err;
		if (!nd)
			return -EINVAL;
		/* A node removed since the upload: its copy never counts. */
		if (node_state(nd) != NODE_REMOVED) {
			int r = db_chunk_add(txn, &m->db, id, node);

			err = r < 0 ? r : 0;
		}
	}
	if (err)
		return err;
	err = db_writer_add(txn, &m->db, id, writer);
	if (err)
		return err;
	if (chunk_doomed(txn, m, id))
		return -EAGAIN;
	err = holders_load(m, ccur, NULL, id, 0, &h);
	if (err)
		return err;
	return holders_replicas_for(&h, writer) >= m->replicas ? 0 : -EHOSTDOWN;
}

static int publish_entries(MDB_txn *txn, struct metad *m,
			   struct blobcr_dec *req, const struct image *img,
			   uint32_t ver, uint32_t n, uint32_t writer)
{
	MDB_cursor *ccur;
	int err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));

	for (uint32_t i = 0; i < n && !err; i++) {
		uint64_t ext = blobcr_dec_u64(req);
		uint8_t kind = blobcr_dec_u8(req), kb[EXT_KEY];
		uint8_t vb[1 + BLOBCR_ID_SIZE];
		MDB_val k = { EXT_KEY, kb }, v = { 1, vb };

		if (req->err)
			err = req->err;
		else if (ext >= image_extents(img) || kind > BLOBCR_EXT_DATA)
			err = -ERANGE;
		if (!err && kind == BLOBCR_EXT_DATA) {
			const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);

			err = id ? publish_chunk(txn, m, ccur, req, id, writer) :
				   req->err;
			if (!err)
				memcpy(vb + 1, id, BLOBCR_ID_SIZE);
			v.mv_size = 1 + BLOBCR_ID_SIZE;
		}
		vb[0] = kind;
		db_ext_key(kb, img->id, ext, ver);
		if (!err)
			err = db_err(mdb_put(txn, m->db.extmap, &k, &v, 0));
		if (!err && m->publish_delay_ms && i == n / 2) {
			log_info("publish: test delay of %d ms before commit",
				 m->publish_delay_ms);
			usleep((useconds_t)m->publish_delay_ms * 1000);
		}
	}
	if (!err)
		mdb_cursor_close(ccur);
	return err;
}

int do_publish(struct metad *m, struct blobcr_dec *req,
	       struct blobcr_enc *reply)
{
	struct version ver = { 0 };
	char writer[BLOBCR_DOMAIN_MAX] = "";
	struct image img;
	uint64_t epoch, cur_epoch = 0;
	uint32_t base, n;
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	err = read_image(txn, m, req, &img);
	base = blobcr_dec_u32(req);
	if (!err)
		err = blobcr_dec_str(req, ver.label, sizeof(ver.label));
	if (!err)
		err = blobcr_dec_str(req, writer, sizeof(writer));
	epoch = blobcr_dec_u64(req);
	n = blobcr_dec_u32(req);
	if (!err && (req->err || n > MAX_BATCH))
		err = -EBADMSG;
	if (!err)
		err = gc_epoch(txn, m, &cur_epoch);
	if (!err && (epoch != cur_epoch || (cur_epoch & 1)))
		err = -EAGAIN; /* a gc ran or runs: chunks may be gone */
	if (!err && base != img.latest)
		err = -EBUSY;
	ver.version = img.next_version;
	if (!err)
		err = publish_entries(txn, m, req, &img, ver.version, n,
				      blobcr_domain_hash(writer));
	if (!err)
		err = blobcr_dec_end(req);
	ver.base = base;
	ver.time = blobcr_wall_s();
	ver.changed = n;
	if (!err)
		err = db_version_put(txn, &m->db, img.id, &ver);
	img.latest = ver.version;
	img.next_version++;
	img.nversions++;
	if (!err)
		err = db_image_put(txn, &m->db, &img);
	err = txn_end(txn, err);
	if (err) {
		log_warn("publish of %s refused: %s", img.name, strerror(-err));
		return err;
	}
	log_info("published %s@%" PRIu32 " (%" PRIu32 " extents changed) from "
		 "failure domain %s", img.name, ver.version, n, writer);
	blobcr_enc_u32(reply, ver.version);
	return reply->err;
}
