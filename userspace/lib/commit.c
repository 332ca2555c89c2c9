// SPDX-License-Identifier: GPL-2.0
/*
 * commit.c - building and publishing a new version of an image.
 *
 * Extents are hashed as they come, buffered, and uploaded by batches: ids
 * already seen in this commit are not sent again, ids metad knows on R
 * live nodes are not sent at all (dedup), the others go to R nodes.  The
 * publish then names every changed extent, its chunk and its holders, in
 * one request or, for a big version, staged in parts; metad applies them
 * in one transaction either way.
 *
 * With blobcr_commit_overlap(), a full batch is uploaded by a thread of its
 * own while the caller reads and hashes the next one into a second buffer:
 * at most two batches in memory, one upload at a time (they stay in order,
 * so each one's dedup sees every id uploaded before it).  The uploading
 * thread owns the client and the publishable entries meanwhile; the
 * caller's side only fills its batch and the list of holes.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include <nanomsg/nn.h>

#include "blobcr_util.h"
#include "client_internal.h"

#define BATCH_BYTES (32u << 20)
#define DOOMED_WAIT_MS 200 /* a chunk a gc is deleting: ask again after */
#define DOOMED_TRIES 3000 /* 10 minutes of that, at most */
/* Entries per request: one PUBLISH up to this many, else parts of it. */
#define PUBLISH_PART 65536

struct centry {
	uint64_t extent;
	uint8_t kind;
	uint8_t nrep;
	uint8_t id[BLOBCR_ID_SIZE];
	uint32_t nodes[BLOBCR_MAX_REPLICAS];
};

/* Extents hashed but not uploaded yet: pend[i]'s bytes at data + i * es. */
struct batch {
	uint8_t *data;
	struct centry *pend;
	size_t npend;
	int err; /* of its upload by the uploading thread */
};

struct blobcr_changeset {
	struct blobcr_client *c;
	int err; /* sticky: an upload failed, nothing may be published */
	struct blobcr_image_info info;
	bool base_empty; /* no version and no parent: zeros need no entry */
	uint64_t session; /* gc spares what it locates until it publishes */
	size_t batch_cap; /* extents a batch holds */
	struct batch b[2]; /* b[fill] is filled; the other may be uploading */
	int fill;
	bool overlap; /* blobcr_commit_overlap() was called */
	bool uploading; /* uploader runs on b[!fill] */
	pthread_t uploader;
	/* holes to publish, kept apart: the uploader may grow ents */
	uint64_t *zeros;
	size_t nzeros, zeros_cap;
	/* extents ready to publish */
	struct centry *ents;
	size_t nents, cap;
	/* ids uploaded in this commit: open addressing on the id's bytes */
	size_t *seen; /* index + 1 into ents, 0: empty slot */
	size_t seen_cap, nseen;
};

static int batch_alloc(struct blobcr_changeset *cm, struct batch *b)
{
	b->data = malloc(cm->batch_cap * cm->info.extent_size);
	b->pend = calloc(cm->batch_cap, sizeof(*b->pend));
	return b->data && b->pend ? 0 : -ENOMEM;
}

int blobcr_commit_begin(struct blobcr_client *c, const char *image,
			struct blobcr_changeset **out)
{
	struct blobcr_changeset *cm = calloc(1, sizeof(*cm));
	int err;

	if (!cm)
		return -ENOMEM;
	cm->c = c;
	if (getrandom(&cm->session, sizeof(cm->session), 0) !=
	    sizeof(cm->session) || !cm->session)
		cm->session = blobcr_next_req_id(); /* unique in this process */
	err = blobcr_image_info(c, image, &cm->info);
	if (err) {
		free(cm);
		return err;
	}
	cm->base_empty = cm->info.latest == 0 && !cm->info.parent[0];
	cm->batch_cap = BATCH_BYTES / cm->info.extent_size;
	err = batch_alloc(cm, &cm->b[0]);
	if (err) {
		blobcr_commit_free(cm);
		return err;
	}
	*out = cm;
	return 0;
}

void blobcr_commit_overlap(struct blobcr_changeset *cm)
{
	/* Without memory for a second batch, uploads stay in line. */
	if (!cm->overlap && !cm->err)
		cm->overlap = !batch_alloc(cm, &cm->b[1]);
}

/* Wait for the upload in flight, if any; its failure sticks. */
static int upload_wait(struct blobcr_changeset *cm)
{
	if (cm->uploading) {
		pthread_join(cm->uploader, NULL);
		cm->uploading = false;
		if (cm->b[!cm->fill].err && !cm->err)
			cm->err = cm->b[!cm->fill].err;
	}
	return cm->err;
}

void blobcr_commit_free(struct blobcr_changeset *cm)
{
	if (!cm)
		return;
	upload_wait(cm);
	for (int i = 0; i < 2; i++) {
		free(cm->b[i].data);
		free(cm->b[i].pend);
	}
	free(cm->zeros);
	free(cm->ents);
	free(cm->seen);
	free(cm);
}

static struct centry *add_entry(struct blobcr_changeset *cm)
{
	if (cm->nents == cm->cap) {
		size_t cap = cm->cap ? cm->cap * 2 : 1024;
		struct centry *nv = realloc(cm->ents, cap * sizeof(*nv));

		if (!nv)
			return NULL;
		cm->ents = nv;
		cm->cap = cap;
	}
	return &cm->ents[cm->nents++];
}

static size_t id_slot(const uint8_t *id, size_t cap)
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	return (size_t)(h % cap);
}

/* The entry that uploaded @id in this commit, or NULL. */
static struct centry *seen_find(struct blobcr_changeset *cm, const uint8_t *id)
{
	if (!cm->seen_cap)
		return NULL;
	for (size_t s = id_slot(id, cm->seen_cap);; s = (s + 1) % cm->seen_cap) {
		struct centry *e;

		if (!cm->seen[s])
			return NULL;
		e = &cm->ents[cm->seen[s] - 1];
		if (!memcmp(e->id, id, BLOBCR_ID_SIZE))
			return e;
	}
}

static void seen_insert(struct blobcr_changeset *cm, size_t idx)
{
	size_t s = id_slot(cm->ents[idx].id, cm->seen_cap);

	while (cm->seen[s])
		s = (s + 1) % cm->seen_cap;
	cm->seen[s] = idx + 1;
	cm->nseen++;
}

/* Remember that ents[@idx] uploaded its id; the table stays half empty. */
static int seen_add(struct blobcr_changeset *cm, size_t idx)
{
	if (2 * (cm->nseen + 1) > cm->seen_cap) {
		size_t cap = cm->seen_cap ? cm->seen_cap * 2 : 4096;
		size_t *old = cm->seen, old_cap = cm->seen_cap;

		cm->seen = calloc(cap, sizeof(*cm->seen));
		if (!cm->seen) {
			cm->seen = old;
			return -ENOMEM;
		}
		cm->seen_cap = cap;
		cm->nseen = 0;
		for (size_t s = 0; s < old_cap; s++)
			if (old[s])
				seen_insert(cm, old[s] - 1);
		free(old);
	}
	seen_insert(cm, idx);
	return 0;
}

/* Record a pending extent as an entry held by @nrep @nodes. */
static int commit_entry(struct blobcr_changeset *cm, const struct centry *p,
			uint8_t nrep, const uint32_t *nodes)
{
	struct centry *e = add_entry(cm);

	if (!e)
		return -ENOMEM;
	*e = *p;
	e->nrep = nrep;
	memcpy(e->nodes, nodes, nrep * sizeof(*nodes));
	return seen_add(cm, cm->nents - 1);
}

/*
 * Where the @n chunks @ids are (into @puts), for this commit's session.
 * Those a gc is deleting are asked for again, every DOOMED_WAIT_MS, until
 * the gc is done with them: then they are gone, and uploaded afresh.
 */
static int locate(struct blobcr_changeset *cm,
		  uint8_t (*ids)[BLOBCR_ID_SIZE], struct blobcr_put *puts,
		  size_t n)
{
	int err = chunk_locate(cm->c, cm->session,
			       (const uint8_t (*)[BLOBCR_ID_SIZE])ids, n, puts);

	for (int tries = 0; !err && tries < DOOMED_TRIES; tries++) {
		bool doomed = false;

		for (size_t i = 0; i < n && !err; i++) {
			if (puts[i].nhave != CHUNK_DOOMED)
				continue;
			if (!doomed)
				usleep(DOOMED_WAIT_MS * 1000);
			doomed = true;
			err = chunk_locate(cm->c, cm->session,
					   (const uint8_t (*)[BLOBCR_ID_SIZE])ids + i,
					   1, &puts[i]);
		}
		if (!doomed)
			return err;
	}
	return err ? err : -EAGAIN;
}

static int upload(struct blobcr_changeset *cm, const struct batch *b,
		  struct blobcr_put *puts, const size_t *which, size_t n)
{
	uint8_t (*ids)[BLOBCR_ID_SIZE] = malloc((n ? n : 1) * BLOBCR_ID_SIZE);
	int err;

	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(ids[i], b->pend[which[i]].id, BLOBCR_ID_SIZE);
	err = n ? locate(cm, ids, puts, n) : 0;
	free(ids);
	if (err || !n)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct blobcr_put *p = &puts[i];

		memcpy(p->id, b->pend[which[i]].id, BLOBCR_ID_SIZE);
		p->data = b->data + which[i] * cm->info.extent_size;
		p->len = cm->info.extent_size;
		/* Our own host may be what fails: its copies do not count. */
		p->nexclude = 1;
		p->exclude[0] = cm->c->domain_hash;
	}
	return blobcr_put_chunks(cm->c, puts, n);
}

/*
 * Upload batch @b, then turn it into publishable entries.  A failure
 * sticks (the caller sets cm->err): the batch's bytes are gone, so the
 * changeset can never publish (a version missing those extents would lose
 * them silently).
 */
static int flush(struct blobcr_changeset *cm, struct batch *b)
{
	struct blobcr_put *puts = calloc(b->npend + 1, sizeof(*puts));
	size_t *which = calloc(b->npend + 1, sizeof(*which));
	size_t nput = 0;
	int err = 0;

	if (!puts || !which) {
		err = -ENOMEM;
		goto out;
	}
	/* Ids seen before in this commit need no upload; others, once. */
	for (size_t i = 0; i < b->npend && !err; i++) {
		bool dup = seen_find(cm, b->pend[i].id) != NULL;

		for (size_t j = 0; j < nput && !dup; j++)
			dup = !memcmp(b->pend[which[j]].id, b->pend[i].id,
				      BLOBCR_ID_SIZE);
		if (!dup)
			which[nput++] = i;
	}
	if (!err)
		err = upload(cm, b, puts, which, nput);
	for (size_t j = 0; j < nput && !err; j++)
		err = commit_entry(cm, &b->pend[which[j]], puts[j].nreplicas,
				   puts[j].replicas);
	for (size_t i = 0; i < b->npend && !err; i++) {
		struct centry *s = seen_find(cm, b->pend[i].id), *e;
		size_t src;

		if (!s || s->extent == b->pend[i].extent)
			continue; /* uploaded above as itself */
		src = (size_t)(s - cm->ents); /* add_entry may move ents */
		e = add_entry(cm);
		if (!e) {
			err = -ENOMEM;
			break;
		}
		*e = cm->ents[src];
		e->extent = b->pend[i].extent;
	}
	b->npend = 0;
out:
	free(puts);
	free(which);
	return err;
}

static void *uploader_main(void *arg)
{
	struct blobcr_changeset *cm = arg;
	struct batch *b = &cm->b[!cm->fill];

	b->err = flush(cm, b);
	return NULL;
}

/*
 * The batch being filled is full: upload it, here, or (overlapping) by
 * the uploading thread once the previous upload is done, while the caller
 * fills the other batch.
 */
static int batch_full(struct blobcr_changeset *cm)
{
	int err;

	if (!cm->overlap) {
		err = flush(cm, &cm->b[cm->fill]);
		if (err)
			cm->err = err;
		return err;
	}
	err = upload_wait(cm);
	if (err)
		return err;
	cm->fill = !cm->fill;
	cm->b[!cm->fill].err = 0;
	err = -pthread_create(&cm->uploader, NULL, uploader_main, cm);
	if (!err) {
		cm->uploading = true;
		return 0;
	}
	cm->fill = !cm->fill;
	err = flush(cm, &cm->b[cm->fill]);
	if (err)
		cm->err = err;
	return err;
}

/* A hole to publish (with the entries, at the end). */
static int add_zero(struct blobcr_changeset *cm, uint64_t extent)
{
	if (cm->nzeros == cm->zeros_cap) {
		size_t cap = cm->zeros_cap ? cm->zeros_cap * 2 : 1024;
		uint64_t *nz = realloc(cm->zeros, cap * sizeof(*nz));

		if (!nz)
			return -ENOMEM;
		cm->zeros = nz;
		cm->zeros_cap = cap;
	}
	cm->zeros[cm->nzeros++] = extent;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];

	for (size_t off = 0; off < n; off += sizeof(zero)) {
		size_t k = n - off < sizeof(zero) ? n - off : sizeof(zero);

		if (memcmp(p + off, zero, k))
			return false;
	}
	return true;
}

int blobcr_commit_extent(struct blobcr_changeset *cm, uint64_t extent,
			 const void *data)
{
	uint32_t es = cm->info.extent_size;
	struct batch *b = &cm->b[cm->fill];
	struct centry *p;
	int err;

	if (cm->err)
		return cm->err;
	if (extent >= (cm->info.size + es - 1) / es)
		return -ERANGE;
	if (all_zero(data, es))
		return cm->base_empty ? 0 : add_zero(cm, extent);
	p = &b->pend[b->npend];
	memset(p, 0, sizeof(*p));
	p->extent = extent;
	p->kind = BLOBCR_EXT_DATA;
	err = blobcr_chunk_id(data, es, p->id);
	if (err)
		return err;
	memcpy(b->data + b->npend * es, data, es);
	if (++b->npend == cm->batch_cap)
		return batch_full(cm);
	return 0;
}

/* The last upload, then the holes among the entries: all there is. */
static int finish_uploads(struct blobcr_changeset *cm)
{
	int err = upload_wait(cm);

	if (!err)
		err = flush(cm, &cm->b[cm->fill]);
	for (size_t i = 0; !err && i < cm->nzeros; i++) {
		struct centry *e = add_entry(cm);

		if (!e) {
			err = -ENOMEM;
			break;
		}
		memset(e, 0, sizeof(*e));
		e->extent = cm->zeros[i];
		e->kind = BLOBCR_EXT_ZERO;
	}
	cm->nzeros = 0;
	if (err)
		cm->err = err;
	return err;
}

/*
 * The copies in @l that count for this writer: live, active holders, one
 * per domain, outside the writer's own.
 */
static int counting_copies(struct blobcr_changeset *cm,
			   const struct blobcr_extent_loc *l)
{
	uint32_t doms[BLOBCR_MAX_REPLICAS];
	int n = 0;

	for (int k = 0; k < l->nreplicas; k++) {
		struct node_conn *nc = client_node(cm->c, l->replicas[k]);
		bool seen;

		if (!client_node_writable(nc))
			continue;
		seen = nc->domain == cm->c->domain_hash;
		for (int j = 0; j < n && !seen; j++)
			seen = doms[j] == nc->domain;
		if (!seen)
			doms[n++] = nc->domain;
	}
	return n;
}

/*
 * Entries whose holders no longer give R copies that count (a node died
 * during the upload) get new copies: read from a live holder, written to
 * the next nodes in the ranking.
 */
static int rereplicate_entries(struct blobcr_changeset *cm)
{
	enum { BATCH = 16 };
	struct blobcr_extent_loc locs[BATCH];
	struct blobcr_get gets[BATCH];
	struct blobcr_put puts[BATCH];
	struct centry *which[BATCH];
	uint8_t *buf = malloc((size_t)BATCH * cm->info.extent_size);
	int r = cm->c->replicas, err = buf ? 0 : -ENOMEM;
	size_t i = 0;

	while (!err && i < cm->nents) {
		size_t n = 0;

		for (; i < cm->nents && n < BATCH; i++) {
			struct centry *e = &cm->ents[i];
			struct blobcr_extent_loc *l = &locs[n];

			if (e->kind != BLOBCR_EXT_DATA)
				continue;
			memset(l, 0, sizeof(*l));
			l->kind = BLOBCR_EXT_DATA;
			memcpy(l->id, e->id, BLOBCR_ID_SIZE);
			for (int k = 0; k < e->nrep; k++)
				if (client_node_usable(client_node(cm->c, e->nodes[k])))
					l->replicas[l->nreplicas++] = e->nodes[k];
			if (!l->nreplicas || counting_copies(cm, l) >= r)
				continue; /* lost (publish will say), or fine */
			which[n] = e;
			gets[n] = (struct blobcr_get){ .loc = l,
				.buf = buf + n * cm->info.extent_size,
				.len = cm->info.extent_size };
			n++;
		}
		if (!n)
			break;
		err = blobcr_get_chunks(cm->c, gets, n);
		for (size_t j = 0; j < n && !err; j++) {
			memset(&puts[j], 0, sizeof(puts[j]));
			memcpy(puts[j].id, locs[j].id, BLOBCR_ID_SIZE);
			puts[j].data = gets[j].buf;
			puts[j].len = gets[j].len;
			puts[j].nhave = locs[j].nreplicas;
			memcpy(puts[j].replicas, locs[j].replicas,
			       sizeof(puts[j].replicas));
			puts[j].nexclude = 1;
			puts[j].exclude[0] = cm->c->domain_hash;
		}
		if (!err)
			err = blobcr_put_chunks(cm->c, puts, n);
		for (size_t j = 0; j < n && !err; j++) {
			which[j]->nrep = puts[j].nreplicas;
			memcpy(which[j]->nodes, puts[j].replicas,
			       sizeof(which[j]->nodes));
		}
	}
	free(buf);
	return err;
}

/* The header PUBLISH and PUBLISH_BEGIN share: what the version is. */
static void enc_version_header(struct blobcr_enc *e,
			       const struct blobcr_changeset *cm,
			       const char *label)
{
	blobcr_enc_str(e, cm->info.name);
	blobcr_enc_u32(e, cm->info.latest);
	blobcr_enc_str(e, label ? label : "");
	blobcr_enc_str(e, cm->c->domain);
	blobcr_enc_u64(e, cm->session);
}

/* @n entries from @first: a count, then each extent and where it lives. */
static void enc_entries(struct blobcr_enc *e, const struct centry *first,
			size_t n)
{
	blobcr_enc_u32(e, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		const struct centry *ce = &first[i];

		blobcr_enc_u64(e, ce->extent);
		blobcr_enc_u8(e, ce->kind);
		if (ce->kind != BLOBCR_EXT_DATA)
			continue;
		blobcr_enc_bytes(e, ce->id, BLOBCR_ID_SIZE);
		blobcr_enc_u8(e, ce->nrep);
		for (int k = 0; k < ce->nrep; k++)
			blobcr_enc_u32(e, ce->nodes[k]);
	}
}

/* One request whose reply is a u64 or u32 (@out64 or @out32), or empty. */
static int call_for(struct blobcr_changeset *cm, uint8_t op,
		    struct blobcr_enc *e, uint64_t *out64, uint32_t *out32)
{
	struct blobcr_dec d;
	void *msg;
	int err = meta_call(cm->c, op, e, &msg, &d);

	blobcr_enc_free(e);
	if (!err && out64)
		*out64 = blobcr_dec_u64(&d);
	if (!err && out32)
		*out32 = blobcr_dec_u32(&d);
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/*
 * A publish or a staged commit is answered once metad has applied every
 * entry in its transaction and written the manifest: the client's wait
 * grows by a second for each 10,000 entries (a million: 100 s), so that a
 * big version is not given up while metad is still at it.
 */
#define ENTRIES_PER_EXTRA_S 10000

static int call_applying(struct blobcr_changeset *cm, uint8_t op,
			 struct blobcr_enc *e, uint32_t *version)
{
	struct blobcr_peer *meta = &cm->c->meta;
	int base = meta->timeout_ms, err;
	uint64_t extra = cm->nents / ENTRIES_PER_EXTRA_S * 1000;

	if (extra > INT_MAX - (uint64_t)base)
		extra = INT_MAX - (uint64_t)base;
	blobcr_peer_set_timeout(meta, base + (int)extra);
	err = call_for(cm, op, e, NULL, version);
	blobcr_peer_set_timeout(meta, base);
	return err;
}

/*
 * A version too big for one request is staged at metad: BEGIN, its
 * entries in parts, then COMMIT applies them all in one transaction.
 */
static int publish_staged(struct blobcr_changeset *cm, const char *label,
			  uint32_t *version)
{
	struct blobcr_enc e;
	uint64_t stage = 0;
	int err = blobcr_enc_init(&e, 512);

	if (!err) {
		enc_version_header(&e, cm, label);
		err = call_for(cm, BLOBCR_OP_PUBLISH_BEGIN, &e, &stage, NULL);
	}
	for (size_t off = 0; !err && off < cm->nents; off += PUBLISH_PART) {
		size_t n = cm->nents - off < PUBLISH_PART ? cm->nents - off :
			   PUBLISH_PART;

		err = blobcr_enc_init(&e, 16 + n * 50);
		if (err)
			break;
		blobcr_enc_u64(&e, stage);
		enc_entries(&e, cm->ents + off, n);
		err = call_for(cm, BLOBCR_OP_PUBLISH_PART, &e, NULL, NULL);
	}
	if (!err && !(err = blobcr_enc_init(&e, 16))) {
		blobcr_enc_u64(&e, stage);
		err = call_applying(cm, BLOBCR_OP_PUBLISH_COMMIT, &e, version);
	}
	/* A part refused drops the stage at metad; else free it now. */
	if (err && stage && err != -ENOENT && !blobcr_enc_init(&e, 16)) {
		blobcr_enc_u64(&e, stage);
		call_for(cm, BLOBCR_OP_PUBLISH_ABORT, &e, NULL, NULL);
	}
	return err;
}

static int publish_once(struct blobcr_changeset *cm, const char *label,
			uint32_t *version)
{
	struct blobcr_enc e;
	int err;

	if (cm->nents > PUBLISH_PART)
		return publish_staged(cm, label, version);
	err = blobcr_enc_init(&e, 256 + cm->nents * 50);
	if (err)
		return err;
	enc_version_header(&e, cm, label);
	enc_entries(&e, cm->ents, cm->nents);
	return call_applying(cm, BLOBCR_OP_PUBLISH, &e, version);
}

int blobcr_commit_publish(struct blobcr_changeset *cm, const char *label,
			  uint32_t *version)
{
	int err = cm->err ? cm->err : finish_uploads(cm);

	if (err)
		return err; /* an upload failed: publishing would lose extents */
	err = publish_once(cm, label, version);
	if (err == -EHOSTDOWN) {
		/* A holder died since its PUT: copy those chunks once more. */
		log_warn("publish of %s: some chunks lost live replicas, re-replicating",
			 cm->info.name);
		err = client_refresh_nodes(cm->c);
		if (!err)
			err = rereplicate_entries(cm);
		if (!err)
			err = publish_once(cm, label, version);
	}
	return err;
}
