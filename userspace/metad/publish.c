// SPDX-License-Identifier: GPL-2.0
/*
 * publish.c - a new version, made visible in one write transaction
 * (metad.h).
 *
 * A small version comes in one PUBLISH.  A version of any size is staged:
 * PUBLISH_BEGIN names the image, base, label, writer and commit session;
 * PUBLISH_PARTs bring the entries, each part recording its chunks'
 * locations in a transaction of its own (harmless: they are true, and gc
 * collects a chunk nothing references) and its entries in metad's memory;
 * PUBLISH_COMMIT then applies every entry, the version and the image in
 * one write transaction, after checking once more that each chunk has R
 * copies that count.  A stage nobody touches for STAGE_IDLE_MS is
 * dropped, and all stages together hold at most --max-stage-mb.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

#define STAGE_IDLE_MS (10 * 60 * 1000)

/* A publish under way: its header, then its entries. */
/* Map bytes a publish may take per byte of its entries (db_reserve()). */
#define PUB_MAP_FACTOR 8

struct pub {
	uint64_t stage; /* staged: its id; 0: a one-shot PUBLISH */
	char image[BLOBCR_NAME_MAX];
	uint32_t base;
	char label[BLOBCR_NAME_MAX];
	char writer[BLOBCR_DOMAIN_MAX];
	uint64_t session; /* the commit's: ends once published */
	uint64_t manifest_seq; /* once applied: its manifest's */
	struct mentry *e;
	size_t n, cap;
	uint64_t touched; /* blobcr_now_ms() of its last request */
	struct pub *next;
};

static size_t pub_bytes(const struct pub *p)
{
	return sizeof(*p) + p->cap * sizeof(*p->e);
}

static void pub_free(struct pub *p)
{
	if (p)
		free(p->e);
	free(p);
}

/* After the image's name: base version, label, writer's domain, session. */
static int pub_header_decode(struct blobcr_dec *req, struct pub *p)
{
	int err;

	p->base = blobcr_dec_u32(req);
	err = blobcr_dec_str(req, p->label, sizeof(p->label));
	if (!err && !blobcr_label_valid(p->label))
		err = -EINVAL; /* it reaches logs and terminals */
	if (!err)
		err = blobcr_dec_str(req, p->writer, sizeof(p->writer));
	p->session = blobcr_dec_u64(req);
	return err ? err : req->err;
}

/* Record a data entry's reported locations and its writer's domain. */
static int record_locations(MDB_txn *txn, struct metad *m,
			    struct blobcr_dec *req, const uint8_t *id,
			    uint32_t writer)
{
	uint8_t nrep = blobcr_dec_u8(req);

	if (nrep > BLOBCR_MAX_REPLICAS)
		return -EBADMSG;
	for (uint8_t i = 0; i < nrep; i++) {
		uint32_t node = blobcr_dec_u32(req);
		struct node *nd = node_find(m, node);
		int r;

		if (req->err)
			return req->err;
		if (!nd)
			return -EINVAL;
		/* A node removed since the upload: its copy never counts. */
		if (node_state(nd) == NODE_REMOVED)
			continue;
		r = db_chunk_add(txn, &m->db, id, node);
		if (r < 0)
			return r;
	}
	return db_writer_add(txn, &m->db, id, writer);
}

/* Room for @more entries; on failure @p keeps what it had. */
static int pub_grow(struct pub *p, size_t more)
{
	size_t cap = p->cap ? p->cap : 1024;
	struct mentry *nv;

	while (cap < p->n + more)
		cap *= 2;
	if (cap == p->cap)
		return 0;
	nv = realloc(p->e, cap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	p->e = nv;
	p->cap = cap;
	return 0;
}

/*
 * Decode @n entries into @p (whose image is @img), recording the data
 * entries' locations in @txn.
 */
static int pub_entries_decode(MDB_txn *txn, struct metad *m,
			      struct blobcr_dec *req, const struct image *img,
			      struct pub *p, uint32_t n)
{
	uint32_t writer = blobcr_domain_hash(p->writer);
	int err = pub_grow(p, n);

	for (uint32_t i = 0; i < n && !err; i++) {
		struct mentry *e = &p->e[p->n];
		const uint8_t *id;

		e->extent = blobcr_dec_u64(req);
		e->kind = blobcr_dec_u8(req);
		if (req->err)
			return req->err;
		if (e->extent >= image_extents(img) || e->kind > BLOBCR_EXT_DATA)
			return -ERANGE;
		if (e->kind == BLOBCR_EXT_DATA) {
			id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
			if (!id)
				return req->err;
			memcpy(e->id, id, BLOBCR_ID_SIZE);
			err = record_locations(txn, m, req, id, writer);
		}
		p->n++;
	}
	return err;
}

/* Does data entry @id have R copies that count for @writer, now? */
static int chunk_kept(MDB_txn *txn, struct metad *m, MDB_cursor *ccur,
		      const uint8_t *id, uint32_t writer)
{
	struct holders h;
	int err;

	if (chunk_doomed(txn, m, id))
		return -EAGAIN;
	err = holders_load(m, ccur, NULL, id, 0, &h);
	if (err)
		return err;
	return holders_replicas_for(&h, writer) >= m->replicas ? 0 : -EHOSTDOWN;
}

/* Write @p's entries as version @ver of @img. */
static int pub_entries_apply(MDB_txn *txn, struct metad *m,
			     const struct pub *p, const struct image *img,
			     uint32_t ver)
{
	uint32_t writer = blobcr_domain_hash(p->writer);
	const uint8_t *checked = NULL;
	MDB_cursor *ccur;
	int err = db_err(mdb_cursor_open(txn, m->db.chunks, &ccur));

	for (size_t i = 0; i < p->n && !err; i++) {
		const struct mentry *e = &p->e[i];
		uint8_t kb[EXT_KEY], vb[1 + BLOBCR_ID_SIZE] = { e->kind };
		MDB_val k = { EXT_KEY, kb }, v = { 1, vb };

		if (e->kind == BLOBCR_EXT_DATA) {
			/* Runs of one chunk (dedup) are checked once. */
			if (!checked || memcmp(checked, e->id, BLOBCR_ID_SIZE))
				err = chunk_kept(txn, m, ccur, e->id, writer);
			checked = e->id;
			memcpy(vb + 1, e->id, BLOBCR_ID_SIZE);
			v.mv_size = 1 + BLOBCR_ID_SIZE;
		}
		db_ext_key(kb, img->id, e->extent, ver);
		if (!err)
			err = db_err(mdb_put(txn, m->db.extmap, &k, &v, 0));
		if (!err && m->publish_delay_ms && i == p->n / 2) {
			log_info("publish: test delay of %d ms before commit",
				 m->publish_delay_ms);
			usleep((useconds_t)m->publish_delay_ms * 1000);
		}
	}
	if (!err)
		mdb_cursor_close(ccur);
	return err;
}

/*
 * Make @p version next of its image in @txn: the base must still be the
 * latest, and every chunk must have R copies that count and not be going
 * (a gc spares a commit's chunks while its session lasts).
 */
static int pub_apply(MDB_txn *txn, struct metad *m, struct pub *p,
		     struct image *img, struct version *ver)
{
	char root[BLOBCR_ROOT_MAX];
	int err = db_image_get(txn, &m->db, p->image, img);

	if (!err && p->base != img->latest)
		err = -EBUSY;
	if (err)
		return err;
	memset(ver, 0, sizeof(*ver));
	ver->version = img->next_version;
	ver->base = p->base;
	ver->time = blobcr_wall_s();
	ver->changed = p->n;
	memcpy(ver->label, p->label, sizeof(ver->label));
	err = pub_entries_apply(txn, m, p, img, ver->version);
	if (!err) /* a gc's mark may not see them: it is told */
		err = sessions_published(m, p->e, p->n);
	if (!err)
		err = db_version_put(txn, &m->db, img->id, ver);
	manifest_name_version(root, 'v', img->id, ver->version);
	if (!err)
		err = manifest_pending(txn, m, root);
	if (!err)
		err = db_meta_get(txn, &m->db, "manifest_seq", &p->manifest_seq);
	img->latest = ver->version;
	img->next_version++;
	img->nversions++;
	return err ? err : db_image_put(txn, &m->db, img);
}

/*
 * The new version's manifest goes to the nodes before the reply: once a
 * client is told its version is published, losing metad's database loses
 * it no more.  A failure is logged; the upkeep thread writes it later.
 */
static void pub_manifest(struct metad *m, const struct pub *p,
			 const struct image *img, const struct version *ver)
{
	char root[BLOBCR_ROOT_MAX];
	int err;

	manifest_name_image(root, img->name);
	manifest_write_logged(m, root); /* its image's first, if pending */
	manifest_name_version(root, 'v', img->id, ver->version);
	err = manifest_publish(m, root, p->manifest_seq, img->id, ver,
			       blobcr_domain_hash(p->writer), p->e, p->n);
	if (err)
		log_warn("manifest %s not on the nodes yet (%s): written later",
			 root, strerror(-err));
}

static void log_published(const struct pub *p, const struct version *ver,
			  int err)
{
	if (err)
		log_warn("publish of %s refused: %s", p->image, strerror(-err));
	else
		log_info("published %s@%" PRIu32 " (%zu extents changed) from "
			 "failure domain %s", p->image, ver->version, p->n,
			 p->writer);
}

/* PUBLISH: a whole version in one request and one transaction. */
int do_publish(struct metad *m, struct blobcr_dec *req,
	       struct blobcr_enc *reply)
{
	struct pub p = { 0 };
	struct version ver;
	struct image img;
	MDB_txn *txn;
	uint32_t n = 0;
	int err = blobcr_dec_str(req, p.image, sizeof(p.image));

	/* An entry weighs a few times its bytes on the wire in the map. */
	if (!err)
		err = db_reserve(&m->db, req->left * PUB_MAP_FACTOR);
	if (!err) {
		sessions_publish_begin(m);
		err = txn_begin(m, 0, &txn);
		if (err)
			sessions_publish_end(m);
	}
	if (err) {
		log_published(&p, NULL, err);
		return err;
	}
	/* The image first: a refusal names it, whatever follows. */
	err = db_image_get(txn, &m->db, p.image, &img);
	if (!err)
		err = pub_header_decode(req, &p);
	if (!err)
		n = blobcr_dec_u32(req);
	if (!err && (req->err || n > MAX_BATCH))
		err = -EBADMSG;
	if (!err)
		err = pub_entries_decode(txn, m, req, &img, &p, n);
	if (!err)
		err = blobcr_dec_end(req);
	if (!err)
		err = pub_apply(txn, m, &p, &img, &ver);
	err = txn_end(txn, err);
	sessions_publish_end(m);
	log_published(&p, &ver, err);
	if (!err) {
		session_end(m, p.session);
		pub_manifest(m, &p, &img, &ver);
	}
	free(p.e);
	if (err)
		return err;
	blobcr_enc_u32(reply, ver.version);
	return reply->err;
}

/* ---- staged publishes ---- */

/* Drop the stages idle too long.  Caller holds stage_mu. */
static void stages_expire(struct metad *m)
{
	uint64_t now = blobcr_now_ms();

	for (struct pub **pp = &m->stages; *pp;) {
		struct pub *p = *pp;

		if (now - p->touched < STAGE_IDLE_MS) {
			pp = &p->next;
			continue;
		}
		log_warn("staged publish of %s dropped: idle for %d s", p->image,
			 STAGE_IDLE_MS / 1000);
		m->staged_bytes -= pub_bytes(p);
		*pp = p->next;
		pub_free(p);
	}
}

/* Take stage @id out of the list (the caller then owns it). */
static struct pub *stage_take(struct metad *m, uint64_t id)
{
	struct pub *p = NULL;

	pthread_mutex_lock(&m->stage_mu);
	stages_expire(m);
	for (struct pub **pp = &m->stages; *pp; pp = &(*pp)->next)
		if ((*pp)->stage == id) {
			p = *pp;
			*pp = p->next;
			m->staged_bytes -= pub_bytes(p);
			break;
		}
	pthread_mutex_unlock(&m->stage_mu);
	return p;
}

/* Put @p back, refused past the size limit (it is freed then). */
static int stage_put(struct metad *m, struct pub *p)
{
	int err = 0;

	pthread_mutex_lock(&m->stage_mu);
	if (m->staged_bytes + pub_bytes(p) > m->max_staged_bytes) {
		err = -EFBIG;
	} else {
		p->touched = blobcr_now_ms();
		m->staged_bytes += pub_bytes(p);
		p->next = m->stages;
		m->stages = p;
	}
	pthread_mutex_unlock(&m->stage_mu);
	if (err) {
		log_warn("staged publish of %s dropped: all stages would exceed "
			 "--max-stage-mb %" PRIu64, p->image,
			 m->max_staged_bytes >> 20);
		pub_free(p);
	}
	return err;
}

/* PUBLISH_BEGIN: a stage for a version too big for one request. */
int do_publish_begin(struct metad *m, struct blobcr_dec *req,
		     struct blobcr_enc *reply)
{
	struct pub *p = calloc(1, sizeof(*p));
	struct image img;
	MDB_txn *txn;
	int err = p ? blobcr_dec_str(req, p->image, sizeof(p->image)) : -ENOMEM;

	if (!err)
		err = pub_header_decode(req, p);
	if (!err)
		err = blobcr_dec_end(req);
	if (!err && !(err = txn_begin(m, MDB_RDONLY, &txn))) {
		err = db_image_get(txn, &m->db, p->image, &img);
		db_txn_abort(txn);
	}
	if (!err && p->base != img.latest)
		err = -EBUSY; /* another commit published first: say so now */
	if (err) {
		pub_free(p);
		return err;
	}
	p->stage = __atomic_add_fetch(&m->next_stage, 1, __ATOMIC_RELAXED);
	blobcr_enc_u64(reply, p->stage);
	return stage_put(m, p) ?: reply->err;
}

/*
 * PUBLISH_PART: more entries for a stage; their locations are recorded
 * in this request's transaction.  A failed part drops the stage.
 */
int do_publish_part(struct metad *m, struct blobcr_dec *req)
{
	uint64_t id = blobcr_dec_u64(req);
	uint32_t n = blobcr_dec_u32(req);
	struct pub *p;
	struct image img;
	MDB_txn *txn;
	int err;

	if (req->err || n > MAX_BATCH)
		return -EBADMSG;
	p = stage_take(m, id);
	if (!p)
		return -ENOENT;
	err = db_reserve(&m->db, req->left * PUB_MAP_FACTOR);
	if (!err)
		err = txn_begin(m, 0, &txn);
	if (!err) {
		err = db_image_get(txn, &m->db, p->image, &img);
		if (!err)
			err = pub_entries_decode(txn, m, req, &img, p, n);
		if (!err)
			err = blobcr_dec_end(req);
		err = txn_end(txn, err);
	}
	if (err) {
		log_warn("staged publish of %s refused: %s", p->image,
			 strerror(-err));
		pub_free(p);
		return err;
	}
	return stage_put(m, p);
}

/* PUBLISH_COMMIT: the stage becomes the next version, in one transaction. */
int do_publish_commit(struct metad *m, struct blobcr_dec *req,
		      struct blobcr_enc *reply)
{
	uint64_t id = blobcr_dec_u64(req);
	struct version ver;
	struct image img;
	struct pub *p;
	MDB_txn *txn;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	p = stage_take(m, id);
	if (!p)
		return -ENOENT;
	err = db_reserve(&m->db, p->n * sizeof(*p->e) * PUB_MAP_FACTOR);
	sessions_publish_begin(m);
	if (!err)
		err = txn_begin(m, 0, &txn);
	if (!err)
		err = txn_end(txn, pub_apply(txn, m, p, &img, &ver));
	sessions_publish_end(m);
	log_published(p, &ver, err);
	if (!err) {
		session_end(m, p->session);
		pub_manifest(m, p, &img, &ver);
	}
	pub_free(p);
	if (err)
		return err;
	blobcr_enc_u32(reply, ver.version);
	return reply->err;
}

/* PUBLISH_ABORT: the client gives up; its stage goes. */
int do_publish_abort(struct metad *m, struct blobcr_dec *req)
{
	uint64_t id = blobcr_dec_u64(req);
	int err = blobcr_dec_end(req);
	struct pub *p;

	if (err)
		return err;
	p = stage_take(m, id);
	if (!p)
		return -ENOENT;
	pub_free(p);
	return 0;
}

void stages_free(struct metad *m)
{
	while (m->stages) {
		struct pub *p = m->stages;

		m->stages = p->next;
		pub_free(p);
	}
}
