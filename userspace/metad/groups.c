// SPDX-License-Identifier: GPL-2.0
/*
 * groups.c - checkpoint groups (metad.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

/* Name @group in the record of @img@@ver (which must exist). */
static int tag_version(MDB_txn *txn, struct metad *m, const struct image *img,
		       uint32_t ver, const char *group)
{
	struct version v;
	int err = db_version_get(txn, &m->db, img->id, ver, &v);

	if (err)
		return err;
	snprintf(v.group, sizeof(v.group), "%s", group);
	return db_version_put(txn, &m->db, img->id, &v);
}

int do_group_publish(struct metad *m, struct blobcr_dec *req)
{
	char name[BLOBCR_NAME_MAX], root[BLOBCR_ROOT_MAX];
	struct blobcr_enc val;
	uint32_t n;
	MDB_txn *txn;
	MDB_val k, v;
	int err = blobcr_dec_str(req, name, sizeof(name));

	n = blobcr_dec_u32(req);
	if (err || req->err || n == 0 || n > MAX_BATCH || !blobcr_valid_name(name, BLOBCR_NAME_MAX))
		return err ? err : req->err ? req->err : -EINVAL;
	if ((err = blobcr_enc_init(&val, 64)))
		return err;
	if ((err = txn_begin(m, 0, &txn))) {
		blobcr_enc_free(&val);
		return err;
	}
	blobcr_enc_u64(&val, blobcr_wall_s());
	blobcr_enc_u32(&val, n);
	for (uint32_t i = 0; i < n && !err; i++) {
		struct image img;
		uint32_t ver;

		err = read_image(txn, m, req, &img);
		ver = blobcr_dec_u32(req);
		if (!err)
			err = ver ? tag_version(txn, m, &img, ver, name) : -EINVAL;
		blobcr_enc_str(&val, img.name);
		blobcr_enc_u32(&val, ver);
	}
	if (!err)
		err = blobcr_dec_end(req) ?: val.err;
	k.mv_size = strlen(name);
	k.mv_data = name;
	v.mv_size = val.len - BLOBCR_HDR_SIZE;
	v.mv_data = val.buf + BLOBCR_HDR_SIZE;
	if (!err)
		err = db_err(mdb_put(txn, m->db.groups, &k, &v, MDB_NOOVERWRITE));
	manifest_name_group(root, name);
	if (!err)
		err = manifest_pending(txn, m, root);
	err = txn_end(txn, err);
	if (!err)
		upkeep_kick(m); /* its manifest, in the background */
	blobcr_enc_free(&val);
	if (!err)
		log_info("checkpoint group %s published (%" PRIu32 " images)",
			 name, n);
	return err;
}

/* The name as a string field, then the stored record verbatim. */
static int enc_group_record(MDB_txn *txn, struct metad *m, const MDB_val *k,
			    const MDB_val *v, struct blobcr_enc *reply)
{
	(void)txn;
	(void)m;
	blobcr_enc_u16(reply, (uint16_t)k->mv_size);
	blobcr_enc_bytes(reply, k->mv_data, k->mv_size);
	blobcr_enc_bytes(reply, v->mv_data, v->mv_size);
	return 1;
}

int do_group_list(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	return reply_table(m, req, m->db.groups, enc_group_record, reply);
}

/* The sequence number of @group's manifest: the order groups came in. */
static uint64_t group_seq(MDB_txn *txn, struct metad *m, const char *group)
{
	char root[BLOBCR_ROOT_MAX];
	MDB_val k, v;

	manifest_name_group(root, group);
	k.mv_size = strlen(root);
	k.mv_data = root;
	if ((!mdb_get(txn, m->db.pending, &k, &v) ||
	     !mdb_get(txn, m->db.manifests, &k, &v)) && v.mv_size >= 8)
		return get_be64(v.mv_data);
	return 0;
}

/* Whether stored group @rec names @image@@ver. */
static bool group_names(const MDB_val *rec, const char *image, uint32_t ver)
{
	struct blobcr_dec d;
	uint32_t n;

	blobcr_dec_init(&d, rec->mv_data, rec->mv_size);
	blobcr_dec_u64(&d); /* time */
	n = blobcr_dec_u32(&d);
	for (uint32_t i = 0; i < n && !d.err; i++) {
		char name[BLOBCR_NAME_MAX];

		if (blobcr_dec_str(&d, name, sizeof(name)))
			return false;
		if (blobcr_dec_u32(&d) == ver && !strcmp(name, image))
			return true;
	}
	return false;
}

/*
 * Into @out, the last group other than @gone (by manifest sequence, the
 * order a rebuild applies them in) that names @image@@ver, "" if none.
 */
static int last_group_naming(MDB_txn *txn, struct metad *m, const char *image,
			     uint32_t ver, const char *gone,
			     char out[BLOBCR_NAME_MAX])
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t best = 0;
	int err = db_err(mdb_cursor_open(txn, m->db.groups, &cur));

	out[0] = 0;
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char name[BLOBCR_NAME_MAX];
		uint64_t seq;

		if (k.mv_size >= sizeof(name))
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = 0;
		if (!strcmp(name, gone) || !group_names(&v, image, ver))
			continue;
		seq = group_seq(txn, m, name);
		if (!out[0] || seq > best) {
			best = seq;
			memcpy(out, name, k.mv_size + 1);
		}
	}
	if (!err)
		mdb_cursor_close(cur);
	return err;
}

/*
 * The versions @rec (a stored group) names, if they still name @group,
 * name the last other group that names them, or none.
 */
static int untag_members(MDB_txn *txn, struct metad *m, const MDB_val *rec,
			 const char *group)
{
	struct blobcr_dec d;
	uint32_t n;
	int err = 0;

	blobcr_dec_init(&d, rec->mv_data, rec->mv_size);
	blobcr_dec_u64(&d); /* time */
	n = blobcr_dec_u32(&d);
	for (uint32_t i = 0; i < n && !err && !d.err; i++) {
		char name[BLOBCR_NAME_MAX];
		struct version v;
		struct image img;
		uint32_t ver;

		if (blobcr_dec_str(&d, name, sizeof(name)))
			break;
		ver = blobcr_dec_u32(&d);
		/* A member deleted since, or tagged by a later group: left. */
		if (db_image_get(txn, &m->db, name, &img) ||
		    db_version_get(txn, &m->db, img.id, ver, &v) ||
		    strcmp(v.group, group))
			continue;
		err = last_group_naming(txn, m, name, ver, group, v.group);
		if (!err)
			err = db_version_put(txn, &m->db, img.id, &v);
	}
	return err ? err : d.err;
}

int do_group_delete(struct metad *m, struct blobcr_dec *req)
{
	char name[BLOBCR_NAME_MAX], root[BLOBCR_ROOT_MAX];
	MDB_txn *txn;
	MDB_val k, v;
	int err = blobcr_dec_str(req, name, sizeof(name));

	if (!err)
		err = blobcr_dec_end(req);
	if (!err && !blobcr_valid_name(name, BLOBCR_NAME_MAX))
		err = -EINVAL;
	if (err || (err = txn_begin(m, 0, &txn)))
		return err;
	k.mv_size = strlen(name);
	k.mv_data = name;
	err = db_err(mdb_get(txn, m->db.groups, &k, &v));
	if (!err)
		err = untag_members(txn, m, &v, name);
	if (!err)
		err = db_err(mdb_del(txn, m->db.groups, &k, NULL));
	/* Its manifest on the nodes becomes a tombstone. */
	manifest_name_group(root, name);
	if (!err)
		err = manifest_pending(txn, m, root);
	err = txn_end(txn, err);
	if (!err) {
		upkeep_kick(m);
		log_info("checkpoint group %s deleted", name);
	}
	return err;
}
