// SPDX-License-Identifier: GPL-2.0
/*
 * db.c - blobcr-metad's LMDB schema: record codecs and lookups (db.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "blobcr_util.h"
#include "db.h"

#define IMAGE_VAL 56
#define MAX_CLONE_DEPTH 64

void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* A write found the map full: the next write transaction grows it. */
static bool map_full_seen;

int db_err(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	if (rc == MDB_MAP_FULL)
		__atomic_store_n(&map_full_seen, true, __ATOMIC_RELAXED);
	if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
		return -ENOSPC;
	return rc > 0 ? -rc : -EIO;
}

/*
 * Double the map if it is more than half used, or was found full, and no
 * transaction is open (else a later write does it).
 */
static void db_room(struct db *db)
{
	MDB_envinfo ei;
	MDB_stat st;
	size_t used;

	if (mdb_env_info(db->env, &ei) || mdb_env_stat(db->env, &st))
		return;
	used = (ei.me_last_pgno + 1) * (size_t)st.ms_psize;
	if (used * 2 <= ei.me_mapsize &&
	    !__atomic_load_n(&map_full_seen, __ATOMIC_RELAXED))
		return;
	if (pthread_rwlock_trywrlock(&db->txn_rw))
		return;
	if (!mdb_env_set_mapsize(db->env, ei.me_mapsize * 2)) {
		__atomic_store_n(&map_full_seen, false, __ATOMIC_RELAXED);
		log_info("database map grown to %zu MiB (%zu MiB used)",
			 ei.me_mapsize * 2 >> 20, used >> 20);
	}
	pthread_rwlock_unlock(&db->txn_rw);
}

int db_reserve(struct db *db, size_t bytes)
{
	MDB_envinfo ei;
	MDB_stat st;
	size_t used, size;
	int rc;

	if ((rc = mdb_env_stat(db->env, &st)) || (rc = mdb_env_info(db->env, &ei)))
		return db_err(rc);
	used = (ei.me_last_pgno + 1) * (size_t)st.ms_psize;
	if ((used + bytes) * 2 <= ei.me_mapsize)
		return 0;
	pthread_rwlock_wrlock(&db->txn_rw);
	rc = mdb_env_info(db->env, &ei);
	used = (ei.me_last_pgno + 1) * (size_t)st.ms_psize;
	for (size = ei.me_mapsize; !rc && (used + bytes) * 2 > size;)
		size *= 2;
	if (!rc && size != ei.me_mapsize) {
		rc = mdb_env_set_mapsize(db->env, size);
		if (!rc)
			log_info("database map grown to %zu MiB (%zu MiB used, %zu "
				 "MiB wanted)", size >> 20, used >> 20, bytes >> 20);
	}
	pthread_rwlock_unlock(&db->txn_rw);
	return db_err(rc);
}

int db_txn_begin(struct db *db, unsigned int flags, MDB_txn **txn)
{
	int rc;

	if (!(flags & MDB_RDONLY))
		db_room(db);
	pthread_rwlock_rdlock(&db->txn_rw);
	rc = mdb_txn_begin(db->env, NULL, flags, txn);
	if (rc)
		pthread_rwlock_unlock(&db->txn_rw);
	return db_err(rc);
}

static struct db *txn_db(MDB_txn *txn)
{
	return mdb_env_get_userctx(mdb_txn_env(txn));
}

int db_txn_end(MDB_txn *txn, int err)
{
	struct db *db = txn_db(txn);

	if (err)
		mdb_txn_abort(txn);
	else
		err = db_err(mdb_txn_commit(txn));
	pthread_rwlock_unlock(&db->txn_rw);
	return err;
}

void db_txn_abort(MDB_txn *txn)
{
	struct db *db = txn_db(txn);

	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&db->txn_rw);
}

int db_open(const char *dir, struct db *db, size_t map_bytes)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned int flags;
	} dbs[] = {
		{ "images", offsetof(struct db, images), 0 },
		{ "image_ids", offsetof(struct db, image_ids), 0 },
		{ "versions", offsetof(struct db, versions), 0 },
		{ "extmap", offsetof(struct db, extmap), 0 },
		{ "chunks", offsetof(struct db, chunks), MDB_DUPSORT | MDB_DUPFIXED },
		{ "node_chunks", offsetof(struct db, node_chunks), 0 },
		{ "writers", offsetof(struct db, writers), MDB_DUPSORT | MDB_DUPFIXED },
		{ "suspects", offsetof(struct db, suspects), 0 },
		{ "nodes", offsetof(struct db, nodes), 0 },
		{ "node_addrs", offsetof(struct db, node_addrs), 0 },
		{ "groups", offsetof(struct db, groups), 0 },
		{ "access", offsetof(struct db, access), 0 },
		{ "leases", offsetof(struct db, leases), 0 },
		{ "manifests", offsetof(struct db, manifests), 0 },
		{ "pending", offsetof(struct db, pending), 0 },
		{ "doomed", offsetof(struct db, doomed), 0 },
		{ "orphans", offsetof(struct db, orphans), 0 },
		{ "strays", offsetof(struct db, strays), 0 },
		{ "meta", offsetof(struct db, meta), 0 },
	};
	MDB_txn *txn;
	int rc;

	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	if (pthread_rwlock_init(&db->txn_rw, NULL))
		return -ENOMEM;
	rc = mdb_env_create(&db->env);
	if (rc)
		return db_err(rc);
	/* A map smaller than the data already there is taken as that size. */
	if ((rc = mdb_env_set_maxdbs(db->env, 32)) ||
	    (rc = mdb_env_set_mapsize(db->env, map_bytes)) ||
	    (rc = mdb_env_set_userctx(db->env, db)) ||
	    (rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0644)) ||
	    (rc = mdb_txn_begin(db->env, NULL, 0, &txn))) {
		mdb_env_close(db->env);
		return db_err(rc);
	}
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)db + dbs[i].off);

		rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE | dbs[i].flags, dbi);
		if (rc) {
			mdb_txn_abort(txn);
			mdb_env_close(db->env);
			return db_err(rc);
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		mdb_env_close(db->env);
	return db_err(rc);
}

void db_close(struct db *db)
{
	mdb_env_close(db->env);
}

/* ---- images ---- */

static void image_encode(const struct image *img, uint8_t v[IMAGE_VAL])
{
	put_be64(v, img->id);
	put_be64(v + 8, img->size);
	put_be32(v + 16, img->extent_size);
	put_be32(v + 20, img->latest);
	put_be32(v + 24, img->next_version);
	put_be32(v + 28, img->nversions);
	put_be64(v + 32, img->parent_id);
	put_be32(v + 40, img->parent_version);
	put_be32(v + 44, 0);
	put_be64(v + 48, img->created);
}

static int image_decode(const MDB_val *k, const MDB_val *val, struct image *img)
{
	const uint8_t *v = val->mv_data;

	if (val->mv_size != IMAGE_VAL || k->mv_size >= BLOBCR_NAME_MAX)
		return -EUCLEAN;
	memcpy(img->name, k->mv_data, k->mv_size);
	img->name[k->mv_size] = 0;
	img->id = get_be64(v);
	img->size = get_be64(v + 8);
	img->extent_size = get_be32(v + 16);
	img->latest = get_be32(v + 20);
	img->next_version = get_be32(v + 24);
	img->nversions = get_be32(v + 28);
	img->parent_id = get_be64(v + 32);
	img->parent_version = get_be32(v + 40);
	img->created = get_be64(v + 48);
	return 0;
}

int db_image_get(MDB_txn *txn, struct db *db, const char *name,
		 struct image *img)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc = mdb_get(txn, db->images, &k, &v);

	return rc ? db_err(rc) : image_decode(&k, &v, img);
}

int db_image_get_by_id(MDB_txn *txn, struct db *db, uint64_t id,
		       struct image *img)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	char name[BLOBCR_NAME_MAX];
	int rc;

	put_be64(kb, id);
	rc = mdb_get(txn, db->image_ids, &k, &v);
	if (rc)
		return db_err(rc);
	if (v.mv_size >= sizeof(name))
		return -EUCLEAN;
	memcpy(name, v.mv_data, v.mv_size);
	name[v.mv_size] = 0;
	return db_image_get(txn, db, name, img);
}

int db_image_put(MDB_txn *txn, struct db *db, const struct image *img)
{
	uint8_t vb[IMAGE_VAL], kb[8];
	MDB_val k = { strlen(img->name), (void *)img->name };
	MDB_val v = { IMAGE_VAL, vb };
	MDB_val ik = { 8, kb };
	int rc;

	image_encode(img, vb);
	put_be64(kb, img->id);
	rc = mdb_put(txn, db->images, &k, &v, 0);
	if (!rc)
		rc = mdb_put(txn, db->image_ids, &ik, &k, 0);
	return db_err(rc);
}

int db_image_del(MDB_txn *txn, struct db *db, const struct image *img)
{
	uint8_t kb[8];
	MDB_val k = { strlen(img->name), (void *)img->name };
	MDB_val ik = { 8, kb };
	int rc;

	put_be64(kb, img->id);
	rc = mdb_del(txn, db->images, &k, NULL);
	if (!rc)
		rc = mdb_del(txn, db->image_ids, &ik, NULL);
	return db_err(rc);
}

/* ---- versions ---- */

static void version_key(uint8_t k[12], uint64_t image, uint32_t v)
{
	put_be64(k, image);
	put_be32(k + 8, v);
}

int db_version_get(MDB_txn *txn, struct db *db, uint64_t image, uint32_t ver,
		   struct version *out)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v;
	const uint8_t *p;
	size_t n;
	int rc;

	version_key(kb, image, ver);
	rc = mdb_get(txn, db->versions, &k, &v);
	if (rc)
		return db_err(rc);
	p = v.mv_data;
	if (v.mv_size < 22)
		return -EUCLEAN;
	n = (size_t)p[20] << 8 | p[21];
	if (n >= BLOBCR_NAME_MAX || 22 + n > v.mv_size ||
	    v.mv_size - 22 - n >= BLOBCR_NAME_MAX)
		return -EUCLEAN;
	out->version = ver;
	out->base = get_be32(p);
	out->time = get_be64(p + 4);
	out->changed = get_be64(p + 12);
	memcpy(out->label, p + 22, n);
	out->label[n] = 0;
	memcpy(out->group, p + 22 + n, v.mv_size - 22 - n);
	out->group[v.mv_size - 22 - n] = 0;
	return 0;
}

int db_version_put(MDB_txn *txn, struct db *db, uint64_t image,
		   const struct version *ver)
{
	uint8_t kb[12], vb[22 + 2 * BLOBCR_NAME_MAX];
	size_t n = strnlen(ver->label, BLOBCR_NAME_MAX - 1);
	size_t g = strnlen(ver->group, BLOBCR_NAME_MAX - 1);
	MDB_val k = { 12, kb }, v = { 22 + n + g, vb };

	version_key(kb, image, ver->version);
	put_be32(vb, ver->base);
	put_be64(vb + 4, ver->time);
	put_be64(vb + 12, ver->changed);
	vb[20] = (uint8_t)(n >> 8);
	vb[21] = (uint8_t)n;
	memcpy(vb + 22, ver->label, n);
	memcpy(vb + 22 + n, ver->group, g);
	return db_err(mdb_put(txn, db->versions, &k, &v, 0));
}

int db_version_del(MDB_txn *txn, struct db *db, uint64_t image, uint32_t ver)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb };

	version_key(kb, image, ver);
	return db_err(mdb_del(txn, db->versions, &k, NULL));
}

/* ---- extent map ---- */

void db_ext_key(uint8_t k[EXT_KEY], uint64_t image, uint64_t extent,
		uint32_t version)
{
	put_be64(k, image);
	put_be64(k + 8, extent);
	put_be32(k + 16, version);
}

void db_ext_key_parse(const uint8_t *k, uint64_t *image, uint64_t *extent,
		      uint32_t *version)
{
	*image = get_be64(k);
	*extent = get_be64(k + 8);
	*version = get_be32(k + 16);
}

/* The entry of @extent in @image itself at the greatest version <= @ver. */
static int find_own(MDB_cursor *cur, uint64_t image, uint32_t ver,
		    uint64_t extent, uint8_t *kind, uint8_t *id)
{
	uint8_t kb[EXT_KEY];
	MDB_val k = { EXT_KEY, kb }, v;
	int rc;

	db_ext_key(kb, image, extent, ver);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	else if (!rc && memcmp(k.mv_data, kb, EXT_KEY))
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return db_err(rc);
	/* Same image and extent (first 16 bytes), version <= ver. */
	if (k.mv_size != EXT_KEY || memcmp(k.mv_data, kb, 16) ||
	    get_be32((uint8_t *)k.mv_data + 16) > ver)
		return 0;
	if (v.mv_size < 1)
		return -EUCLEAN;
	*kind = *(uint8_t *)v.mv_data;
	if (*kind) {
		if (v.mv_size != 1 + BLOBCR_ID_SIZE)
			return -EUCLEAN;
		memcpy(id, (uint8_t *)v.mv_data + 1, BLOBCR_ID_SIZE);
	}
	return 1;
}

int db_extent_find(MDB_cursor *cur, struct db *db, MDB_txn *txn,
		   const struct image *img, uint32_t version, uint64_t extent,
		   uint8_t *kind, uint8_t id[BLOBCR_ID_SIZE])
{
	struct image at = *img;
	uint32_t ver = version;

	for (int depth = 0; depth < MAX_CLONE_DEPTH; depth++) {
		int r = find_own(cur, at.id, ver, extent, kind, id);

		if (r)
			return r;
		if (!at.parent_id)
			return 0;
		ver = at.parent_version;
		r = db_image_get_by_id(txn, db, at.parent_id, &at);
		if (r)
			return r;
	}
	return -ELOOP;
}

/* ---- chunk locations ---- */

/* The u32 duplicates of key @id in the table of @cur. */
static int id_u32s(MDB_cursor *cur, const uint8_t *id, uint32_t *nodes, int max)
{
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;
	int n = 0, rc;

	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); !rc && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP))
		if (v.mv_size == 4)
			nodes[n++] = get_be32(v.mv_data);
	if (rc && rc != MDB_NOTFOUND)
		return db_err(rc);
	return n;
}

int db_chunk_nodes(MDB_cursor *cur, const uint8_t *id, uint32_t *nodes, int max)
{
	return id_u32s(cur, id, nodes, max);
}

int db_chunk_writers(MDB_cursor *cur, const uint8_t *id, uint32_t *domains,
		     int max)
{
	return id_u32s(cur, id, domains, max);
}

int db_writer_add(MDB_txn *txn, struct db *db, const uint8_t *id,
		  uint32_t domain)
{
	uint8_t vb[4];
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v = { 4, vb };
	int rc;

	put_be32(vb, domain);
	rc = mdb_put(txn, db->writers, &k, &v, MDB_NODUPDATA);
	return rc == MDB_KEYEXIST ? 0 : db_err(rc);
}

static void node_chunk_key(uint8_t k[4 + BLOBCR_ID_SIZE], uint32_t node,
			   const uint8_t *id)
{
	put_be32(k, node);
	memcpy(k + 4, id, BLOBCR_ID_SIZE);
}

int db_chunk_add(MDB_txn *txn, struct db *db, const uint8_t *id, uint32_t node)
{
	uint8_t vb[4], nk[4 + BLOBCR_ID_SIZE];
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v = { 4, vb };
	MDB_val bk = { sizeof(nk), nk }, bv = { 0, nk };
	int rc;

	put_be32(vb, node);
	rc = mdb_put(txn, db->chunks, &k, &v, MDB_NODUPDATA);
	if (rc == MDB_KEYEXIST)
		return 0;
	node_chunk_key(nk, node, id);
	if (!rc)
		rc = mdb_put(txn, db->node_chunks, &bk, &bv, 0);
	/* A good copy again where one was lost. */
	put_be32(vb, node | LOC_LOST);
	if (!rc && mdb_del(txn, db->chunks, &k, &v) == MDB_NOTFOUND)
		rc = 0;
	return rc ? db_err(rc) : 1;
}

int db_chunk_mark_lost(MDB_txn *txn, struct db *db, const uint8_t *id,
		       uint32_t node)
{
	uint8_t vb[4];
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v = { 4, vb };
	int err = db_chunk_del(txn, db, id, node);

	put_be32(vb, node | LOC_LOST);
	if (!err)
		err = db_err(mdb_put(txn, db->chunks, &k, &v, MDB_NODUPDATA));
	return err == -EEXIST ? 0 : err;
}

int db_chunk_del(MDB_txn *txn, struct db *db, const uint8_t *id, uint32_t node)
{
	uint8_t vb[4], nk[4 + BLOBCR_ID_SIZE];
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v = { 4, vb };
	MDB_val bk = { sizeof(nk), nk };
	int rc;

	put_be32(vb, node);
	rc = mdb_del(txn, db->chunks, &k, &v);
	node_chunk_key(nk, node, id);
	if (!rc) {
		rc = mdb_del(txn, db->node_chunks, &bk, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0; /* a database older than this index */
	}
	return db_err(rc);
}

int db_chunk_forget(MDB_txn *txn, struct db *db, const uint8_t *id)
{
	uint32_t nodes[64];
	MDB_cursor *cur;
	int n, err = db_err(mdb_cursor_open(txn, db->chunks, &cur));

	/* A chunk has a handful of locations; loop in case of many. */
	while (!err) {
		n = db_chunk_nodes(cur, id, nodes, 64);
		if (n <= 0) {
			err = n;
			break;
		}
		for (int i = 0; i < n && !err; i++)
			err = db_chunk_del(txn, db, id, nodes[i]);
	}
	mdb_cursor_close(cur);
	if (!err) {
		MDB_val k = { BLOBCR_ID_SIZE, (void *)id };
		int rc = mdb_del(txn, db->writers, &k, NULL);

		err = rc == MDB_NOTFOUND ? 0 : db_err(rc);
	}
	return err;
}

/* ---- nodes ---- */

#define NODE_REC_V1 1

/*
 * A node record: format u8, state u8, uuid, address and domain as u16
 * length and bytes.  Older databases stored the bare address.
 */
int db_node_put(MDB_txn *txn, struct db *db, const struct node_rec *n)
{
	size_t al = strlen(n->addr), dl = strlen(n->domain);
	uint8_t vb[2 + BLOBCR_UUID_SIZE + 4 + BLOBCR_ADDR_MAX + BLOBCR_DOMAIN_MAX];
	uint8_t kb[4];
	MDB_val k = { 4, kb }, v = { 2 + BLOBCR_UUID_SIZE + 4 + al + dl, vb };
	MDB_val ak = { al, (void *)n->addr };
	int rc;

	put_be32(kb, n->id);
	vb[0] = NODE_REC_V1;
	vb[1] = n->state;
	memcpy(vb + 2, n->uuid, BLOBCR_UUID_SIZE);
	vb[18] = (uint8_t)(al >> 8);
	vb[19] = (uint8_t)al;
	memcpy(vb + 20, n->addr, al);
	vb[20 + al] = (uint8_t)(dl >> 8);
	vb[21 + al] = (uint8_t)dl;
	memcpy(vb + 22 + al, n->domain, dl);
	rc = mdb_put(txn, db->nodes, &k, &v, 0);
	if (!rc)
		rc = mdb_put(txn, db->node_addrs, &ak, &k, 0);
	return db_err(rc);
}

int db_node_decode(const MDB_val *k, const MDB_val *v, struct node_rec *n)
{
	const uint8_t *p = v->mv_data;
	size_t al, dl;

	memset(n, 0, sizeof(*n));
	if (k->mv_size != 4)
		return -EUCLEAN;
	n->id = get_be32(k->mv_data);
	if (v->mv_size < 20 || p[0] != NODE_REC_V1) {
		/* The bare address of an older database: an active node. */
		if (v->mv_size >= sizeof(n->addr))
			return -EUCLEAN;
		memcpy(n->addr, p, v->mv_size);
		n->state = NODE_ACTIVE;
		return 0;
	}
	al = (size_t)p[18] << 8 | p[19];
	if (20 + al + 2 > v->mv_size || al >= sizeof(n->addr))
		return -EUCLEAN;
	dl = (size_t)p[20 + al] << 8 | p[21 + al];
	if (22 + al + dl != v->mv_size || dl >= sizeof(n->domain) ||
	    p[1] < NODE_ACTIVE || p[1] > NODE_REMOVED)
		return -EUCLEAN;
	n->state = p[1];
	memcpy(n->uuid, p + 2, BLOBCR_UUID_SIZE);
	memcpy(n->addr, p + 20, al);
	memcpy(n->domain, p + 22 + al, dl);
	return 0;
}

/* ---- meta counters ---- */

int db_meta_get(MDB_txn *txn, struct db *db, const char *key, uint64_t *val)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, db->meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		*val = 0;
		return 0;
	}
	if (rc)
		return db_err(rc);
	if (v.mv_size != 8)
		return -EUCLEAN;
	*val = get_be64(v.mv_data);
	return 0;
}

int db_meta_put(MDB_txn *txn, struct db *db, const char *key, uint64_t val)
{
	uint8_t vb[8];
	MDB_val k = { strlen(key), (void *)key }, v = { 8, vb };

	put_be64(vb, val);
	return db_err(mdb_put(txn, db->meta, &k, &v, 0));
}
