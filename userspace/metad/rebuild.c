// SPDX-License-Identifier: GPL-2.0
/*
 * rebuild.c - `blobcr-metad --rebuild`: an empty database made again from
 * what the storage nodes hold (metad.h, manifests.c).
 *
 * metad serves heartbeats meanwhile (other requests get -EAGAIN): once the
 * nodes have joined (no new one for a few seconds, or --rebuild-wait-s),
 * every live node's INVENTORY gives the chunk locations, and its ROOT_LIST
 * the manifests (in the node's manifest store, read with MANIFEST_GET);
 * per name, the root of the highest sequence number wins, tombstones
 * included.  Images come first (their ids, and clone parents
 * by name), then versions (records, extents, writers' domains), access
 * orders and checkpoint groups; the image records' latest, version count
 * and next version follow from the versions found.  Each object is one
 * bounded write transaction; a rebuild interrupted is started again on an
 * empty database.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

#define STABLE_MS 3000 /* no node joined for this long: they all have */
#define PAGE 65536 /* ids or roots listed at once */

struct root {
	char name[BLOBCR_ROOT_MAX];
	uint64_t seq;
	uint8_t id[BLOBCR_ID_SIZE];
	uint32_t nodes[MAX_HOLDERS]; /* the nodes that list it */
	int nnodes;
};

struct roots {
	struct root *v;
	size_t n, cap;
};

/* A clone and its source's name, joined once every image is in. */
struct clone_of {
	char image[BLOBCR_NAME_MAX];
	char parent[BLOBCR_NAME_MAX];
};

#define REBUILDING "rebuilding" /* meta key: 1 from start to end of a rebuild */

struct rebuild_stats {
	size_t images, versions, access, groups, locations, roots, skipped;
	size_t steps; /* nodes read and manifests applied, each committed */
	uint64_t max_seq, max_image;
	struct clone_of *clones;
	size_t nclones;
};

static int cmp_root(const void *a, const void *b)
{
	const struct root *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Highest sequence number first within a name. */
	return c ? c : (x->seq < y->seq) - (x->seq > y->seq);
}

static int roots_add(struct roots *r, const char *name, uint64_t seq,
		     const uint8_t *id, const uint32_t *nodes, int nnodes)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		struct root *nv = realloc(r->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = cap;
	}
	snprintf(r->v[r->n].name, BLOBCR_ROOT_MAX, "%s", name);
	r->v[r->n].seq = seq;
	memcpy(r->v[r->n].id, id, BLOBCR_ID_SIZE);
	r->v[r->n].nnodes = nnodes < MAX_HOLDERS ? nnodes : MAX_HOLDERS;
	memcpy(r->v[r->n].nodes, nodes, (size_t)r->v[r->n].nnodes * sizeof(*nodes));
	r->n++;
	return 0;
}

/*
 * Keep, per name, the root of the highest sequence number, with every
 * node that lists that very root.
 */
static void roots_latest(struct roots *r)
{
	size_t k = 0;

	qsort(r->v, r->n, sizeof(*r->v), cmp_root);
	for (size_t i = 0; i < r->n; i++) {
		struct root *last = k ? &r->v[k - 1] : NULL;

		if (last && !strcmp(last->name, r->v[i].name)) {
			if (last->seq == r->v[i].seq &&
			    !memcmp(last->id, r->v[i].id, BLOBCR_ID_SIZE) &&
			    last->nnodes < MAX_HOLDERS && r->v[i].nnodes)
				last->nodes[last->nnodes++] = r->v[i].nodes[0];
			continue;
		}
		r->v[k++] = r->v[i];
	}
	r->n = k;
}

/* ---- what the nodes hold ---- */

/* Wait until nodes have joined and no new one came for STABLE_MS. */
static void wait_for_nodes(struct metad *m)
{
	uint64_t start = blobcr_now_ms(), changed = start;
	size_t seen = 0;

	while (!blobcr_stopping(&m->stop)) {
		size_t n = node_count(m);
		uint64_t now = blobcr_now_ms();

		if (n != seen) {
			seen = n;
			changed = now;
		}
		if (seen && now - changed >= STABLE_MS)
			break;
		if (now - start >= (uint64_t)m->rebuild_wait_s * 1000) {
			log_warn("rebuild: waited %d s for nodes, going on with %zu",
				 m->rebuild_wait_s, seen);
			break;
		}
		usleep(100 * 1000);
	}
}

/* Record that @node holds the @n chunks @ids. */
static int add_locations(struct metad *m, uint32_t node,
			 const uint8_t *ids, size_t n)
{
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	for (size_t i = 0; i < n && !err; i++) {
		int r = db_chunk_add(txn, &m->db, ids + i * BLOBCR_ID_SIZE, node);

		err = r < 0 ? r : 0;
	}
	return err ? (txn ? txn_end(txn, err) : err) : txn_end(txn, 0);
}

/* Every chunk @nd holds, as locations; every root it holds, in @r. */
static int read_node(struct metad *m, const struct node *nd, struct roots *r,
		     struct rebuild_stats *st)
{
	static const uint8_t zero[BLOBCR_ID_SIZE];
	uint8_t after[BLOBCR_ID_SIZE];
	char rafter[BLOBCR_ROOT_MAX] = "";
	bool has_after = false, more = true;
	int err = 0;

	while (!err && more) {
		struct blobcr_enc e;
		struct blobcr_dec d;
		uint32_t n = 0;
		void *msg = NULL;

		err = blobcr_enc_init(&e, 64);
		if (err)
			break;
		blobcr_enc_u8(&e, has_after);
		blobcr_enc_bytes(&e, has_after ? after : zero, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&e, PAGE);
		err = node_call(m, nd, BLOBCR_OP_INVENTORY, &e, &msg, &d);
		blobcr_enc_free(&e);
		if (!err) {
			n = blobcr_dec_u32(&d);
			if (d.err || d.left != (size_t)n * BLOBCR_ID_SIZE + 1)
				err = -EBADMSG;
		}
		if (!err && n) {
			const uint8_t *ids = blobcr_dec_bytes(&d, (size_t)n * BLOBCR_ID_SIZE);

			err = add_locations(m, nd->id, ids, n);
			memcpy(after, ids + (size_t)(n - 1) * BLOBCR_ID_SIZE,
			       BLOBCR_ID_SIZE);
			has_after = true;
			st->locations += n;
		}
		more = !err && blobcr_dec_u8(&d);
		if (msg)
			nn_freemsg(msg);
	}
	for (more = true, has_after = false; !err && more;) {
		struct blobcr_enc e;
		struct blobcr_dec d;
		uint32_t n = 0;
		void *msg = NULL;

		err = blobcr_enc_init(&e, 256);
		if (err)
			break;
		blobcr_enc_u8(&e, has_after);
		blobcr_enc_str(&e, rafter);
		blobcr_enc_u32(&e, PAGE);
		err = node_call(m, nd, BLOBCR_OP_ROOT_LIST, &e, &msg, &d);
		blobcr_enc_free(&e);
		if (!err)
			n = blobcr_dec_u32(&d);
		for (uint32_t i = 0; !err && i < n; i++) {
			char name[BLOBCR_ROOT_MAX];
			uint64_t seq;
			const uint8_t *id;

			err = blobcr_dec_str(&d, name, sizeof(name));
			seq = blobcr_dec_u64(&d);
			id = blobcr_dec_bytes(&d, BLOBCR_ID_SIZE);
			if (!err && !id)
				err = -EBADMSG;
			if (!err)
				err = roots_add(r, name, seq, id, &nd->id, 1);
			snprintf(rafter, sizeof(rafter), "%s", name);
			has_after = true;
		}
		more = !err && blobcr_dec_u8(&d);
		if (!err && d.err)
			err = d.err;
		if (msg)
			nn_freemsg(msg);
	}
	return err;
}

/* ---- what the manifests say ---- */

/* Check the head of manifest @r (in @d) and return its kind, or -errno. */
static int parse_head(struct blobcr_dec *d, const struct root *r)
{
	char name[BLOBCR_ROOT_MAX];
	const uint8_t *magic = blobcr_dec_bytes(d, 8);
	uint8_t kind = blobcr_dec_u8(d);
	uint64_t seq = blobcr_dec_u64(d);

	if (!magic || memcmp(magic, MANIFEST_MAGIC, 8) ||
	    blobcr_dec_str(d, name, sizeof(name)) || strcmp(name, r->name) ||
	    seq != r->seq || kind < MANIFEST_IMAGE || kind > MANIFEST_TOMBSTONE)
		return -EUCLEAN;
	return kind;
}

/*
 * Remember what a manifest is made of and where it is, as manifests.c
 * records it: seq, holders, head, parts.
 */
static int record_manifest(MDB_txn *txn, struct metad *m, const struct root *r,
			   const uint8_t *parts, size_t nparts)
{
	MDB_val k = { strlen(r->name), (void *)r->name }, v;
	size_t hl = 9 + (size_t)r->nnodes * 4;
	size_t len = hl + BLOBCR_ID_SIZE * (1 + nparts);
	uint8_t *val = malloc(len);
	int err;

	if (!val)
		return -ENOMEM;
	put_be64(val, r->seq);
	val[8] = (uint8_t)r->nnodes;
	for (int i = 0; i < r->nnodes; i++)
		put_be32(val + 9 + i * 4, r->nodes[i]);
	memcpy(val + hl, r->id, BLOBCR_ID_SIZE);
	if (nparts)
		memcpy(val + hl + BLOBCR_ID_SIZE, parts, nparts * BLOBCR_ID_SIZE);
	v.mv_size = len;
	v.mv_data = val;
	err = db_err(mdb_put(txn, m->db.manifests, &k, &v, 0));
	free(val);
	return err;
}

static int rebuild_image(struct metad *m, const struct root *r,
			 struct blobcr_dec *d, struct rebuild_stats *st)
{
	char parent[BLOBCR_NAME_MAX];
	struct image img = { 0 };
	MDB_txn *txn;
	int err = blobcr_dec_str(d, img.name, sizeof(img.name));

	img.id = blobcr_dec_u64(d);
	img.size = blobcr_dec_u64(d);
	img.extent_size = blobcr_dec_u32(d);
	if (!err)
		err = blobcr_dec_str(d, parent, sizeof(parent));
	img.parent_version = blobcr_dec_u32(d);
	img.created = blobcr_dec_u64(d);
	img.next_version = 1;
	if (!err)
		err = blobcr_dec_end(d);
	if (err || !img.id || strcmp(img.name, r->name + 2))
		return -EUCLEAN;
	/* The parent's id, once every image is in: see fix_images(). */
	if (parent[0]) {
		struct clone_of *nv = realloc(st->clones, (st->nclones + 1) *
					      sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		st->clones = nv;
		memcpy(nv[st->nclones].image, img.name, sizeof(img.name));
		memcpy(nv[st->nclones++].parent, parent, sizeof(parent));
	}
	err = txn_begin(m, 0, &txn);
	if (!err)
		err = db_image_put(txn, &m->db, &img);
	if (!err)
		err = record_manifest(txn, m, r, NULL, 0);
	if (img.id > st->max_image)
		st->max_image = img.id;
	return txn_end(txn, err);
}

/* Decode @n entries of a version manifest or entry chunk into @img@@ver. */
static int put_entries(MDB_txn *txn, struct metad *m, struct blobcr_dec *d,
		       uint64_t image, uint32_t ver, uint32_t n,
		       const uint32_t *writers, uint32_t nw)
{
	int err = 0;

	for (uint32_t i = 0; i < n && !err; i++) {
		uint8_t kb[EXT_KEY], vb[1 + BLOBCR_ID_SIZE];
		MDB_val k = { EXT_KEY, kb }, v = { 1, vb };
		uint64_t ext = blobcr_dec_u64(d);
		const uint8_t *id = NULL;

		vb[0] = blobcr_dec_u8(d);
		if (vb[0] == BLOBCR_EXT_DATA) {
			id = blobcr_dec_bytes(d, BLOBCR_ID_SIZE);
			if (id)
				memcpy(vb + 1, id, BLOBCR_ID_SIZE);
			v.mv_size = 1 + BLOBCR_ID_SIZE;
		}
		if (d->err || vb[0] > BLOBCR_EXT_DATA)
			return -EUCLEAN;
		db_ext_key(kb, image, ext, ver);
		err = db_err(mdb_put(txn, m->db.extmap, &k, &v, 0));
		for (uint32_t w = 0; id && w < nw && !err; w++)
			err = db_writer_add(txn, &m->db, id, writers[w]);
	}
	return err;
}

static int rebuild_version(struct metad *m, const struct root *r,
			   struct blobcr_dec *d)
{
	struct version ver = { 0 };
	struct image img;
	uint32_t nw, nparts, n, writers[MAX_WRITERS];
	uint64_t image = blobcr_dec_u64(d);
	const uint8_t *parts = NULL;
	MDB_txn *txn;
	int err;

	ver.version = blobcr_dec_u32(d);
	ver.base = blobcr_dec_u32(d);
	ver.time = blobcr_dec_u64(d);
	ver.changed = blobcr_dec_u64(d);
	err = blobcr_dec_str(d, ver.label, sizeof(ver.label));
	nw = blobcr_dec_u32(d);
	for (uint32_t i = 0; i < nw && i < MAX_WRITERS; i++)
		writers[i] = blobcr_dec_u32(d);
	if (nw > MAX_WRITERS)
		err = -EUCLEAN;
	nparts = blobcr_dec_u32(d);
	if (!err && nparts)
		parts = blobcr_dec_bytes(d, (size_t)nparts * BLOBCR_ID_SIZE);
	n = blobcr_dec_u32(d);
	if (err || d->err || !ver.version)
		return -EUCLEAN;
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	/* An old version of an image deleted since: not this image's. */
	if (db_image_get_by_id(txn, &m->db, image, &img)) {
		db_txn_abort(txn);
		return -ESRCH;
	}
	err = put_entries(txn, m, d, image, ver.version, n, writers, nw);
	if (!err)
		err = blobcr_dec_end(d);
	for (uint32_t p = 0; p < nparts && !err; p++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		struct blobcr_dec pd;

		err = manifest_fetch(m, r->nodes, r->nnodes,
				     parts + (size_t)p * BLOBCR_ID_SIZE, &buf, &len);
		if (!err) {
			blobcr_dec_init(&pd, buf, len);
			n = blobcr_dec_u32(&pd);
			err = put_entries(txn, m, &pd, image, ver.version, n,
					  writers, nw);
			if (!err)
				err = blobcr_dec_end(&pd);
		}
		free(buf);
	}
	if (!err)
		err = db_version_put(txn, &m->db, image, &ver);
	if (!err)
		err = record_manifest(txn, m, r, parts, nparts);
	return txn_end(txn, err);
}

static int rebuild_access(struct metad *m, const struct root *r,
			  struct blobcr_dec *d)
{
	uint64_t image = blobcr_dec_u64(d);
	uint32_t ver = blobcr_dec_u32(d), n = blobcr_dec_u32(d);
	const uint8_t *raw = blobcr_dec_bytes(d, (size_t)n * 8);
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v = { (size_t)n * 8, (void *)raw };
	struct version vr;
	MDB_txn *txn;
	int err;

	if (!raw || blobcr_dec_end(d))
		return -EUCLEAN;
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	if (db_version_get(txn, &m->db, image, ver, &vr)) {
		db_txn_abort(txn);
		return -ESRCH;
	}
	put_be64(kb, image);
	put_be32(kb + 8, ver);
	err = db_err(mdb_put(txn, m->db.access, &k, &v, 0));
	if (!err)
		err = record_manifest(txn, m, r, NULL, 0);
	return txn_end(txn, err);
}

/* A group, and its name in the records of the versions it names. */
static int rebuild_group(struct metad *m, const struct root *r,
			 struct blobcr_dec *d)
{
	char name[BLOBCR_NAME_MAX];
	int err = blobcr_dec_str(d, name, sizeof(name));
	const uint8_t *rec = d->p;
	size_t len = d->left;
	MDB_val k = { strlen(name), name }, v = { len, (void *)rec };
	uint32_t n;
	MDB_txn *txn;

	blobcr_dec_u64(d); /* time */
	n = blobcr_dec_u32(d);
	if (err || d->err || strcmp(name, r->name + 2))
		return -EUCLEAN;
	err = txn_begin(m, 0, &txn);
	if (err)
		return err;
	for (uint32_t i = 0; i < n && !err; i++) {
		char image[BLOBCR_NAME_MAX];
		struct version ver;
		struct image img;
		uint32_t vn;

		err = blobcr_dec_str(d, image, sizeof(image));
		vn = blobcr_dec_u32(d);
		if (err)
			break;
		/* Of the groups naming a version, the last one applied shows. */
		if (!db_image_get(txn, &m->db, image, &img) &&
		    !db_version_get(txn, &m->db, img.id, vn, &ver)) {
			snprintf(ver.group, sizeof(ver.group), "%s", name);
			err = db_version_put(txn, &m->db, img.id, &ver);
		}
	}
	if (!err)
		err = blobcr_dec_end(d) ? -EUCLEAN : 0;
	if (!err)
		err = db_err(mdb_put(txn, m->db.groups, &k, &v, 0));
	if (!err)
		err = record_manifest(txn, m, r, NULL, 0);
	return txn_end(txn, err);
}

/* A tombstone is kept (and kept on R nodes): it outranks older roots. */
static int rebuild_tombstone(struct metad *m, const struct root *r)
{
	MDB_txn *txn;
	int err = txn_begin(m, 0, &txn);

	return err ? err : txn_end(txn, record_manifest(txn, m, r, NULL, 0));
}

/* Fetch and apply root @r, whatever it is. */
static int rebuild_one(struct metad *m, const struct root *r,
		       struct rebuild_stats *st)
{
	uint8_t *buf = NULL;
	struct blobcr_dec d;
	size_t len = 0;
	int kind, err = manifest_fetch(m, r->nodes, r->nnodes, r->id, &buf, &len);

	if (err) {
		log_warn("rebuild: manifest %s unreadable: %s", r->name,
			 strerror(-err));
		st->skipped++;
		return 0;
	}
	blobcr_dec_init(&d, buf, len);
	kind = parse_head(&d, r);
	err = kind < 0 ? kind : 0;
	if (kind == MANIFEST_IMAGE && r->name[0] == 'i')
		err = rebuild_image(m, r, &d, st), st->images += !err;
	else if (kind == MANIFEST_VERSION && r->name[0] == 'v')
		err = rebuild_version(m, r, &d), st->versions += !err;
	else if (kind == MANIFEST_ACCESS && r->name[0] == 'a')
		err = rebuild_access(m, r, &d), st->access += !err;
	else if (kind == MANIFEST_GROUP && r->name[0] == 'g')
		err = rebuild_group(m, r, &d), st->groups += !err;
	else if (kind == MANIFEST_TOMBSTONE)
		err = rebuild_tombstone(m, r);
	else if (kind > 0)
		err = -EUCLEAN;
	free(buf);
	if (err == -ESRCH) /* of an image or version not found: left out */
		err = 0, st->skipped++;
	if (err == -EUCLEAN) {
		log_warn("rebuild: manifest %s is damaged: left out", r->name);
		st->skipped++;
		err = 0;
	}
	return err;
}

/* The greatest version root @r names for image @image, 0 if none. */
static uint32_t last_version_root(const struct roots *r, uint64_t image)
{
	char prefix[32];
	uint32_t best = 0;
	size_t lo = 0, hi = r->n;

	snprintf(prefix, sizeof(prefix), "v/%016" PRIx64 "/", image);
	/* Sorted by name: find the first of the image's version roots. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(r->v[mid].name, prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < r->n && !strncmp(r->v[lo].name, prefix, strlen(prefix)); lo++)
		best = (uint32_t)strtoul(r->v[lo].name + strlen(prefix), NULL, 16);
	return best;
}

/*
 * One image's latest version, version count, next version (after every
 * version a root names, tombstones too: numbers are never reused) and
 * clone parent, now that all are in.
 */
static int fix_image(MDB_txn *txn, struct metad *m, const char *name,
		     const struct roots *r, const struct rebuild_stats *st)
{
	uint8_t kb[12];
	MDB_val k = { 12, kb }, v;
	struct image img;
	MDB_cursor *cur;
	int rc, err = db_image_get(txn, &m->db, name, &img);

	if (err)
		return err;
	img.next_version = last_version_root(r, img.id) + 1;
	put_be64(kb, img.id);
	put_be32(kb + 8, 0);
	err = db_err(mdb_cursor_open(txn, m->db.versions, &cur));
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && k.mv_size == 12 && get_be64(k.mv_data) == img.id;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		img.latest = get_be32((uint8_t *)k.mv_data + 8);
		img.nversions++;
	}
	if (!err)
		mdb_cursor_close(cur);
	for (size_t i = 0; !err && i < st->nclones; i++) {
		struct image p;

		if (strcmp(st->clones[i].image, name))
			continue;
		img.parent_id = db_image_get(txn, &m->db, st->clones[i].parent,
					     &p) ? 0 : p.id;
		if (!img.parent_id)
			log_warn("rebuild: image %s's clone source %s is gone: it "
				 "reads as its own", name, st->clones[i].parent);
	}
	return err ? err : db_image_put(txn, &m->db, &img);
}

static int fix_images(struct metad *m, const struct roots *r,
		      const struct rebuild_stats *st)
{
	MDB_txn *txn;
	int err = 0;

	for (size_t i = 0; i < r->n && !err; i++) {
		if (r->v[i].name[0] != 'i')
			continue;
		err = txn_begin(m, 0, &txn);
		if (!err) {
			err = fix_image(txn, m, r->v[i].name + 2, r, st);
			err = txn_end(txn, err == -ENOENT ? 0 : err);
		}
	}
	return err;
}

static int cmp_seq(const void *a, const void *b)
{
	const struct root *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * One step of the rebuild is committed.  Test hook: after
 * m->rebuild_pause steps, wait to be killed (a crash at that point).
 */
static void rebuild_step(struct metad *m, struct rebuild_stats *st)
{
	if (++st->steps != m->rebuild_pause)
		return;
	log_info("rebuild: paused after %zu steps", st->steps);
	while (!blobcr_stopping(&m->stop))
		usleep(100 * 1000);
}

static int rebuild(struct metad *m)
{
	struct rebuild_stats st = { 0 };
	struct roots r = { 0 }, groups = { 0 };
	size_t count, nodes = 0;
	MDB_txn *txn;
	int err = 0;
	const char kinds[] = "iva";

	wait_for_nodes(m);
	count = node_count(m);
	for (size_t i = 0; i < count && !err && !blobcr_stopping(&m->stop); i++) {
		if (!node_live(m, m->nodes[i].id))
			continue;
		err = read_node(m, &m->nodes[i], &r, &st);
		nodes++;
		rebuild_step(m, &st);
	}
	st.roots = r.n;
	roots_latest(&r);
	for (size_t i = 0; i < r.n; i++)
		if (r.v[i].seq > st.max_seq)
			st.max_seq = r.v[i].seq;
	for (const char *k = kinds; *k && !err; k++)
		for (size_t i = 0; i < r.n && !err && !blobcr_stopping(&m->stop); i++)
			if (r.v[i].name[0] == *k) {
				err = rebuild_one(m, &r.v[i], &st);
				rebuild_step(m, &st);
			}
	/* Groups in the order they were published: a version shows the last. */
	for (size_t i = 0; i < r.n && !err; i++)
		if (r.v[i].name[0] == 'g')
			err = roots_add(&groups, r.v[i].name, r.v[i].seq, r.v[i].id,
					r.v[i].nodes, r.v[i].nnodes);
	if (groups.n)
		qsort(groups.v, groups.n, sizeof(*groups.v), cmp_seq);
	for (size_t i = 0; i < groups.n && !err; i++) {
		err = rebuild_one(m, &groups.v[i], &st);
		rebuild_step(m, &st);
	}
	if (!err)
		err = fix_images(m, &r, &st);
	if (!err)
		rebuild_step(m, &st);
	if (!err)
		err = txn_begin(m, 0, &txn);
	if (!err) {
		err = db_meta_put(txn, &m->db, "next_image", st.max_image + 1);
		if (!err)
			err = db_meta_put(txn, &m->db, "manifest_seq", st.max_seq + 1);
		if (!err)
			err = db_meta_put(txn, &m->db, REBUILDING, 0);
		err = txn_end(txn, err);
	}
	free(r.v);
	free(groups.v);
	free(st.clones);
	if (err)
		return err;
	log_info("rebuilt from %zu nodes: %zu images, %zu versions, %zu access "
		 "orders, %zu groups, %zu chunk locations (%zu roots, %zu left "
		 "out, %zu steps)", nodes, st.images, st.versions, st.access,
		 st.groups, st.locations, st.roots, st.skipped, st.steps);
	return 0;
}

static void *rebuild_thread(void *p)
{
	struct metad *m = p;
	int err = rebuild(m);

	if (err) {
		log_err("rebuild failed: %s; start again on an empty --data",
			strerror(-err));
		__atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&m->rebuilding, false, __ATOMIC_RELEASE);
	return NULL;
}

int rebuild_interrupted(struct metad *m)
{
	uint64_t on = 0;
	MDB_txn *txn;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = db_meta_get(txn, &m->db, REBUILDING, &on);
	db_txn_abort(txn);
	return err ? err : on != 0;
}

/*
 * The database says a rebuild is under way until its last transaction:
 * a crash in between leaves a part of the repository, which metad must
 * not serve (gc would take the chunks of the versions not yet back for
 * strays).  Every step of a rebuild puts what the manifests say, so doing
 * it again over a part of it gives the same database.
 */
int rebuild_start(struct metad *m, pthread_t *tid)
{
	MDB_stat ms;
	MDB_txn *txn;
	int err = rebuild_interrupted(m);

	if (err < 0)
		return err;
	if (!err) {
		err = txn_begin(m, MDB_RDONLY, &txn);
		if (err)
			return err;
		err = db_err(mdb_stat(txn, m->db.images, &ms));
		db_txn_abort(txn);
		if (!err && ms.ms_entries)
			return -ENOTEMPTY;
	}
	err = txn_begin(m, 0, &txn);
	if (!err)
		err = txn_end(txn, db_meta_put(txn, &m->db, REBUILDING, 1));
	if (err)
		return err;
	m->rebuilding = true;
	log_info("rebuilding the database from the storage nodes' manifests");
	return -pthread_create(tid, NULL, rebuild_thread, m);
}
