// SPDX-License-Identifier: GPL-2.0
/*
 * access.c - access orders, kept per version for adaptive prefetch
 * (metad.h).
 */
#include <errno.h>
#include <inttypes.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

static void access_key(uint8_t kb[12], uint64_t image, uint32_t ver)
{
	put_be64(kb, image);
	put_be32(kb + 8, ver);
}

/* Forget the access order of image@ver, if there is one. */
int access_del(MDB_txn *txn, struct metad *m, uint64_t image,
	       uint32_t ver)
{
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb };
	int err;

	access_key(kb, image, ver);
	err = db_err(mdb_del(txn, m->db.access, &k, NULL));
	return err == -ENOENT ? 0 : err;
}

/*
 * Record the order in which a deployment of image@version first touched
 * its extents.  The first record of a version stays (-EEXIST afterwards):
 * it is what later deployments of that version prefetch by.
 */
int do_access_put(struct metad *m, struct blobcr_dec *req)
{
	char root[BLOBCR_ROOT_MAX];
	struct image img;
	uint32_t ver, n;
	uint8_t kb[12];
	const uint8_t *raw;
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_txn *txn;
	int err = begin_on_image(m, 0, req, &txn, &img);

	if (err)
		return err;
	ver = blobcr_dec_u32(req);
	n = blobcr_dec_u32(req);
	if (req->err || !n || n > image_extents(&img) ||
	    req->left != (size_t)n * 8)
		err = -EBADMSG;
	if (!err)
		err = ver ? resolve_version(txn, m, &img, &ver) : -EINVAL;
	raw = err ? NULL : blobcr_dec_bytes(req, (size_t)n * 8);
	for (uint32_t i = 0; raw && !err && i < n; i++)
		if (get_be64(raw + i * 8) >= image_extents(&img))
			err = -ERANGE;
	if (!err) {
		access_key(kb, img.id, ver);
		v.mv_size = (size_t)n * 8;
		v.mv_data = (void *)raw;
		err = db_err(mdb_put(txn, m->db.access, &k, &v, MDB_NOOVERWRITE));
	}
	manifest_name_version(root, 'a', img.id, ver);
	if (!err)
		err = manifest_pending(txn, m, root);
	err = txn_end(txn, err);
	if (!err)
		upkeep_kick(m); /* its manifest, in the background */
	if (!err)
		log_info("access order of %s@%" PRIu32 " recorded (%" PRIu32 " extents)",
			 img.name, ver, n);
	return err;
}

int do_access_get(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct image img;
	uint32_t ver;
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_txn *txn;
	int err = begin_on_image(m, MDB_RDONLY, req, &txn, &img);

	if (err)
		return err;
	ver = blobcr_dec_u32(req);
	err = blobcr_dec_end(req);
	if (!err)
		err = ver ? resolve_version(txn, m, &img, &ver) : -EINVAL;
	if (!err) {
		access_key(kb, img.id, ver);
		err = db_err(mdb_get(txn, m->db.access, &k, &v));
	}
	if (!err) {
		blobcr_enc_u32(reply, (uint32_t)(v.mv_size / 8));
		blobcr_enc_bytes(reply, v.mv_data, v.mv_size);
	}
	db_txn_abort(txn);
	return err ? err : reply->err;
}
