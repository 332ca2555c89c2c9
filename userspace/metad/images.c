// SPDX-License-Identifier: GPL-2.0
/*
 * images.c - images and versions: create, clone, info, lists, deletes
 * (metad.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

static int new_image(MDB_txn *txn, struct metad *m, const char *name,
		     struct image *img)
{
	struct image old;
	uint64_t next;
	int err;

	if (!blobcr_valid_name(name, BLOBCR_NAME_MAX))
		return -EINVAL;
	err = db_image_get(txn, &m->db, name, &old);
	if (err != -ENOENT)
		return err ? err : -EEXIST;
	err = db_meta_get(txn, &m->db, "next_image", &next);
	if (err)
		return err;
	snprintf(img->name, sizeof(img->name), "%s", name);
	img->id = next ? next : 1;
	img->next_version = 1;
	img->created = blobcr_wall_s();
	return db_meta_put(txn, &m->db, "next_image", img->id + 1);
}

int do_image_create(struct metad *m, struct blobcr_dec *req)
{
	char name[BLOBCR_NAME_MAX], root[BLOBCR_ROOT_MAX];
	struct image img = { 0 };
	uint64_t size;
	uint32_t ext;
	MDB_txn *txn;
	int err = blobcr_dec_str(req, name, sizeof(name));

	size = blobcr_dec_u64(req);
	ext = blobcr_dec_u32(req);
	err = err ? err : blobcr_dec_end(req);
	if (err)
		return err;
	if (ext < BLOBCR_MIN_EXTENT || ext > BLOBCR_MAX_EXTENT ||
	    (ext & (ext - 1)) || size == 0 || size > (1ull << 50))
		return -EINVAL;
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	err = new_image(txn, m, name, &img);
	img.size = size;
	img.extent_size = ext;
	if (!err)
		err = db_image_put(txn, &m->db, &img);
	manifest_name_image(root, name);
	if (!err)
		err = manifest_pending(txn, m, root);
	err = txn_end(txn, err);
	if (!err)
		upkeep_kick(m); /* its manifest, in the background */
	if (!err)
		log_info("image %s created: %" PRIu64 " bytes, extents of %" PRIu32,
			 name, size, ext);
	return err;
}

int do_image_clone(struct metad *m, struct blobcr_dec *req)
{
	char dst[BLOBCR_NAME_MAX], root[BLOBCR_ROOT_MAX];
	struct image src, img = { 0 };
	uint32_t ver;
	MDB_txn *txn;
	int err = begin_on_image(m, 0, req, &txn, &src);

	if (err)
		return err;
	ver = blobcr_dec_u32(req);
	err = blobcr_dec_str(req, dst, sizeof(dst));
	if (!err)
		err = blobcr_dec_end(req);
	if (!err)
		err = resolve_version(txn, m, &src, &ver);
	if (!err)
		err = new_image(txn, m, dst, &img);
	if (!err) {
		img.size = src.size;
		img.extent_size = src.extent_size;
		img.parent_id = src.id;
		img.parent_version = ver;
		err = db_image_put(txn, &m->db, &img);
	}
	manifest_name_image(root, dst);
	if (!err)
		err = manifest_pending(txn, m, root);
	err = txn_end(txn, err);
	if (!err)
		upkeep_kick(m); /* its manifest, in the background */
	if (!err)
		log_info("image %s cloned from %s@%" PRIu32, dst, src.name, ver);
	return err;
}

static void enc_image(MDB_txn *txn, struct metad *m, struct blobcr_enc *e,
		      const struct image *img)
{
	struct image parent;

	blobcr_enc_str(e, img->name);
	blobcr_enc_u64(e, img->size);
	blobcr_enc_u32(e, img->extent_size);
	blobcr_enc_u32(e, img->latest);
	blobcr_enc_u32(e, img->nversions);
	if (img->parent_id &&
	    !db_image_get_by_id(txn, &m->db, img->parent_id, &parent))
		blobcr_enc_str(e, parent.name);
	else
		blobcr_enc_str(e, "");
	blobcr_enc_u32(e, img->parent_version);
	blobcr_enc_u64(e, img->created);
}

int do_image_info(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct image img;
	MDB_txn *txn;
	int err = begin_on_image(m, MDB_RDONLY, req, &txn, &img);

	if (err)
		return err;
	err = blobcr_dec_end(req);
	if (!err)
		enc_image(txn, m, reply, &img);
	db_txn_abort(txn);
	return err ? err : reply->err;
}

/* A key too long to be an image name is passed over. */
static int enc_image_record(MDB_txn *txn, struct metad *m, const MDB_val *k,
			    const MDB_val *v, struct blobcr_enc *reply)
{
	char name[BLOBCR_NAME_MAX];
	struct image img;
	int err;

	(void)v;
	if (k->mv_size >= sizeof(name))
		return 0;
	memcpy(name, k->mv_data, k->mv_size);
	name[k->mv_size] = 0;
	err = db_image_get(txn, &m->db, name, &img);
	if (err)
		return err;
	enc_image(txn, m, reply, &img);
	return 1;
}

int do_image_list(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	return reply_table(m, req, m->db.images, enc_image_record, reply);
}

int do_version_list(struct metad *m, struct blobcr_dec *req,
		    struct blobcr_enc *reply)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v;
	struct image img;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint32_t n = 0, after;
	size_t count_off;
	bool more = false;
	int rc, err = begin_on_image(m, MDB_RDONLY, req, &txn, &img);

	if (err)
		return err;
	after = blobcr_dec_u32(req); /* the page starts past it */
	err = blobcr_dec_end(req);
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.versions, &cur));
	if (err) {
		db_txn_abort(txn);
		return err;
	}
	count_off = enc_count_slot(reply);
	put_be64(kb, img.id);
	put_be32(kb + 8, after == UINT32_MAX ? after : after + 1);
	for (rc = after == UINT32_MAX ? MDB_NOTFOUND :
		  mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && !err && !more && k.mv_size == 12 &&
	     get_be64(k.mv_data) == img.id;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t before = reply->len;
		struct version ver;

		err = db_version_get(txn, &m->db, img.id,
				     get_be32((uint8_t *)k.mv_data + 8), &ver);
		if (err)
			break;
		blobcr_enc_u32(reply, ver.version);
		blobcr_enc_u32(reply, ver.base);
		blobcr_enc_u64(reply, ver.time);
		blobcr_enc_u64(reply, ver.changed);
		blobcr_enc_str(reply, ver.label);
		blobcr_enc_str(reply, ver.group);
		if (!(more = page_full(m, reply, before, n)))
			n++;
	}
	mdb_cursor_close(cur);
	db_txn_abort(txn);
	blobcr_enc_u8(reply, more);
	if (!err)
		enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}

/* ---- deletes ---- */

/* Return: -EBUSY if a clone depends on @img (at @ver, or any if 0). */
static int check_no_clone(MDB_txn *txn, struct metad *m,
			  const struct image *img, uint32_t ver)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int err = db_err(mdb_cursor_open(txn, m->db.images, &cur));

	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *p = v.mv_data;

		if (v.mv_size >= 44 && get_be64(p + 32) == img->id &&
		    (!ver || get_be32(p + 40) == ver))
			err = -EBUSY;
	}
	mdb_cursor_close(cur);
	return err;
}

/* Smallest surviving version of @img above @ver, 0 if none. */
static uint32_t next_version_after(MDB_txn *txn, struct metad *m,
				   const struct image *img, uint32_t ver)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v;
	MDB_cursor *cur;
	uint32_t out = 0;

	if (mdb_cursor_open(txn, m->db.versions, &cur))
		return 0;
	put_be64(kb, img->id);
	put_be32(kb + 8, ver + 1);
	if (ver < UINT32_MAX &&
	    !mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) && k.mv_size == 12 &&
	    get_be64(k.mv_data) == img->id)
		out = get_be32((uint8_t *)k.mv_data + 8);
	mdb_cursor_close(cur);
	return out;
}

/* Greatest surviving version of @img below @ver, 0 if none. */
static uint32_t prev_version_before(MDB_txn *txn, struct metad *m,
				    const struct image *img, uint32_t ver)
{
	uint32_t best = 0;

	for (uint32_t v = 1; v < ver;) {
		uint32_t nv = next_version_after(txn, m, img, v - 1);

		if (!nv || nv >= ver)
			break;
		best = nv;
		v = nv + 1;
	}
	return best;
}

/*
 * Drop version @ver's extent entries.  An entry that the next surviving
 * version W relied on (W has none of its own for that extent) moves to W,
 * so that shadowing still resolves W correctly.
 */
static int drop_version_entries(MDB_txn *txn, struct metad *m,
				const struct image *img, uint32_t ver)
{
	uint32_t w = next_version_after(txn, m, img, ver);
	uint8_t kb[EXT_KEY];
	MDB_val k = { EXT_KEY, kb }, v;
	MDB_cursor *cur;
	int rc, err = db_err(mdb_cursor_open(txn, m->db.extmap, &cur));

	if (err)
		return err;
	db_ext_key(kb, img->id, 0, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc && !err;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t image, ext;
		uint32_t kv;
		uint8_t wk[EXT_KEY], val[1 + BLOBCR_ID_SIZE];
		MDB_val wkey = { EXT_KEY, wk }, wval;

		if (k.mv_size != EXT_KEY)
			continue;
		db_ext_key_parse(k.mv_data, &image, &ext, &kv);
		if (image != img->id)
			break;
		if (kv != ver || v.mv_size > sizeof(val))
			continue;
		memcpy(val, v.mv_data, v.mv_size);
		wval.mv_size = v.mv_size;
		wval.mv_data = val;
		err = db_err(mdb_cursor_del(cur, 0));
		db_ext_key(wk, img->id, ext, w);
		if (!err && w)
			err = db_err(mdb_put(txn, m->db.extmap, &wkey, &wval,
					     MDB_NOOVERWRITE));
		if (err == -EEXIST)
			err = 0; /* W has its own entry */
		/* Deleting and inserting moved the cursor: find our place. */
		db_ext_key(kb, img->id, ext, ver + 1);
		k.mv_size = EXT_KEY;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
		if (rc == MDB_NOTFOUND)
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return err;
}

/* The manifests a deleted version changes: its own, its access order's,
 * and the next version's, which may have taken its entries. */
static int delete_version_manifests(MDB_txn *txn, struct metad *m,
				    const struct image *img, uint32_t ver)
{
	uint32_t w = next_version_after(txn, m, img, ver);
	char root[BLOBCR_ROOT_MAX];
	int err;

	manifest_name_version(root, 'v', img->id, ver);
	err = manifest_pending(txn, m, root);
	manifest_name_version(root, 'a', img->id, ver);
	if (!err)
		err = manifest_pending(txn, m, root);
	manifest_name_version(root, 'v', img->id, w);
	if (!err && w)
		err = manifest_pending(txn, m, root);
	return err;
}

static int delete_version(MDB_txn *txn, struct metad *m, struct image *img,
			  uint32_t ver)
{
	struct version v;
	int err = db_version_get(txn, &m->db, img->id, ver, &v);

	if (!err)
		err = check_no_clone(txn, m, img, ver);
	if (!err)
		err = lease_check(txn, m, img, ver);
	if (!err)
		err = delete_version_manifests(txn, m, img, ver);
	if (!err)
		err = drop_version_entries(txn, m, img, ver);
	if (!err)
		err = db_version_del(txn, &m->db, img->id, ver);
	if (!err)
		err = access_del(txn, m, img->id, ver);
	if (err)
		return err;
	if (img->latest == ver)
		img->latest = prev_version_before(txn, m, img, ver);
	img->nversions--;
	return db_image_put(txn, &m->db, img);
}

/* Delete every key of @dbi that starts with the 8-byte @image id. */
static int delete_prefix(MDB_txn *txn, MDB_dbi dbi, uint64_t image)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_cursor *cur;
	int rc, err = db_err(mdb_cursor_open(txn, dbi, &cur));

	if (err)
		return err;
	put_be64(kb, image);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && !err && k.mv_size >= 8 && get_be64(k.mv_data) == image;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT))
		err = db_err(mdb_cursor_del(cur, 0));
	mdb_cursor_close(cur);
	return err;
}

/* The manifests a deleted image ends: its own and its versions'. */
static int delete_image_manifests(MDB_txn *txn, struct metad *m,
				  const struct image *img)
{
	char root[BLOBCR_ROOT_MAX];
	int err;

	manifest_name_image(root, img->name);
	err = manifest_pending(txn, m, root);
	for (uint32_t v = next_version_after(txn, m, img, 0); v && !err;
	     v = next_version_after(txn, m, img, v)) {
		manifest_name_version(root, 'v', img->id, v);
		err = manifest_pending(txn, m, root);
		manifest_name_version(root, 'a', img->id, v);
		if (!err)
			err = manifest_pending(txn, m, root);
	}
	return err;
}

int do_image_delete(struct metad *m, struct blobcr_dec *req,
		    uint8_t op)
{
	struct image img;
	uint32_t ver = 0;
	MDB_txn *txn;
	int err = begin_on_image(m, 0, req, &txn, &img);

	if (err)
		return err;
	if (op == BLOBCR_OP_VERSION_DELETE)
		ver = blobcr_dec_u32(req);
	err = blobcr_dec_end(req);
	if (!err && op == BLOBCR_OP_VERSION_DELETE)
		err = ver ? delete_version(txn, m, &img, ver) : -EINVAL;
	else if (!err) {
		err = check_no_clone(txn, m, &img, 0);
		if (!err)
			err = lease_check(txn, m, &img, 0);
		if (!err)
			err = delete_image_manifests(txn, m, &img);
		if (!err)
			err = delete_prefix(txn, m->db.leases, img.id);
		if (!err)
			err = delete_prefix(txn, m->db.extmap, img.id);
		if (!err)
			err = delete_prefix(txn, m->db.versions, img.id);
		if (!err)
			err = delete_prefix(txn, m->db.access, img.id);
		if (!err)
			err = db_image_del(txn, &m->db, &img);
	}
	err = txn_end(txn, err);
	if (!err)
		upkeep_kick(m); /* tombstones and rewrites, in the background */
	if (!err && ver)
		log_info("deleted %s@%" PRIu32, img.name, ver);
	else if (!err)
		log_info("deleted image %s", img.name);
	return err;
}
