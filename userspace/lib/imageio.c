// SPDX-License-Identifier: GPL-2.0
/*
 * imageio.c - whole-image import and export, and re-replication.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr_util.h"
#include "client_internal.h"

#define EXPORT_WINDOW (64u << 20) /* bytes of chunks fetched at once */
#define REPAIR_BATCH 16

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done,
				  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break; /* end of file: the rest reads as zeros */
		done += (size_t)r;
	}
	memset((char *)buf + done, 0, n - done);
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done,
				   (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		done += (size_t)r;
	}
	return 0;
}

int blobcr_image_import(struct blobcr_client *c, const char *name, int fd,
			uint64_t size, uint32_t extent_size,
			blobcr_progress_fn progress, void *arg)
{
	struct blobcr_changeset *cm;
	uint64_t next = (size + extent_size - 1) / extent_size;
	uint32_t version;
	uint8_t *buf;
	int err = blobcr_image_create(c, name, size, extent_size);

	if (err)
		return err;
	err = blobcr_commit_begin(c, name, &cm);
	if (err)
		return err;
	blobcr_commit_overlap(cm); /* nothing below uses @c until publish */
	buf = malloc(extent_size);
	if (!buf) {
		blobcr_commit_free(cm);
		return -ENOMEM;
	}
	for (uint64_t e = 0; e < next && !err; e++) {
		uint64_t off = e * extent_size;
		size_t n = size - off < extent_size ? size - off : extent_size;

		err = pread_full(fd, buf, n, off);
		if (n < extent_size)
			memset(buf + n, 0, extent_size - n);
		if (!err)
			err = blobcr_commit_extent(cm, e, buf);
		if (progress)
			progress(arg, off + n, size);
	}
	if (!err)
		err = blobcr_commit_publish(cm, "import", &version);
	free(buf);
	blobcr_commit_free(cm);
	/* Nothing was published: the empty image goes, as if never made. */
	if (err && blobcr_image_delete(c, name, 0))
		log_warn("import of %s failed; the empty image stays", name);
	return err;
}

/* ---- export ---- */

struct exporter {
	struct blobcr_client *c;
	const char *name;
	uint32_t version;
	int fd;
	uint64_t size;
	uint32_t es;
	uint64_t *exts;
	struct blobcr_extent_loc *locs;
	struct blobcr_get *gets;
	uint8_t *buf;
};

/* Fetch and write the extents [@first, @first + @n). */
static int export_window(struct exporter *x, uint64_t first, size_t n)
{
	size_t ng = 0;
	int err;

	for (size_t i = 0; i < n; i++)
		x->exts[i] = first + i;
	err = blobcr_lookup(x->c, x->name, x->version, x->exts, n, x->locs);
	for (size_t i = 0; i < n && !err; i++) {
		if (x->locs[i].kind != BLOBCR_EXT_DATA)
			continue;
		x->gets[ng].loc = &x->locs[i];
		x->gets[ng].buf = x->buf + i * x->es;
		x->gets[ng].len = x->es;
		ng++;
	}
	if (!err)
		err = blobcr_get_chunks(x->c, x->gets, ng);
	for (size_t j = 0; j < ng && !err; j++) {
		size_t i = (size_t)((uint8_t *)x->gets[j].buf - x->buf) / x->es;
		uint64_t off = (first + i) * x->es;
		size_t len = x->size - off < x->es ? x->size - off : x->es;

		err = pwrite_full(x->fd, x->gets[j].buf, len, off);
	}
	return err;
}

static int export_prepare(struct exporter *x, size_t window)
{
	struct stat sb;

	x->exts = calloc(window, sizeof(*x->exts));
	x->locs = calloc(window, sizeof(*x->locs));
	x->gets = calloc(window, sizeof(*x->gets));
	x->buf = malloc(window * x->es);
	if (!x->exts || !x->locs || !x->gets || !x->buf)
		return -ENOMEM;
	if (fstat(x->fd, &sb))
		return -errno;
	/* Start from an empty file so that holes read back as zeros. */
	if (S_ISREG(sb.st_mode) &&
	    (ftruncate(x->fd, 0) || ftruncate(x->fd, (off_t)x->size)))
		return -errno;
	return 0;
}

int blobcr_image_export(struct blobcr_client *c, const char *name,
			uint32_t version, int fd, blobcr_progress_fn progress,
			void *arg)
{
	struct blobcr_image_info info;
	struct exporter x = { .c = c, .name = name, .fd = fd };
	uint64_t next;
	size_t window;
	int err = blobcr_image_info(c, name, &info);

	if (err)
		return err;
	/* Pin the version: a commit during the export must not mix in. */
	x.version = version ? version : info.latest;
	x.size = info.size;
	x.es = info.extent_size;
	next = (x.size + x.es - 1) / x.es;
	window = EXPORT_WINDOW / x.es;
	err = export_prepare(&x, window);
	for (uint64_t e = 0; e < next && !err; e += window) {
		size_t n = next - e < window ? (size_t)(next - e) : window;

		err = export_window(&x, e, n);
		if (progress)
			progress(arg, (e + n) * x.es > x.size ? x.size :
				 (e + n) * x.es, x.size);
	}
	if (!err && fsync(fd) && errno != EINVAL && errno != EROFS)
		err = -errno;
	free(x.exts);
	free(x.locs);
	free(x.gets);
	free(x.buf);
	return err;
}

/* ---- re-replication ---- */

struct urep {
	struct blobcr_extent_loc loc; /* live holders */
	uint8_t nwriters;
	uint32_t writers[BLOBCR_MAX_REPLICAS]; /* domains that do not count */
};

static int under_replicated(struct blobcr_client *c, const uint8_t *after,
			    bool has_after, struct urep *out, size_t max,
			    size_t *n, bool *more)
{
	uint8_t zero[BLOBCR_ID_SIZE] = { 0 };
	struct blobcr_enc e;
	struct blobcr_dec d;
	uint32_t cnt = 0;
	void *msg;
	int err = blobcr_enc_init(&e, 64);

	if (err)
		return err;
	blobcr_enc_u8(&e, has_after);
	blobcr_enc_bytes(&e, has_after ? after : zero, BLOBCR_ID_SIZE);
	blobcr_enc_u32(&e, (uint32_t)max);
	err = meta_call(c, BLOBCR_OP_UNDER_REPLICATED, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		cnt = blobcr_dec_u32(&d);
		err = d.err ? d.err : cnt > max ? -EBADMSG : 0;
	}
	for (uint32_t i = 0; i < cnt && !err; i++) {
		struct blobcr_extent_loc *l = &out[i].loc;
		const uint8_t *id = blobcr_dec_bytes(&d, BLOBCR_ID_SIZE);

		memset(l, 0, sizeof(*l));
		l->kind = BLOBCR_EXT_DATA;
		l->nreplicas = blobcr_dec_u8(&d);
		if (!id || l->nreplicas > BLOBCR_MAX_REPLICAS) {
			err = -EBADMSG;
			break;
		}
		memcpy(l->id, id, BLOBCR_ID_SIZE);
		for (int k = 0; k < l->nreplicas; k++)
			l->replicas[k] = blobcr_dec_u32(&d);
		out[i].nwriters = blobcr_dec_u8(&d);
		if (out[i].nwriters > BLOBCR_MAX_REPLICAS) {
			err = -EBADMSG;
			break;
		}
		for (int k = 0; k < out[i].nwriters; k++)
			out[i].writers[k] = blobcr_dec_u32(&d);
		err = d.err;
	}
	*more = blobcr_dec_u8(&d);
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	*n = cnt;
	return err;
}

static int add_locations(struct blobcr_client *c, const struct blobcr_put *p,
			 size_t n)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	uint32_t cnt = 0;
	void *msg;
	int err = blobcr_enc_init(&e, 4 + n * 2 * 36);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		if (!p[i].status)
			cnt += (uint32_t)(p[i].nreplicas - p[i].nhave);
	blobcr_enc_u32(&e, cnt);
	for (size_t i = 0; i < n; i++) {
		if (p[i].status)
			continue;
		for (int k = p[i].nhave; k < p[i].nreplicas; k++) {
			blobcr_enc_bytes(&e, p[i].id, BLOBCR_ID_SIZE);
			blobcr_enc_u32(&e, p[i].replicas[k]);
		}
	}
	err = meta_call(c, BLOBCR_OP_CHUNK_ADD_LOCATIONS, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/* Copy one batch of under-replicated chunks to new nodes. */
static int repair_batch(struct blobcr_client *c, struct urep *u, size_t n,
			uint8_t *buf, struct blobcr_repair_stats *st)
{
	struct blobcr_get *g = calloc(n, sizeof(*g));
	struct blobcr_put *p = calloc(n, sizeof(*p));
	size_t np = 0;
	int err = g && p ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && !err; i++) {
		g[i].loc = &u[i].loc;
		g[i].buf = buf + i * BLOBCR_MAX_EXTENT;
		g[i].len = 0; /* any length */
	}
	if (!err)
		blobcr_get_chunks(c, g, n); /* failures are counted below */
	for (size_t i = 0; i < n && !err; i++) {
		if (g[i].status) {
			/* No copy to read, or every holder says its copy is gone. */
			st->failed++;
			st->lost += !u[i].loc.nreplicas || g[i].status == -ENOENT ||
				    g[i].status == -EUCLEAN;
			continue;
		}
		memcpy(p[np].id, u[i].loc.id, BLOBCR_ID_SIZE);
		p[np].data = g[i].buf;
		p[np].len = g[i].len;
		p[np].nhave = u[i].loc.nreplicas;
		memcpy(p[np].replicas, u[i].loc.replicas,
		       sizeof(p[np].replicas));
		/* A copy in a writer's domain dies with that writer. */
		p[np].nexclude = u[i].nwriters;
		memcpy(p[np].exclude, u[i].writers, sizeof(p[np].exclude));
		np++;
	}
	if (!err && np)
		blobcr_put_chunks(c, p, np);
	for (size_t i = 0; i < np && !err; i++)
		p[i].status ? st->failed++ : st->repaired++;
	if (!err && np)
		err = add_locations(c, p, np);
	free(g);
	free(p);
	return err;
}

/*
 * Call @fn on each batch of the chunks with fewer than R live replicas, in
 * id order, with @u room for REPAIR_BATCH of them.
 */
static int walk_under_replicated(struct blobcr_client *c, struct urep *u,
				 int (*fn)(struct blobcr_client *c,
					   struct urep *u, size_t n, void *arg),
				 void *arg)
{
	uint8_t after[BLOBCR_ID_SIZE];
	bool has_after = false, more = true;
	int err = 0;

	while (!err && more) {
		size_t n = 0;

		err = under_replicated(c, after, has_after, u, REPAIR_BATCH,
				       &n, &more);
		if (err || !n)
			break;
		memcpy(after, u[n - 1].loc.id, BLOBCR_ID_SIZE);
		has_after = true;
		err = fn(c, u, n, arg);
	}
	return err;
}

static int count_batch(struct blobcr_client *c, struct urep *u, size_t n,
		       void *count)
{
	(void)c, (void)u;
	*(uint64_t *)count += n;
	return 0;
}

int blobcr_under_replicated(struct blobcr_client *c, uint64_t *count)
{
	struct urep *u = calloc(REPAIR_BATCH, sizeof(*u));
	int err = u ? 0 : -ENOMEM;

	*count = 0;
	if (!err)
		err = walk_under_replicated(c, u, count_batch, count);
	free(u);
	return err;
}

struct repair_walk {
	uint8_t *buf;
	struct blobcr_repair_stats st;
};

static int repair_walked(struct blobcr_client *c, struct urep *u, size_t n,
			 void *arg)
{
	struct repair_walk *w = arg;

	w->st.under_replicated += n;
	return repair_batch(c, u, n, w->buf, &w->st);
}

int blobcr_repair(struct blobcr_client *c, struct blobcr_repair_stats *stp)
{
	struct repair_walk w = {
		.buf = malloc((size_t)REPAIR_BATCH * BLOBCR_MAX_EXTENT) };
	struct urep *u = calloc(REPAIR_BATCH, sizeof(*u));
	int err = u && w.buf ? client_refresh_nodes(c) : -ENOMEM;

	if (!err)
		err = walk_under_replicated(c, u, repair_walked, &w);
	free(u);
	free(w.buf);
	if (stp)
		*stp = w.st;
	if (!err && w.st.failed)
		err = -EHOSTDOWN;
	return err;
}
