// SPDX-License-Identifier: GPL-2.0
/*
 * manifests.c - metad's state, kept on the nodes too (metad.h), so that
 * losing metad's disk loses no checkpoint: `blobcr-metad --rebuild` makes
 * the database again from the nodes (rebuild.c).
 *
 * Every image, version, checkpoint group and access order has a manifest:
 * a chunk saying what it is, stored like any chunk (content-addressed, on
 * R live nodes in distinct domains) with ROOT_PUT, which also makes it the
 * node's *root* of that object's name at a sequence number.  A version's
 * extents go in the manifest itself, or, for a big version, in chunks it
 * names.  A deleted object's root becomes a tombstone manifest.  The
 * rebuild takes, per name, the root with the highest sequence number.
 *
 * A mutation marks its object's name pending, with a fresh sequence
 * number, in the mutation's own transaction; once committed, the manifest
 * is written (a publish writes its image's, if pending, and its own before
 * replying; the upkeep thread writes the others, and whatever a crash or
 * missing nodes left) and the name leaves pending if no later mutation
 * came.  A manifest is
 * written after its object is committed, so a rebuild never finds an
 * object metad did not have; an object whose manifest a crash kept from
 * its nodes, before the reply, may be missing.
 *
 * Root names: "i/NAME" an image, "v/ID/VERSION" a version, "a/ID/VERSION"
 * an access order, "g/NAME" a group (ID and VERSION in hex).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

/* A manifest head, and the entry chunks of a big version, stay under this. */
#define MANIFEST_CHUNK (4u << 20)
#define ENTRY_MAX (8 + 1 + BLOBCR_ID_SIZE)
#define MANIFEST_PUT_MS 1500 /* a ROOT_PUT's time, and as much per MiB */

void manifest_name_image(char out[BLOBCR_ROOT_MAX], const char *image)
{
	snprintf(out, BLOBCR_ROOT_MAX, "i/%s", image);
}

void manifest_name_version(char out[BLOBCR_ROOT_MAX], char kind,
			   uint64_t image, uint32_t ver)
{
	snprintf(out, BLOBCR_ROOT_MAX, "%c/%016" PRIx64 "/%08" PRIx32, kind,
		 image, ver);
}

void manifest_name_group(char out[BLOBCR_ROOT_MAX], const char *group)
{
	snprintf(out, BLOBCR_ROOT_MAX, "g/%s", group);
}

/* ---- pending names ---- */

int manifest_pending(MDB_txn *txn, struct metad *m, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint8_t vb[8];
	uint64_t seq;
	int err = db_meta_get(txn, &m->db, "manifest_seq", &seq);

	if (!err)
		err = db_meta_put(txn, &m->db, "manifest_seq", ++seq);
	put_be64(vb, seq);
	v.mv_size = 8;
	v.mv_data = vb;
	if (!err)
		err = db_err(mdb_put(txn, m->db.pending, &k, &v, 0));
	return err;
}

/* The sequence number @name is pending at, 0 if it is not. */
static uint64_t pending_seq(struct metad *m, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint64_t seq = 0;
	MDB_txn *txn;

	if (txn_begin(m, MDB_RDONLY, &txn))
		return 0;
	if (!mdb_get(txn, m->db.pending, &k, &v) && v.mv_size == 8)
		seq = get_be64(v.mv_data);
	db_txn_abort(txn);
	return seq;
}

/* ---- writing to the nodes ---- */

struct mbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void mb_room(struct mbuf *b, size_t n)
{
	uint8_t *p;
	size_t cap = b->cap ? b->cap : 4096;

	if (b->err || b->len + n <= b->cap)
		return;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void mb_bytes(struct mbuf *b, const void *p, size_t n)
{
	mb_room(b, n);
	if (!b->err) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

static void mb_u8(struct mbuf *b, uint8_t v)
{
	mb_bytes(b, &v, 1);
}

static void mb_u32(struct mbuf *b, uint32_t v)
{
	uint8_t p[4];

	put_be32(p, v);
	mb_bytes(b, p, 4);
}

static void mb_u64(struct mbuf *b, uint64_t v)
{
	uint8_t p[8];

	put_be64(p, v);
	mb_bytes(b, p, 8);
}

static void mb_str(struct mbuf *b, const char *s)
{
	size_t n = strlen(s);
	uint8_t p[2] = { (uint8_t)(n >> 8), (uint8_t)n };

	mb_bytes(b, p, 2);
	mb_bytes(b, s, n);
}

/* The head every manifest starts with. */
static void mb_head(struct mbuf *b, uint8_t kind, uint64_t seq,
		    const char *name)
{
	mb_bytes(b, MANIFEST_MAGIC, 8);
	mb_u8(b, kind);
	mb_u64(b, seq);
	mb_str(b, name);
}

/* A manifest's chunks, as they are written and as the table records them. */
struct written {
	uint8_t head[BLOBCR_ID_SIZE];
	uint8_t (*parts)[BLOBCR_ID_SIZE]; /* entry chunks */
	size_t nparts;
	uint32_t nodes[MAX_HOLDERS]; /* each holds all of them */
	int nnodes;
};

/*
 * Send one chunk to @nd's manifest store, as root @name ("": a part).  A
 * publish waits for its manifest: a node that died unnoticed must cost
 * a second and a bit, not the whole node timeout, before the next is
 * tried.
 */
static int root_put(struct metad *m, const struct node *nd, const char *name,
		    uint64_t seq, const uint8_t *id, const uint8_t *data,
		    size_t len)
{
	int timeout = MANIFEST_PUT_MS + (int)(len >> 20) * MANIFEST_PUT_MS;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 300 + len);

	if (err)
		return err;
	blobcr_enc_str(&e, name);
	blobcr_enc_u64(&e, seq);
	blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
	blobcr_enc_u32(&e, (uint32_t)len);
	blobcr_enc_bytes(&e, data, len);
	err = node_call_timeout(m, nd, BLOBCR_OP_ROOT_PUT, &e, &msg, &d,
				timeout < m->node_timeout_ms ? timeout :
				m->node_timeout_ms);
	if (msg)
		nn_freemsg(msg);
	blobcr_enc_free(&e);
	return err;
}

/*
 * Put a manifest's parts, then its head (root @name at @seq), on R live,
 * active nodes of distinct domains, each holding all of them; nodes in
 * @w->nodes (@skip: domains of holders to add to).  Return: how many
 * nodes took it all, or -errno.
 */
static int put_manifest(struct metad *m, const char *name, uint64_t seq,
			const uint8_t *head, size_t head_len, uint8_t **parts,
			const size_t *part_len, struct written *w,
			const uint32_t *skip, int nskip, int want)
{
	uint8_t key[BLOBCR_ID_SIZE];
	uint32_t cands[MAX_HOLDERS], doms[MAX_HOLDERS];
	int n, ndoms = 0;

	if (nskip)
		memcpy(doms, skip, (size_t)nskip * sizeof(*skip));
	ndoms = nskip;
	/* One placement for all its chunks, by the name: they stay together. */
	if (blobcr_chunk_id(name, strlen(name), key))
		return -EIO;
	n = place_nodes(m, key, cands, MAX_HOLDERS);
	for (int i = 0; i < n && want > 0; i++) {
		struct node *nd = node_find(m, cands[i]);
		uint32_t dom = __atomic_load_n(&nd->domain_hash, __ATOMIC_RELAXED);
		bool taken = false;
		int err = 0;

		for (int j = 0; j < ndoms && !taken; j++)
			taken = doms[j] == dom;
		for (int j = 0; j < w->nnodes && !taken; j++)
			taken = w->nodes[j] == nd->id;
		if (taken)
			continue;
		for (size_t p = 0; p < w->nparts && !err; p++)
			err = root_put(m, nd, "", 0, w->parts[p], parts[p],
				       part_len[p]);
		if (!err)
			err = root_put(m, nd, name, seq, w->head, head, head_len);
		if (err)
			continue;
		doms[ndoms++] = dom;
		w->nodes[w->nnodes++] = nd->id;
		want--;
	}
	return w->nnodes;
}

/*
 * A manifests record: seq u64, holders n u8 and node ids u32*n, head id,
 * entry chunk ids.
 */
static void record_encode(struct mbuf *b, uint64_t seq, const struct written *w)
{
	mb_u64(b, seq);
	mb_u8(b, (uint8_t)w->nnodes);
	for (int i = 0; i < w->nnodes; i++)
		mb_u32(b, w->nodes[i]);
	mb_bytes(b, w->head, BLOBCR_ID_SIZE);
	for (size_t i = 0; i < w->nparts; i++)
		mb_bytes(b, w->parts[i], BLOBCR_ID_SIZE);
}

/* Decode a manifests record into @w (parts point into @v).  Return: seq. */
static int record_decode(const MDB_val *v, uint64_t *seq, struct written *w)
{
	const uint8_t *p = v->mv_data;
	size_t off;

	memset(w, 0, sizeof(*w));
	if (v->mv_size < 9)
		return -EUCLEAN;
	*seq = get_be64(p);
	w->nnodes = p[8];
	off = 9 + (size_t)w->nnodes * 4;
	if (w->nnodes > MAX_HOLDERS || off + BLOBCR_ID_SIZE > v->mv_size ||
	    (v->mv_size - off) % BLOBCR_ID_SIZE)
		return -EUCLEAN;
	for (int i = 0; i < w->nnodes; i++)
		w->nodes[i] = get_be32(p + 9 + i * 4);
	memcpy(w->head, p + off, BLOBCR_ID_SIZE);
	w->parts = (uint8_t (*)[BLOBCR_ID_SIZE])(p + off + BLOBCR_ID_SIZE);
	w->nparts = (v->mv_size - off) / BLOBCR_ID_SIZE - 1;
	return 0;
}

/* Delete manifest @w's chunks from its holders: it was replaced. */
static void drop_manifest(struct metad *m, const struct written *w)
{
	for (int i = 0; i < w->nnodes; i++) {
		struct node *nd = node_find(m, w->nodes[i]);
		struct blobcr_enc e;
		struct blobcr_dec d;
		void *msg;

		if (!nd || !node_live(m, nd->id) ||
		    blobcr_enc_init(&e, 4 + (w->nparts + 1) * BLOBCR_ID_SIZE))
			continue;
		blobcr_enc_u32(&e, (uint32_t)(w->nparts + 1));
		blobcr_enc_bytes(&e, w->head, BLOBCR_ID_SIZE);
		blobcr_enc_bytes(&e, w->parts, w->nparts * BLOBCR_ID_SIZE);
		/* A failure leaves an old manifest: space, never a wrong rebuild. */
		node_call(m, nd, BLOBCR_OP_MANIFEST_DELETE, &e, &msg, &d);
		if (msg)
			nn_freemsg(msg);
		blobcr_enc_free(&e);
	}
}

/*
 * Record @w as the manifest of @name at @seq, and @name off pending
 * unless a later mutation came; the manifest it replaced is deleted from
 * the nodes.
 */
static int record_written(struct metad *m, const char *name, uint64_t seq,
			  const struct written *w)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	struct mbuf val = { 0 }, old = { 0 };
	uint64_t old_seq = 0;
	struct written ow;
	MDB_txn *txn;
	int err;

	record_encode(&val, seq, w);
	err = val.err ? val.err : txn_begin(m, 0, &txn);
	if (err) {
		free(val.p);
		return err;
	}
	if (!mdb_get(txn, m->db.manifests, &k, &v) &&
	    !record_decode(&v, &old_seq, &ow))
		mb_bytes(&old, v.mv_data, v.mv_size);
	v.mv_size = val.len;
	v.mv_data = val.p;
	if (seq > old_seq)
		err = db_err(mdb_put(txn, m->db.manifests, &k, &v, 0));
	if (!err && !mdb_get(txn, m->db.pending, &k, &v) && v.mv_size == 8 &&
	    get_be64(v.mv_data) == seq)
		err = db_err(mdb_del(txn, m->db.pending, &k, NULL));
	err = txn_end(txn, err);
	if (!err && old.len && seq > old_seq) {
		MDB_val ov = { old.len, old.p };

		if (!record_decode(&ov, &old_seq, &ow))
			drop_manifest(m, &ow);
	}
	free(val.p);
	free(old.p);
	return err;
}

/*
 * Write manifest @body (a head) as root @name at @seq, with @nparts entry
 * chunks @parts (@part_len each) first.  Caller holds manifest_mu.
 */
static int write_manifest(struct metad *m, const char *name, uint64_t seq,
			  const struct mbuf *body, uint8_t **parts,
			  const size_t *part_len, size_t nparts)
{
	struct written w = { .nparts = nparts };
	int err = 0;

	w.parts = calloc(nparts ? nparts : 1, sizeof(*w.parts));
	if (!w.parts)
		err = -ENOMEM;
	for (size_t i = 0; i < nparts && !err; i++)
		err = blobcr_chunk_id(parts[i], part_len[i], w.parts[i]);
	if (!err)
		err = blobcr_chunk_id(body->p, body->len, w.head);
	if (!err && put_manifest(m, name, seq, body->p, body->len, parts,
				 part_len, &w, NULL, 0, m->replicas) < m->replicas)
		err = -EHOSTDOWN;
	if (!err)
		err = record_written(m, name, seq, &w);
	free(w.parts);
	return err;
}

/* ---- what a manifest says ---- */

static void body_image(struct mbuf *b, MDB_txn *txn, struct metad *m,
		       const struct image *img)
{
	struct image parent;

	mb_str(b, img->name);
	mb_u64(b, img->id);
	mb_u64(b, img->size);
	mb_u32(b, img->extent_size);
	if (img->parent_id &&
	    !db_image_get_by_id(txn, &m->db, img->parent_id, &parent))
		mb_str(b, parent.name);
	else
		mb_str(b, "");
	mb_u32(b, img->parent_version);
	mb_u64(b, img->created);
}

/* The entries of version @ver of @img, as the extent map has them now. */
static int scan_entries(MDB_txn *txn, struct metad *m, const struct image *img,
			uint32_t ver, struct mentry **out, size_t *n)
{
	uint8_t kb[EXT_KEY];
	MDB_val k = { EXT_KEY, kb }, v;
	MDB_cursor *cur;
	struct mentry *e = NULL;
	size_t cnt = 0, cap = 0;
	int rc, err = db_err(mdb_cursor_open(txn, m->db.extmap, &cur));

	db_ext_key(kb, img->id, 0, 0);
	for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && !err; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t image, ext;
		uint32_t kv;

		if (k.mv_size != EXT_KEY || v.mv_size < 1)
			continue;
		db_ext_key_parse(k.mv_data, &image, &ext, &kv);
		if (image != img->id)
			break;
		if (kv != ver)
			continue;
		if (cnt == cap) {
			struct mentry *nv;

			cap = cap ? cap * 2 : 1024;
			nv = realloc(e, cap * sizeof(*e));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			e = nv;
		}
		e[cnt].extent = ext;
		e[cnt].kind = *(uint8_t *)v.mv_data;
		if (e[cnt].kind == BLOBCR_EXT_DATA && v.mv_size == 1 + BLOBCR_ID_SIZE)
			memcpy(e[cnt].id, (uint8_t *)v.mv_data + 1, BLOBCR_ID_SIZE);
		cnt++;
	}
	if (!err)
		mdb_cursor_close(cur);
	if (err) {
		free(e);
		return err;
	}
	*out = e;
	*n = cnt;
	return 0;
}

static void mb_entry(struct mbuf *b, const struct mentry *e)
{
	mb_u64(b, e->extent);
	mb_u8(b, e->kind);
	if (e->kind == BLOBCR_EXT_DATA)
		mb_bytes(b, e->id, BLOBCR_ID_SIZE);
}

/*
 * A version's manifest: its record, its writers' domains, then its
 * entries, inline when they fit, else in entry chunks it names.
 */
static int write_version(struct metad *m, const char *name, uint64_t seq,
			 uint64_t image, const struct version *ver,
			 const uint32_t *writers, size_t nwriters,
			 const struct mentry *e, size_t n)
{
	struct mbuf body = { 0 }, *parts = NULL;
	uint8_t **pp = NULL;
	size_t *plen = NULL, nparts = 0;
	int err;

	/* A part of entries: its count, then the entries. */
	if (n * ENTRY_MAX > MANIFEST_CHUNK / 2) {
		size_t per = (MANIFEST_CHUNK - 4) / ENTRY_MAX;

		nparts = (n + per - 1) / per;
		parts = calloc(nparts, sizeof(*parts));
		pp = calloc(nparts, sizeof(*pp));
		plen = calloc(nparts, sizeof(*plen));
		if (!parts || !pp || !plen) {
			free(parts);
			free(pp);
			free(plen);
			return -ENOMEM;
		}
		for (size_t p = 0; p < nparts; p++) {
			size_t first = p * per, cnt = n - first < per ? n - first : per;

			mb_u32(&parts[p], (uint32_t)cnt);
			for (size_t i = 0; i < cnt; i++)
				mb_entry(&parts[p], &e[first + i]);
			pp[p] = parts[p].p;
			plen[p] = parts[p].len;
			body.err = body.err ? body.err : parts[p].err;
		}
	}
	mb_head(&body, MANIFEST_VERSION, seq, name);
	mb_u64(&body, image);
	mb_u32(&body, ver->version);
	mb_u32(&body, ver->base);
	mb_u64(&body, ver->time);
	mb_u64(&body, ver->changed);
	mb_str(&body, ver->label);
	mb_u32(&body, (uint32_t)nwriters);
	for (size_t i = 0; i < nwriters; i++)
		mb_u32(&body, writers[i]);
	mb_u32(&body, (uint32_t)nparts);
	if (nparts) {
		for (size_t p = 0; p < nparts && !body.err; p++) {
			uint8_t id[BLOBCR_ID_SIZE];

			body.err = blobcr_chunk_id(pp[p], plen[p], id);
			mb_bytes(&body, id, BLOBCR_ID_SIZE);
		}
		mb_u32(&body, 0);
	} else {
		mb_u32(&body, (uint32_t)n);
		for (size_t i = 0; i < n; i++)
			mb_entry(&body, &e[i]);
	}
	err = body.err ? body.err : write_manifest(m, name, seq, &body, pp, plen,
						   nparts);
	for (size_t p = 0; p < nparts; p++)
		free(parts[p].p);
	free(parts);
	free(pp);
	free(plen);
	free(body.p);
	return err;
}

/* The writers' domains of @e's chunks, each once (at most @max). */
static size_t writers_of(MDB_txn *txn, struct metad *m, const struct mentry *e,
			 size_t n, uint32_t *out, size_t max)
{
	MDB_cursor *cur;
	size_t k = 0;

	if (mdb_cursor_open(txn, m->db.writers, &cur))
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t w[MAX_WRITERS];
		int nw = e[i].kind == BLOBCR_EXT_DATA ?
			 db_chunk_writers(cur, e[i].id, w, MAX_WRITERS) : 0;

		for (int j = 0; j < nw; j++) {
			bool seen = false;

			for (size_t x = 0; x < k && !seen; x++)
				seen = out[x] == w[j];
			if (!seen && k < max)
				out[k++] = w[j];
		}
	}
	mdb_cursor_close(cur);
	return k;
}

/*
 * The manifest of @name as the database has it now (a tombstone if the
 * object is gone), written at @seq.  Caller holds manifest_mu.
 */
static int write_from_db(struct metad *m, const char *name, uint64_t seq)
{
	struct mbuf body = { 0 };
	struct image img;
	MDB_txn *txn;
	uint64_t image;
	uint32_t ver;
	int err = txn_begin(m, MDB_RDONLY, &txn), found = 0;

	if (err)
		return err;
	if (!strncmp(name, "i/", 2)) {
		err = db_image_get(txn, &m->db, name + 2, &img);
		found = !err;
		if (found) {
			mb_head(&body, MANIFEST_IMAGE, seq, name);
			body_image(&body, txn, m, &img);
		}
	} else if (!strncmp(name, "g/", 2)) {
		MDB_val k = { strlen(name + 2), (void *)(name + 2) }, v;

		err = db_err(mdb_get(txn, m->db.groups, &k, &v));
		found = !err;
		if (found) {
			mb_head(&body, MANIFEST_GROUP, seq, name);
			mb_str(&body, name + 2);
			mb_bytes(&body, v.mv_data, v.mv_size);
		}
	} else if (sscanf(name + 1, "/%16" SCNx64 "/%8" SCNx32, &image,
			  &ver) == 2 && (name[0] == 'v' || name[0] == 'a')) {
		err = db_image_get_by_id(txn, &m->db, image, &img);
		if (!err && name[0] == 'a') {
			uint8_t kb[12];
			MDB_val k = { 12, kb }, v;

			put_be64(kb, image);
			put_be32(kb + 8, ver);
			err = db_err(mdb_get(txn, m->db.access, &k, &v));
			found = !err;
			if (found) {
				mb_head(&body, MANIFEST_ACCESS, seq, name);
				mb_u64(&body, image);
				mb_u32(&body, ver);
				mb_u32(&body, (uint32_t)(v.mv_size / 8));
				mb_bytes(&body, v.mv_data, v.mv_size);
			}
		} else if (!err) {
			struct version vr;
			struct mentry *e = NULL;
			uint32_t w[MAX_WRITERS];
			size_t n = 0, nw;

			err = db_version_get(txn, &m->db, image, ver, &vr);
			if (!err)
				err = scan_entries(txn, m, &img, ver, &e, &n);
			if (!err) {
				nw = writers_of(txn, m, e, n, w, MAX_WRITERS);
				db_txn_abort(txn);
				txn = NULL;
				err = write_version(m, name, seq, image, &vr, w,
						    nw, e, n);
				found = 2; /* written */
			}
			free(e);
		}
	} else {
		err = -EINVAL;
	}
	if (txn)
		db_txn_abort(txn);
	if (err == -ENOENT) {
		/* Gone: its tombstone outranks what the nodes still have. */
		err = 0;
		found = 0;
		free(body.p);
		body = (struct mbuf){ 0 };
	}
	if (!err && found != 2) {
		if (!found)
			mb_head(&body, MANIFEST_TOMBSTONE, seq, name);
		err = body.err ? body.err :
		      write_manifest(m, name, seq, &body, NULL, NULL, 0);
	}
	free(body.p);
	return err;
}

/* ---- entry points ---- */

int manifest_publish(struct metad *m, const char *name, uint64_t seq,
		     uint64_t image, const struct version *ver, uint32_t writer,
		     const struct mentry *e, size_t n)
{
	int err = 0;

	pthread_mutex_lock(&m->manifest_mu);
	/* A later change of the version (a delete moved entries to it)
	 * is written from the database instead. */
	if (pending_seq(m, name) == seq)
		err = write_version(m, name, seq, image, ver, &writer, 1, e, n);
	pthread_mutex_unlock(&m->manifest_mu);
	return err;
}

int manifest_write(struct metad *m, const char *name)
{
	uint64_t seq;
	int err = 0;

	pthread_mutex_lock(&m->manifest_mu);
	seq = pending_seq(m, name);
	if (seq)
		err = write_from_db(m, name, seq);
	pthread_mutex_unlock(&m->manifest_mu);
	return err;
}

void manifest_write_logged(struct metad *m, const char *name)
{
	int err = manifest_write(m, name);

	if (err)
		log_warn("manifest %s not on the nodes yet (%s): written later",
			 name, strerror(-err));
}

int manifests_flush(struct metad *m, size_t *left)
{
	char (*names)[BLOBCR_ROOT_MAX] = calloc(256, BLOBCR_ROOT_MAX);
	size_t n = 0, failed = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int err = names ? txn_begin(m, MDB_RDONLY, &txn) : -ENOMEM;

	if (err) {
		free(names);
		return err;
	}
	if (!mdb_cursor_open(txn, m->db.pending, &cur)) {
		while (n < 256 && !mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (k.mv_size < BLOBCR_ROOT_MAX) {
				memcpy(names[n], k.mv_data, k.mv_size);
				names[n++][k.mv_size] = 0;
			}
		mdb_cursor_close(cur);
	}
	db_txn_abort(txn);
	for (size_t i = 0; i < n; i++) {
		int r = manifest_write(m, names[i]);

		if (r) {
			failed++;
			err = err ? err : r;
		}
	}
	free(names);
	*left = failed;
	return err;
}

int manifest_fetch(struct metad *m, const uint32_t *nodes, int n,
		   const uint8_t *id, uint8_t **out, size_t *len)
{
	int err = -EHOSTDOWN;

	for (int i = 0; i < n && err; i++) {
		struct node *nd = node_find(m, nodes[i]);
		uint8_t real[BLOBCR_ID_SIZE];
		struct blobcr_enc e;
		struct blobcr_dec d;
		void *msg = NULL;

		if (!nd || !node_live(m, nodes[i]) || blobcr_enc_init(&e, 40))
			continue;
		blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
		err = node_call_timeout(m, nd, BLOBCR_OP_MANIFEST_GET, &e, &msg,
					&d, MANIFEST_PUT_MS * 4);
		blobcr_enc_free(&e);
		if (!err && (blobcr_chunk_id(d.p, d.left, real) ||
			     memcmp(real, id, BLOBCR_ID_SIZE)))
			err = -EUCLEAN;
		if (!err) {
			*out = malloc(d.left ? d.left : 1);
			if (*out)
				memcpy(*out, d.p, d.left);
			else
				err = -ENOMEM;
			*len = d.left;
		}
		if (msg)
			nn_freemsg(msg);
	}
	return err;
}

/* Give manifest @name more holders, up to R live ones.  Caller holds manifest_mu. */
static int keep_one(struct metad *m, const char *name)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	struct written w, nw = { 0 };
	uint8_t *head = NULL, **parts = NULL;
	size_t head_len = 0, *part_len = NULL;
	uint32_t doms[MAX_HOLDERS];
	struct mbuf rec = { 0 };
	uint64_t seq;
	MDB_txn *txn;
	int err = txn_begin(m, MDB_RDONLY, &txn);

	if (err)
		return err;
	err = db_err(mdb_get(txn, m->db.manifests, &k, &v));
	if (!err)
		err = record_decode(&v, &seq, &w);
	if (!err) {
		/* A copy: the transaction's pages go with it. */
		nw.nparts = w.nparts;
		nw.parts = calloc(w.nparts ? w.nparts : 1, BLOBCR_ID_SIZE);
		if (nw.parts)
			memcpy(nw.parts, w.parts, w.nparts * BLOBCR_ID_SIZE);
		else
			err = -ENOMEM;
		memcpy(nw.head, w.head, BLOBCR_ID_SIZE);
	}
	db_txn_abort(txn);
	for (int i = 0; !err && i < w.nnodes; i++)
		if (node_live(m, w.nodes[i])) {
			doms[nw.nnodes] = __atomic_load_n(
				&node_find(m, w.nodes[i])->domain_hash,
				__ATOMIC_RELAXED);
			nw.nodes[nw.nnodes++] = w.nodes[i];
		}
	if (!err && (nw.nnodes >= m->replicas || !nw.nnodes)) {
		free(nw.parts);
		return nw.nnodes ? 0 : -EHOSTDOWN; /* fine, or nowhere to copy from */
	}
	parts = calloc(nw.nparts ? nw.nparts : 1, sizeof(*parts));
	part_len = calloc(nw.nparts ? nw.nparts : 1, sizeof(*part_len));
	if (!err && (!parts || !part_len))
		err = -ENOMEM;
	if (!err)
		err = manifest_fetch(m, nw.nodes, nw.nnodes, nw.head, &head,
				     &head_len);
	for (size_t p = 0; !err && p < nw.nparts; p++)
		err = manifest_fetch(m, nw.nodes, nw.nnodes, nw.parts[p], &parts[p],
				     &part_len[p]);
	if (!err) {
		int had = nw.nnodes;

		put_manifest(m, name, seq, head, head_len, parts, part_len, &nw,
			     doms, nw.nnodes, m->replicas - nw.nnodes);
		if (nw.nnodes > had)
			log_info("manifest %s copied to %d more nodes", name,
				 nw.nnodes - had);
		record_encode(&rec, seq, &nw);
	}
	if (!err && !rec.err && !(err = txn_begin(m, 0, &txn))) {
		uint64_t now_seq = 0;
		struct written cur;

		/* Unless a newer manifest replaced it meanwhile. */
		if (!mdb_get(txn, m->db.manifests, &k, &v) &&
		    !record_decode(&v, &now_seq, &cur) && now_seq == seq) {
			v.mv_size = rec.len;
			v.mv_data = rec.p;
			err = db_err(mdb_put(txn, m->db.manifests, &k, &v, 0));
		}
		err = txn_end(txn, err);
	}
	for (size_t p = 0; parts && p < nw.nparts; p++)
		free(parts[p]);
	free(parts);
	free(part_len);
	free(head);
	free(rec.p);
	free(nw.parts);
	return err;
}

int manifests_keep(struct metad *m)
{
	char (*names)[BLOBCR_ROOT_MAX] = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int err = txn_begin(m, MDB_RDONLY, &txn), first = 0;

	if (err)
		return err;
	if (!mdb_cursor_open(txn, m->db.manifests, &cur)) {
		while (!mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct written w;
			uint64_t seq;
			int live = 0;

			if (k.mv_size >= BLOBCR_ROOT_MAX ||
			    record_decode(&v, &seq, &w))
				continue;
			for (int i = 0; i < w.nnodes; i++)
				live += node_live(m, w.nodes[i]);
			if (live >= m->replicas)
				continue;
			if (n == cap) {
				void *nv = realloc(names, (cap ? cap * 2 : 64) *
						   BLOBCR_ROOT_MAX);

				if (!nv)
					break;
				names = nv;
				cap = cap ? cap * 2 : 64;
			}
			memcpy(names[n], k.mv_data, k.mv_size);
			names[n++][k.mv_size] = 0;
		}
		mdb_cursor_close(cur);
	}
	db_txn_abort(txn);
	for (size_t i = 0; i < n && !blobcr_stopping(&m->stop); i++) {
		pthread_mutex_lock(&m->manifest_mu);
		err = keep_one(m, names[i]);
		pthread_mutex_unlock(&m->manifest_mu);
		first = first ? first : err;
	}
	free(names);
	return first;
}
