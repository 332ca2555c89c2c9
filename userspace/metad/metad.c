// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-metad - the version manager of the dm-blobcr repository: images,
 * versions, the extent map, chunk locations, storage nodes, checkpoint
 * groups and garbage collection, in LMDB (db.h), served over nanomsg.
 *
 * Several threads serve requests: lookups go on while a publish or a gc
 * runs, and LMDB serializes the write transactions.  Each mutating request
 * is one LMDB write transaction: it is durable when the reply is sent, and a
 * crash before the commit leaves no trace of it.
 *
 * Shared state outside LMDB: the node table, append-only (entries never
 * move; nnodes and the heartbeat fields are read and written atomically;
 * appends under nodes_mu), and gc_mu, which lets one gc run at a time.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "db.h"
#include "repair.h"

#define MAX_BATCH 65536 /* extents or ids per request */
#define DELETE_BATCH 4096
#define MAX_NODES 4096
#define SERVER_THREADS 4

struct node {
	uint32_t id; /* set before the node is published in nnodes */
	char addr[BLOBCR_ADDR_MAX]; /* likewise */
	/* atomic: */
	uint64_t last_seen; /* blobcr_now_ms() of the last heartbeat, 0: never */
	uint64_t capacity, used, chunks;
};

struct metad {
	struct db db;
	int replicas;
	uint64_t dead_after_ms;
	int publish_delay_ms; /* test hook: stall publishes before commit */
	int node_timeout_ms;
	int repair_s; /* re-replication check period, 0: never */
	struct node *nodes; /* MAX_NODES entries */
	size_t nnodes; /* atomic, release after the entry is filled */
	pthread_mutex_t nodes_mu; /* appends and registrations */
	pthread_mutex_t gc_mu; /* one gc at a time */
	struct blobcr_server srv;
	volatile sig_atomic_t stop;
};

/* ---- nodes ---- */

static size_t node_count(struct metad *m)
{
	return __atomic_load_n(&m->nnodes, __ATOMIC_ACQUIRE);
}

static struct node *node_find(struct metad *m, uint32_t id)
{
	size_t n = node_count(m);

	for (size_t i = 0; i < n; i++)
		if (m->nodes[i].id == id)
			return &m->nodes[i];
	return NULL;
}

static uint64_t node_last_seen(const struct node *n)
{
	return __atomic_load_n(&n->last_seen, __ATOMIC_RELAXED);
}

static bool node_live(struct metad *m, uint32_t id)
{
	struct node *n = node_find(m, id);
	uint64_t seen = n ? node_last_seen(n) : 0;

	return seen && blobcr_now_ms() - seen <= m->dead_after_ms;
}

/* Append a node.  Caller holds nodes_mu (or is alone, at startup). */
static struct node *node_add(struct metad *m, uint32_t id, const char *addr)
{
	struct node *nv;

	if (m->nnodes == MAX_NODES)
		return NULL;
	nv = &m->nodes[m->nnodes];
	memset(nv, 0, sizeof(*nv));
	nv->id = id;
	snprintf(nv->addr, sizeof(nv->addr), "%s", addr);
	/* Readers see the entry whole once they see the new count. */
	__atomic_store_n(&m->nnodes, m->nnodes + 1, __ATOMIC_RELEASE);
	return nv;
}

static int load_nodes(struct metad *m)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, err = 0;

	rc = mdb_txn_begin(m->db.env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return db_err(rc);
	rc = mdb_cursor_open(txn, m->db.nodes, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return db_err(rc);
	}
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char addr[BLOBCR_ADDR_MAX];

		if (k.mv_size != 4 || v.mv_size >= sizeof(addr))
			continue;
		memcpy(addr, v.mv_data, v.mv_size);
		addr[v.mv_size] = 0;
		if (!node_add(m, get_be32(k.mv_data), addr))
			err = -ENOMEM;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

/* ---- small helpers ---- */

static int txn_begin(struct metad *m, unsigned int flags, MDB_txn **txn)
{
	return db_err(mdb_txn_begin(m->db.env, NULL, flags, txn));
}

/* Commit @txn if @err is 0, else abort it.  Return: the outcome. */
static int txn_end(MDB_txn *txn, int err)
{
	if (err) {
		mdb_txn_abort(txn);
		return err;
	}
	return db_err(mdb_txn_commit(txn));
}

static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-:+", *s)))
			return false;
	return true;
}

static uint64_t image_extents(const struct image *img)
{
	return (img->size + img->extent_size - 1) / img->extent_size;
}

/* Resolve version 0 to the latest and check that it exists. */
static int resolve_version(MDB_txn *txn, struct metad *m,
			   const struct image *img, uint32_t *ver)
{
	struct version v;

	if (*ver == 0)
		*ver = img->latest;
	if (*ver == 0)
		return 0; /* the empty version every image starts with */
	return db_version_get(txn, &m->db, img->id, *ver, &v);
}

/* Read the image the request names; on failure @img holds just that name. */
static int read_image(MDB_txn *txn, struct metad *m, struct blobcr_dec *req,
		      struct image *img)
{
	char name[BLOBCR_NAME_MAX] = "";
	int err = blobcr_dec_str(req, name, sizeof(name));

	if (!err)
		err = db_image_get(txn, &m->db, name, img);
	if (err) {
		memset(img, 0, sizeof(*img));
		memcpy(img->name, name, sizeof(name));
	}
	return err;
}

/*
 * Many requests start with an image's name: begin a transaction and read
 * that image.  On failure no transaction is left open.
 */
static int begin_on_image(struct metad *m, unsigned int flags,
			  struct blobcr_dec *req, MDB_txn **txn,
			  struct image *img)
{
	int err = txn_begin(m, flags, txn);

	if (err)
		return err;
	err = read_image(*txn, m, req, img);
	if (err)
		mdb_txn_abort(*txn);
	return err;
}

/* ---- heartbeats and the node list ---- */

static int register_node(struct metad *m, const char *addr, uint32_t *id)
{
	MDB_val k = { strlen(addr), (void *)addr }, v;
	uint8_t vb[4];
	uint64_t next;
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	err = db_meta_get(txn, &m->db, "next_node", &next);
	if (!err) {
		*id = (uint32_t)(next ? next : 1);
		put_be32(vb, *id);
		v.mv_size = 4;
		v.mv_data = vb;
		err = db_err(mdb_put(txn, m->db.node_addrs, &k, &v, 0));
	}
	if (!err)
		err = db_err(mdb_put(txn, m->db.nodes, &v, &k, 0));
	if (!err)
		err = db_meta_put(txn, &m->db, "next_node", *id + 1);
	err = txn_end(txn, err);
	if (!err && !node_add(m, *id, addr))
		err = -ENOMEM;
	if (!err)
		log_info("new storage node %" PRIu32 " at %s", *id, addr);
	return err;
}

static struct node *node_by_addr(struct metad *m, const char *addr)
{
	size_t n = node_count(m);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(m->nodes[i].addr, addr))
			return &m->nodes[i];
	return NULL;
}

static int do_heartbeat(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	char addr[BLOBCR_ADDR_MAX];
	struct node *n = NULL;
	uint64_t cap, used, chunks;
	uint32_t id = 0;
	int err = blobcr_dec_str(req, addr, sizeof(addr));

	cap = blobcr_dec_u64(req);
	used = blobcr_dec_u64(req);
	chunks = blobcr_dec_u64(req);
	err = err ? err : blobcr_dec_end(req);
	if (err)
		return err;
	n = node_by_addr(m, addr);
	if (!n) {
		pthread_mutex_lock(&m->nodes_mu);
		n = node_by_addr(m, addr); /* a racing first heartbeat? */
		if (!n) {
			err = register_node(m, addr, &id);
			n = err ? NULL : node_find(m, id);
		}
		pthread_mutex_unlock(&m->nodes_mu);
		if (err)
			return err;
	}
	if (!node_live(m, n->id))
		log_info("node %" PRIu32 " (%s) is live", n->id, n->addr);
	__atomic_store_n(&n->last_seen, blobcr_now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&n->capacity, cap, __ATOMIC_RELAXED);
	__atomic_store_n(&n->used, used, __ATOMIC_RELAXED);
	__atomic_store_n(&n->chunks, chunks, __ATOMIC_RELAXED);
	blobcr_enc_u32(reply, n->id);
	return reply->err;
}

static int do_node_list(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	size_t count = node_count(m);
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	blobcr_enc_u8(reply, (uint8_t)m->replicas);
	blobcr_enc_u32(reply, (uint32_t)count);
	for (size_t i = 0; i < count; i++) {
		struct node *n = &m->nodes[i];
		uint64_t seen = node_last_seen(n), now = blobcr_now_ms();

		blobcr_enc_u32(reply, n->id);
		blobcr_enc_u8(reply, node_live(m, n->id) ? BLOBCR_NODE_LIVE :
							   BLOBCR_NODE_DEAD);
		blobcr_enc_str(reply, n->addr);
		blobcr_enc_u64(reply, seen ? (now > seen ? now - seen : 0) : UINT64_MAX);
		blobcr_enc_u64(reply, __atomic_load_n(&n->capacity, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->used, __ATOMIC_RELAXED));
		blobcr_enc_u64(reply, __atomic_load_n(&n->chunks, __ATOMIC_RELAXED));
	}
	return reply->err;
}

/* ---- list replies ---- */

/*
 * A list reply leads with its count, known only once every record is
 * encoded: reserve it, then fill it in.
 */
static size_t enc_count_slot(struct blobcr_enc *reply)
{
	size_t off = reply->len; /* the buffer may move: remember an offset */

	blobcr_enc_u32(reply, 0);
	return off;
}

static void enc_count_fill(struct blobcr_enc *reply, size_t off, uint32_t n)
{
	if (!reply->err)
		put_be32(reply->buf + off, n);
}

/* Encodes one record of a table: 1 if it did, 0 to pass it over, or -errno. */
typedef int (*enc_record_fn)(MDB_txn *txn, struct metad *m, const MDB_val *k,
			     const MDB_val *v, struct blobcr_enc *reply);

/* Answer an empty request with a count, then every record of table @dbi. */
static int reply_table(struct metad *m, struct blobcr_dec *req, MDB_dbi dbi,
		       enc_record_fn enc_record, struct blobcr_enc *reply)
{
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k, v;
	uint32_t n = 0;
	size_t count_off;
	int err = blobcr_dec_end(req);

	if (err || (err = txn_begin(m, MDB_RDONLY, &txn)))
		return err;
	err = db_err(mdb_cursor_open(txn, dbi, &cur));
	count_off = enc_count_slot(reply);
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int rc = enc_record(txn, m, &k, &v, reply);

		if (rc < 0)
			err = rc;
		else
			n += rc;
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (!err)
		enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}

/* ---- images ---- */

static int new_image(MDB_txn *txn, struct metad *m, const char *name,
		     struct image *img)
{
	struct image old;
	uint64_t next;
	int err;

	if (!valid_name(name) || strlen(name) >= BLOBCR_NAME_MAX)
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

static int do_image_create(struct metad *m, struct blobcr_dec *req)
{
	char name[BLOBCR_NAME_MAX];
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
	err = txn_end(txn, err);
	if (!err)
		log_info("image %s created: %" PRIu64 " bytes, extents of %" PRIu32,
			 name, size, ext);
	return err;
}

static int do_image_clone(struct metad *m, struct blobcr_dec *req)
{
	char dst[BLOBCR_NAME_MAX];
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
	err = txn_end(txn, err);
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

static int do_image_info(struct metad *m, struct blobcr_dec *req,
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
	mdb_txn_abort(txn);
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

static int do_image_list(struct metad *m, struct blobcr_dec *req,
			 struct blobcr_enc *reply)
{
	return reply_table(m, req, m->db.images, enc_image_record, reply);
}

static int do_version_list(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v;
	struct image img;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint32_t n = 0;
	size_t count_off;
	int rc, err = begin_on_image(m, MDB_RDONLY, req, &txn, &img);

	if (err)
		return err;
	err = blobcr_dec_end(req);
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.versions, &cur));
	if (err) {
		mdb_txn_abort(txn);
		return err;
	}
	count_off = enc_count_slot(reply);
	put_be64(kb, img.id);
	put_be32(kb + 8, 0);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && !err && k.mv_size == 12 && get_be64(k.mv_data) == img.id;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
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
		n++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (!err)
		enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}

/* ---- lookups ---- */

/* Encode where a chunk lives: live replicas first. */
static int enc_locations(struct metad *m, MDB_cursor *ccur,
			 struct blobcr_enc *e, const uint8_t *id, bool live_only)
{
	uint32_t nodes[BLOBCR_MAX_REPLICAS * 2], out[BLOBCR_MAX_REPLICAS];
	int n = db_chunk_nodes(ccur, id, nodes, BLOBCR_MAX_REPLICAS * 2);
	int k = 0;

	if (n < 0)
		return n;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n && k < BLOBCR_MAX_REPLICAS; i++)
			if (node_live(m, nodes[i]) == (pass == 0) &&
			    (pass == 0 || !live_only))
				out[k++] = nodes[i];
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

static int do_lookup(struct metad *m, struct blobcr_dec *req,
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
	mdb_txn_abort(txn);
	return err ? err : reply->err;
}

static int gc_epoch(MDB_txn *txn, struct metad *m, uint64_t *epoch)
{
	return db_meta_get(txn, &m->db, "gc_epoch", epoch);
}

static bool chunk_doomed(MDB_txn *txn, struct metad *m, const uint8_t *id)
{
	MDB_val k = { BLOBCR_ID_SIZE, (void *)id }, v;

	return mdb_get(txn, m->db.doomed, &k, &v) == 0;
}

static int do_chunk_locate(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply)
{
	uint32_t n = blobcr_dec_u32(req);
	MDB_cursor *ccur;
	MDB_txn *txn;
	uint64_t epoch;
	int err;

	if (req->err || n > MAX_BATCH || req->left != (size_t)n * BLOBCR_ID_SIZE)
		return -EBADMSG;
	err = txn_begin(m, MDB_RDONLY, &txn);
	if (err)
		return err;
	err = gc_epoch(txn, m, &epoch);
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	if (err) {
		mdb_txn_abort(txn);
		return err;
	}
	blobcr_enc_u64(reply, epoch);
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n && !err; i++) {
		const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);

		if (chunk_doomed(txn, m, id))
			blobcr_enc_u8(reply, 0);
		else
			err = enc_locations(m, ccur, reply, id, true);
	}
	mdb_cursor_close(ccur);
	mdb_txn_abort(txn);
	return err ? err : reply->err;
}

/* ---- publish ---- */

/* Record one data entry's locations; refuse it without R live replicas. */
static int publish_chunk(MDB_txn *txn, struct metad *m, MDB_cursor *ccur,
			 struct blobcr_dec *req, const uint8_t *id)
{
	uint32_t nodes[BLOBCR_MAX_REPLICAS * 2];
	uint8_t nrep = blobcr_dec_u8(req);
	int n, live = 0, err = 0;

	if (nrep > BLOBCR_MAX_REPLICAS)
		return -EBADMSG;
	for (uint8_t i = 0; i < nrep && !err; i++) {
		uint32_t node = blobcr_dec_u32(req);

		if (req->err)
			return req->err;
		if (!node_find(m, node))
			return -EINVAL;
		err = db_chunk_add(txn, &m->db, id, node);
	}
	if (err)
		return err;
	if (chunk_doomed(txn, m, id))
		return -EAGAIN;
	n = db_chunk_nodes(ccur, id, nodes, BLOBCR_MAX_REPLICAS * 2);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		live += node_live(m, nodes[i]);
	return live >= m->replicas ? 0 : -EHOSTDOWN;
}

static int publish_entries(MDB_txn *txn, struct metad *m,
			   struct blobcr_dec *req, const struct image *img,
			   uint32_t ver, uint32_t n)
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

			err = id ? publish_chunk(txn, m, ccur, req, id) : req->err;
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

static int do_publish(struct metad *m, struct blobcr_dec *req,
		      struct blobcr_enc *reply)
{
	struct version ver = { 0 };
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
		err = publish_entries(txn, m, req, &img, ver.version, n);
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
	log_info("published %s@%" PRIu32 " (%" PRIu32 " extents changed)",
		 img.name, ver.version, n);
	blobcr_enc_u32(reply, ver.version);
	return reply->err;
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

static void access_key(uint8_t kb[12], uint64_t image, uint32_t ver)
{
	put_be64(kb, image);
	put_be32(kb + 8, ver);
}

/* Forget the access order of image@ver, if there is one. */
static int access_del(MDB_txn *txn, struct metad *m, uint64_t image,
		      uint32_t ver)
{
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb };
	int err;

	access_key(kb, image, ver);
	err = db_err(mdb_del(txn, m->db.access, &k, NULL));
	return err == -ENOENT ? 0 : err;
}

static int delete_version(MDB_txn *txn, struct metad *m, struct image *img,
			  uint32_t ver)
{
	struct version v;
	int err = db_version_get(txn, &m->db, img->id, ver, &v);

	if (!err)
		err = check_no_clone(txn, m, img, ver);
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

static int do_image_delete(struct metad *m, struct blobcr_dec *req,
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
			err = delete_prefix(txn, m->db.extmap, img.id);
		if (!err)
			err = delete_prefix(txn, m->db.versions, img.id);
		if (!err)
			err = delete_prefix(txn, m->db.access, img.id);
		if (!err)
			err = db_image_del(txn, &m->db, &img);
	}
	err = txn_end(txn, err);
	if (!err && ver)
		log_info("deleted %s@%" PRIu32, img.name, ver);
	else if (!err)
		log_info("deleted image %s", img.name);
	return err;
}

/* ---- garbage collection ---- */

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

/* Mark: every chunk id some extent entry of some version refers to. */
static int gc_mark(MDB_txn *txn, struct metad *m, struct idset *live)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int err = db_err(mdb_cursor_open(txn, m->db.extmap, &cur));

	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if (v.mv_size == 1 + BLOBCR_ID_SIZE &&
		    *(uint8_t *)v.mv_data == BLOBCR_EXT_DATA)
			err = idset_add(live, (uint8_t *)v.mv_data + 1);
	mdb_cursor_close(cur);
	if (!err && live->n)
		qsort(live->ids, live->n, BLOBCR_ID_SIZE, cmp_id);
	return err;
}

/* Move every unreferenced chunk from chunks to doomed. */
static int gc_doom(MDB_txn *txn, struct metad *m, const struct idset *live,
		   uint64_t *kept)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, err = db_err(mdb_cursor_open(txn, m->db.chunks, &cur));

	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     !rc && !err;) {
		uint8_t id[BLOBCR_ID_SIZE], nodes[BLOBCR_MAX_REPLICAS * 8];
		MDB_val dk = { BLOBCR_ID_SIZE, id }, dv = { 0, nodes };

		if (k.mv_size != BLOBCR_ID_SIZE) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
			continue;
		}
		memcpy(id, k.mv_data, BLOBCR_ID_SIZE);
		if (idset_has(live, id)) {
			(*kept)++;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
			continue;
		}
		/* Collect its nodes, then drop all its duplicates. */
		do {
			if (v.mv_size == 4 && dv.mv_size < sizeof(nodes)) {
				memcpy(nodes + dv.mv_size, v.mv_data, 4);
				dv.mv_size += 4;
			}
		} while (!mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP));
		err = db_err(mdb_put(txn, m->db.doomed, &dk, &dv, 0));
		if (!err)
			err = db_err(mdb_del(txn, m->db.chunks, &dk, NULL));
		k.mv_size = BLOBCR_ID_SIZE;
		k.mv_data = id;
		if (!err)
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return err;
}

/* Orphans (deletes that failed before) still unreferenced become doomed. */
static int gc_retry_orphans(MDB_txn *txn, struct metad *m)
{
	MDB_cursor *cur, *ccur;
	MDB_val k, v;
	int err = db_err(mdb_cursor_open(txn, m->db.orphans, &cur));

	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));
	while (!err && !mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
		uint8_t kb[BLOBCR_ID_SIZE + 4], node[4];
		MDB_val dk = { BLOBCR_ID_SIZE, kb }, ck = dk, cv, dv = { 4, node };

		if (k.mv_size != sizeof(kb)) {
			err = db_err(mdb_cursor_del(cur, 0));
			continue;
		}
		memcpy(kb, k.mv_data, sizeof(kb));
		memcpy(node, kb + BLOBCR_ID_SIZE, 4);
		err = db_err(mdb_cursor_del(cur, 0));
		/* Referenced again (re-uploaded since): not garbage any more. */
		if (!err && mdb_cursor_get(ccur, &ck, &cv, MDB_SET_KEY) == 0)
			continue;
		if (!err)
			err = db_err(mdb_put(txn, m->db.doomed, &dk, &dv, 0));
	}
	return err;
}

/* Phase 1, one transaction: epoch becomes odd, garbage becomes doomed. */
static int gc_begin(struct metad *m, uint64_t *kept)
{
	struct idset live = { 0 };
	uint64_t epoch;
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	if (err)
		return err;
	err = gc_epoch(txn, m, &epoch);
	if (!err && !(epoch & 1)) {
		err = gc_mark(txn, m, &live);
		if (!err)
			err = gc_retry_orphans(txn, m);
		if (!err)
			err = gc_doom(txn, m, &live, kept);
		if (!err)
			err = db_meta_put(txn, &m->db, "gc_epoch", epoch + 1);
	}
	free(live.ids);
	return txn_end(txn, err);
}

struct doomed_batch {
	uint8_t (*ids)[BLOBCR_ID_SIZE];
	uint32_t *nodes; /* the node of each entry */
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
		for (size_t off = 0; off + 4 <= v.mv_size && !err; off += 4) {
			if (b->n == cap) {
				err = doomed_grow(b, cap ? cap * 2 : 1024);
				if (err)
					break;
				cap = cap ? cap * 2 : 1024;
			}
			memcpy(b->ids[b->n], k.mv_data, BLOBCR_ID_SIZE);
			b->nodes[b->n++] = get_be32((uint8_t *)v.mv_data + off);
		}
	}
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return err;
}

/* Send DELETE for @n ids to @node.  Return: 0 or -errno. */
static int node_delete(struct metad *m, struct node *node,
		       uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n)
{
	int sock = blobcr_req_socket(node->addr, m->node_timeout_ms);
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err;

	if (sock < 0)
		return sock;
	err = blobcr_enc_init(&e, 4 + n * BLOBCR_ID_SIZE);
	if (!err) {
		blobcr_enc_u32(&e, (uint32_t)n);
		blobcr_enc_bytes(&e, ids, n * BLOBCR_ID_SIZE);
		err = blobcr_call(sock, BLOBCR_OP_DELETE, &e, &msg, &d);
		if (msg)
			nn_freemsg(msg);
		blobcr_enc_free(&e);
	}
	nn_close(sock);
	return err;
}

/*
 * Phase 2: delete doomed chunks on their nodes, node by node; what fails
 * (node dead or unreachable) is recorded in orphans for the next gc.
 * Phase 3, one transaction: doomed emptied, epoch even again.
 */
/* Record the deletes that failed, for the next gc to retry. */
static int gc_record_orphans(MDB_txn *txn, struct metad *m,
			     const struct doomed_batch *b, const bool *failed)
{
	int err = 0;

	for (size_t i = 0; i < b->n && !err; i++) {
		uint8_t kb[BLOBCR_ID_SIZE + 4];
		MDB_val k = { sizeof(kb), kb }, v = { 0, kb };

		if (!failed[i])
			continue;
		memcpy(kb, b->ids[i], BLOBCR_ID_SIZE);
		put_be32(kb + BLOBCR_ID_SIZE, b->nodes[i]);
		err = db_err(mdb_put(txn, m->db.orphans, &k, &v, 0));
	}
	return err;
}

/*
 * Delete @b's chunks held by @node, DELETE_BATCH ids per request; mark in
 * @failed the entries whose delete failed.  @sel and @idx are scratch.
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
		log_warn("gc: node %" PRIu32 " (%s): %s; %zu deletes kept for the next gc",
			 node->id, node->addr, strerror(-derr), chunk);
		st->delete_failures += chunk;
		for (size_t j = off; j < off + chunk; j++)
			failed[idx[j]] = true;
	}
}

/*
 * Phase 2, outside any write transaction (publishes and other writes go
 * on, refused only if they overlap the gc): delete doomed chunks on their
 * nodes, node by node.  Phase 3, one transaction: what failed (node dead or
 * unreachable) goes to orphans for the next gc, doomed is emptied and the
 * epoch becomes even again.
 */
static int gc_finish(struct metad *m, struct blobcr_gc_stats *st)
{
	struct doomed_batch b = { 0 };
	uint8_t (*sel)[BLOBCR_ID_SIZE] = NULL;
	size_t *idx = NULL, count;
	bool *failed = NULL;
	MDB_txn *txn;
	uint64_t epoch;
	int err = gc_load_doomed(m, &b);

	if (!err) {
		sel = malloc((b.n ? b.n : 1) * BLOBCR_ID_SIZE);
		idx = malloc((b.n ? b.n : 1) * sizeof(*idx));
		failed = calloc(b.n ? b.n : 1, sizeof(*failed));
		err = sel && idx && failed ? 0 : -ENOMEM;
	}
	count = node_count(m);
	for (size_t ni = 0; !err && ni < count; ni++)
		gc_delete_on_node(m, &m->nodes[ni], &b, sel, idx, failed, st);
	if (!err)
		err = txn_begin(m, 0, &txn);
	if (!err) {
		err = gc_record_orphans(txn, m, &b, failed);
		if (!err)
			err = db_err(mdb_drop(txn, m->db.doomed, 0));
		if (!err)
			err = gc_epoch(txn, m, &epoch);
		if (!err)
			err = db_meta_put(txn, &m->db, "gc_epoch", (epoch | 1) + 1);
		err = txn_end(txn, err);
	}
	/* doomed holds one record per id, loaded as one entry per node */
	for (size_t i = 0; !err && i < b.n; i++)
		if (!i || memcmp(b.ids[i], b.ids[i - 1], BLOBCR_ID_SIZE))
			st->chunks_deleted++;
	free(sel);
	free(idx);
	free(failed);
	free(b.ids);
	free(b.nodes);
	return err;
}

static int do_gc(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply)
{
	struct blobcr_gc_stats st = { 0 };
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	/* A second gc would delete what the first one's commits re-upload. */
	pthread_mutex_lock(&m->gc_mu);
	err = gc_begin(m, &st.chunks_kept);
	if (!err)
		err = gc_finish(m, &st);
	pthread_mutex_unlock(&m->gc_mu);
	if (err) {
		log_err("gc failed: %s", strerror(-err));
		return err;
	}
	log_info("gc: %" PRIu64 " chunks deleted, %" PRIu64 " kept, %" PRIu64
		 " node deletes deferred", st.chunks_deleted, st.chunks_kept,
		 st.delete_failures);
	blobcr_enc_u64(reply, st.chunks_deleted);
	blobcr_enc_u64(reply, st.chunks_kept);
	blobcr_enc_u64(reply, st.delete_failures);
	return reply->err;
}

/* ---- replication upkeep ---- */

static int do_chunk_add_locations(struct metad *m, struct blobcr_dec *req,
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

static int do_chunk_drop_location(struct metad *m, struct blobcr_dec *req)
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

static int do_under_replicated(struct metad *m, struct blobcr_dec *req,
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

/* ---- checkpoint groups ---- */

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

static int do_group_publish(struct metad *m, struct blobcr_dec *req)
{
	char name[BLOBCR_NAME_MAX];
	struct blobcr_enc val;
	uint32_t n;
	MDB_txn *txn;
	MDB_val k, v;
	int err = blobcr_dec_str(req, name, sizeof(name));

	n = blobcr_dec_u32(req);
	if (err || req->err || n == 0 || n > MAX_BATCH || !valid_name(name))
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
	err = txn_end(txn, err);
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

static int do_group_list(struct metad *m, struct blobcr_dec *req,
			 struct blobcr_enc *reply)
{
	return reply_table(m, req, m->db.groups, enc_group_record, reply);
}

/* ---- access orders, for adaptive prefetch ---- */

/*
 * Record the order in which a deployment of image@version first touched
 * its extents.  The first record of a version stays (-EEXIST afterwards):
 * it is what later deployments of that version prefetch by.
 */
static int do_access_put(struct metad *m, struct blobcr_dec *req)
{
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
	err = txn_end(txn, err);
	if (!err)
		log_info("access order of %s@%" PRIu32 " recorded (%" PRIu32 " extents)",
			 img.name, ver, n);
	return err;
}

static int do_access_get(struct metad *m, struct blobcr_dec *req,
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
	mdb_txn_abort(txn);
	return err ? err : reply->err;
}

/* ---- dispatch ---- */

static int handle(void *ctx, const struct blobcr_hdr *h, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct metad *m = ctx;

	switch (h->opcode) {
	case BLOBCR_OP_PING:
		return blobcr_dec_end(req);
	case BLOBCR_OP_NODE_HEARTBEAT:
		return do_heartbeat(m, req, reply);
	case BLOBCR_OP_NODE_LIST:
		return do_node_list(m, req, reply);
	case BLOBCR_OP_IMAGE_CREATE:
		return do_image_create(m, req);
	case BLOBCR_OP_IMAGE_CLONE:
		return do_image_clone(m, req);
	case BLOBCR_OP_IMAGE_LIST:
		return do_image_list(m, req, reply);
	case BLOBCR_OP_IMAGE_INFO:
		return do_image_info(m, req, reply);
	case BLOBCR_OP_VERSION_LIST:
		return do_version_list(m, req, reply);
	case BLOBCR_OP_LOOKUP:
		return do_lookup(m, req, reply);
	case BLOBCR_OP_CHUNK_LOCATE:
		return do_chunk_locate(m, req, reply);
	case BLOBCR_OP_PUBLISH:
		return do_publish(m, req, reply);
	case BLOBCR_OP_VERSION_DELETE:
	case BLOBCR_OP_IMAGE_DELETE:
		return do_image_delete(m, req, h->opcode);
	case BLOBCR_OP_GC:
		return do_gc(m, req, reply);
	case BLOBCR_OP_CHUNK_ADD_LOCATIONS:
		return do_chunk_add_locations(m, req, reply);
	case BLOBCR_OP_CHUNK_DROP_LOCATION:
		return do_chunk_drop_location(m, req);
	case BLOBCR_OP_UNDER_REPLICATED:
		return do_under_replicated(m, req, reply);
	case BLOBCR_OP_GROUP_PUBLISH:
		return do_group_publish(m, req);
	case BLOBCR_OP_GROUP_LIST:
		return do_group_list(m, req, reply);
	case BLOBCR_OP_ACCESS_PUT:
		return do_access_put(m, req);
	case BLOBCR_OP_ACCESS_GET:
		return do_access_get(m, req, reply);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blobcr-metad --listen ADDR --data DIR [options]\n"
		"The version manager of the dm-blobcr repository.\n\n"
		"  -l, --listen ADDR          nanomsg address to serve (tcp://IP:PORT)\n"
		"  -d, --data DIR             directory of the LMDB database\n"
		"  -r, --replicas R           replicas per chunk (default 2)\n"
		"  -D, --dead-after-ms N      a node without heartbeat for N ms is dead\n"
		"                             (default 5000)\n"
		"  -T, --node-timeout-ms N    timeout of gc deletes on nodes (default 10000)\n"
		"  -R, --repair-interval-s N  while a node is dead, re-replicate every\n"
		"                             N s (default 10, 0: only on request)\n"
		"      --test-publish-delay-ms N\n"
		"                             test hook: stall each publish N ms before commit\n"
		"  -v, --verbose              debug logging\n"
		"  -h, --help                 this help\n");
}

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	return blobcr_parse_u64(s, out) || *out > max ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct metad *m,
		      const char **listen, const char **data, int *verbose)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "dead-after-ms", required_argument, NULL, 'D' },
		{ "node-timeout-ms", required_argument, NULL, 'T' },
		{ "repair-interval-s", required_argument, NULL, 'R' },
		{ "test-publish-delay-ms", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "l:d:r:D:T:R:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': *listen = optarg; break;
		case 'd': *data = optarg; break;
		case 'v': *verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'r':
			if (parse_num(optarg, BLOBCR_MAX_REPLICAS, &v) || !v)
				goto bad;
			m->replicas = (int)v;
			break;
		case 'D':
			if (parse_num(optarg, 3600000, &v) || !v)
				goto bad;
			m->dead_after_ms = v;
			break;
		case 'T':
			if (parse_num(optarg, 3600000, &v) || !v)
				goto bad;
			m->node_timeout_ms = (int)v;
			break;
		case 'R':
			if (parse_num(optarg, 86400, &v))
				goto bad;
			m->repair_s = (int)v;
			break;
		case 'P':
			if (parse_num(optarg, 3600000, &v))
				goto bad;
			m->publish_delay_ms = (int)v;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!*listen || !*data || optind != argc) {
		fprintf(stderr, "blobcr-metad: --listen and --data are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "blobcr-metad: bad value '%s' for -%c\n", optarg, c);
	return -EINVAL;
}

/* A gc interrupted by a crash is finished before serving. */
static int resume_gc(struct metad *m)
{
	struct blobcr_gc_stats st = { 0 };
	uint64_t epoch;
	MDB_txn *txn;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = gc_epoch(txn, m, &epoch);
	mdb_txn_abort(txn);
	if (err || !(epoch & 1))
		return err;
	log_warn("finishing the gc a crash interrupted (nodes are not yet "
		 "live: their deletes are deferred to the next gc)");
	return gc_finish(m, &st);
}

int main(int argc, char **argv)
{
	struct metad m = { .replicas = 2, .dead_after_ms = 5000,
			   .node_timeout_ms = 10000, .repair_s = 10 };
	struct repairer rep;
	const char *listen = NULL, *data = NULL;
	int verbose = 0, err;

	if (parse_args(argc, argv, &m, &listen, &data, &verbose))
		return 2;
	blobcr_log_init("blobcr-metad", verbose ? BLOBCR_LOG_DEBUG : BLOBCR_LOG_INFO);
	if (blobcr_signals_init(&m.stop))
		return 1;
	m.nodes = calloc(MAX_NODES, sizeof(*m.nodes));
	if (!m.nodes || pthread_mutex_init(&m.nodes_mu, NULL) ||
	    pthread_mutex_init(&m.gc_mu, NULL)) {
		log_err("out of memory");
		return 1;
	}
	err = db_open(data, &m.db);
	if (err) {
		log_err("cannot open the database in %s: %s", data, strerror(-err));
		return 1;
	}
	err = load_nodes(&m);
	if (!err)
		err = resume_gc(&m);
	if (err) {
		log_err("cannot start: %s", strerror(-err));
		db_close(&m.db);
		return 1;
	}
	m.srv = (struct blobcr_server){ .addr = listen, .threads = SERVER_THREADS,
					.handler = handle, .ctx = &m,
					.stop = &m.stop };
	if (m.repair_s && repairer_start(&rep, listen, m.repair_s, &m.stop)) {
		log_err("cannot start the re-replication thread");
		db_close(&m.db);
		return 1;
	}
	log_info("serving %s from %s, %d replicas per chunk", listen, data,
		 m.replicas);
	err = blobcr_server_run(&m.srv);
	if (err)
		log_err("cannot serve %s: %s", listen, strerror(-err));
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
	if (m.repair_s)
		repairer_join(&rep);
	db_close(&m.db);
	free(m.nodes);
	log_info("stopped");
	return err ? 1 : 0;
}
