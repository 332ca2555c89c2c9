// SPDX-License-Identifier: GPL-2.0
/*
 * send.c - blobcrctl group send: copy a checkpoint group to another
 * repository (another cloud), so that the job can restart there.
 *
 * Each member image@version becomes a new version of the image of the same
 * name at the target (created with the same geometry if absent) whose
 * content is exactly the member's.  Only the extents that differ from the
 * target image's latest version are read from the source, and of those,
 * the commit at the target uploads only the chunks the target does not
 * hold yet (deduplication by content).  The group is then published at the
 * target, in one transaction, once every member is there: a send cut
 * short leaves versions but no group, so the target's latest complete
 * group is still the previous one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "deploy.h"
#include "send.h"

/* Chunks read from the source at once. */
#define SEND_BATCH 32

struct send_stats {
	uint64_t extents, changed, read;
};

static int repo_status(int err)
{
	return !err ? 0 : err == -ENOENT ? EXIT_NOTFOUND :
	       err == -EEXIST || err == -EBUSY || err == -EAGAIN ? EXIT_CONFLICT :
	       err == -ETIMEDOUT || err == -ECONNREFUSED || err == -EHOSTDOWN ?
	       EXIT_UNAVAIL : EXIT_FAIL;
}

static bool same_extent(const struct blobcr_extent_loc *a,
			const struct blobcr_extent_loc *b)
{
	return a->kind == b->kind &&
	       (a->kind == BLOBCR_EXT_ZERO || !memcmp(a->id, b->id, BLOBCR_ID_SIZE));
}

/* The target image @name with @src's geometry, made if absent. */
static int target_image(struct blobcr_client *t, const char *name,
			const struct blobcr_image_info *src,
			struct blobcr_image_info *out)
{
	int err = blobcr_image_info(t, name, out);

	if (err == -ENOENT) {
		err = blobcr_image_create(t, name, src->size, src->extent_size);
		if (!err)
			err = blobcr_image_info(t, name, out);
	}
	if (!err && (out->size != src->size || out->extent_size != src->extent_size)) {
		fprintf(stderr, "blobcrctl: %s at the target has another size or "
			"extent size than at the source\n", name);
		return -EINVAL;
	}
	return err;
}

/* Commit at @cm the data extents of @src[0..n) from the source @s. */
static int send_data(struct blobcr_client *s, struct blobcr_changeset *cm,
		     const struct blobcr_extent_loc *src, size_t n,
		     uint32_t extent_size, uint8_t *buf, struct send_stats *st)
{
	struct blobcr_get gets[SEND_BATCH];
	int err;

	for (size_t i = 0; i < n; i++)
		gets[i] = (struct blobcr_get){ .loc = &src[i],
					       .buf = buf + i * extent_size,
					       .len = extent_size };
	err = blobcr_get_chunks(s, gets, n);
	for (size_t i = 0; i < n && !err; i++)
		err = blobcr_commit_extent(cm, src[i].extent, gets[i].buf);
	st->read += n;
	return err;
}

/*
 * Make the latest version of @name at the target hold what @name@@version
 * holds at the source; *@tver receives it.  Return: 0 or -errno.
 */
static int send_image(struct blobcr_client *s, struct blobcr_client *t,
		      const char *name, uint32_t version, const char *label,
		      uint32_t *tver, struct send_stats *st)
{
	struct blobcr_image_info si, ti;
	struct blobcr_extent_loc *src = NULL, *dst = NULL, *pend = NULL;
	struct blobcr_changeset *cm = NULL;
	uint64_t *ext = NULL, n;
	uint8_t *buf = NULL;
	size_t npend = 0;
	int err = blobcr_image_info(s, name, &si);

	if (!err)
		err = target_image(t, name, &si, &ti);
	if (err)
		return err;
	n = (si.size + si.extent_size - 1) / si.extent_size;
	ext = malloc(n * sizeof(*ext));
	src = calloc(n, sizeof(*src));
	dst = calloc(n, sizeof(*dst));
	pend = calloc(SEND_BATCH, sizeof(*pend));
	buf = malloc((size_t)SEND_BATCH * si.extent_size);
	if (!ext || !src || !dst || !pend || !buf)
		err = -ENOMEM;
	for (uint64_t e = 0; !err && e < n; e++)
		ext[e] = e;
	if (!err)
		err = blobcr_lookup(s, name, version, ext, n, src);
	/* A target image without a version yet reads as zeros. */
	if (!err && ti.latest)
		err = blobcr_lookup(t, name, 0, ext, n, dst);
	if (!err)
		err = blobcr_commit_begin(t, name, &cm);
	st->extents += n;
	for (uint64_t e = 0; !err && e < n; e++) {
		if (same_extent(&src[e], &dst[e]))
			continue;
		st->changed++;
		if (src[e].kind == BLOBCR_EXT_ZERO) {
			memset(buf, 0, si.extent_size);
			err = blobcr_commit_extent(cm, e, buf);
			continue;
		}
		pend[npend++] = src[e];
		if (npend == SEND_BATCH) {
			err = send_data(s, cm, pend, npend, si.extent_size, buf, st);
			npend = 0;
		}
	}
	if (!err && npend)
		err = send_data(s, cm, pend, npend, si.extent_size, buf, st);
	if (!err)
		err = blobcr_commit_publish(cm, label, tver);
	blobcr_commit_free(cm);
	free(buf);
	free(pend);
	free(dst);
	free(src);
	free(ext);
	return err;
}

int send_cmd_group(struct blobcr_client *c, int argc, char **argv)
{
	const struct blobcr_group_info *g = NULL;
	struct blobcr_group_info *all = NULL, *tall = NULL;
	struct blobcr_client *t = NULL;
	struct blobcr_client_opts o = { 0 };
	const char **names = NULL;
	uint32_t *vers = NULL;
	size_t n = 0, tn = 0;
	char label[BLOBCR_NAME_MAX];
	int err;

	if (argc != 4 || strcmp(argv[2], "--to")) {
		fprintf(stderr, "blobcrctl: group send needs GROUP --to ADDR\n");
		return EXIT_USAGE;
	}
	err = blobcr_group_list(c, &all, &n);
	for (size_t i = 0; !err && i < n; i++)
		if (!strcmp(all[i].name, argv[1]))
			g = &all[i];
	if (!err && !g)
		err = -ENOENT;
	if (err) {
		fprintf(stderr, "blobcrctl: group %s: %s\n", argv[1],
			blobcr_strerror(err));
		blobcr_group_list_free(all, n);
		return repo_status(err);
	}
	err = blobcr_connect(argv[3], &o, &t);
	if (err) {
		fprintf(stderr, "blobcrctl: cannot reach the target blobcr-metad "
			"at %s: %s\n", argv[3], blobcr_strerror(err));
		blobcr_group_list_free(all, n);
		return EXIT_UNAVAIL;
	}
	/* Refuse before copying anything if the target has the group. */
	err = blobcr_group_list(t, &tall, &tn);
	for (size_t i = 0; !err && i < tn; i++)
		if (!strcmp(tall[i].name, g->name))
			err = -EEXIST;
	blobcr_group_list_free(tall, tn);
	names = calloc(g->nmembers, sizeof(*names));
	vers = calloc(g->nmembers, sizeof(*vers));
	if (!err && (!names || !vers))
		err = -ENOMEM;
	snprintf(label, sizeof(label), "sent:%.*s", BLOBCR_NAME_MAX - 6, g->name);
	for (uint32_t i = 0; !err && i < g->nmembers; i++) {
		const struct blobcr_group_member *m = &g->members[i];
		struct send_stats st = { 0 };

		err = send_image(c, t, m->image, m->version, label, &vers[i], &st);
		names[i] = m->image;
		if (!err)
			fprintf(stderr, "blobcrctl: %s@%" PRIu32 " sent as %s@%" PRIu32
				": %" PRIu64 " of %" PRIu64 " extents differed, %"
				PRIu64 " read\n", m->image, m->version, m->image,
				vers[i], st.changed, st.extents, st.read);
		else
			fprintf(stderr, "blobcrctl: send of %s@%" PRIu32 ": %s\n",
				m->image, m->version, blobcr_strerror(err));
	}
	if (!err) {
		err = blobcr_group_publish(t, g->name, g->nmembers, names, vers);
		if (err)
			fprintf(stderr, "blobcrctl: group %s at the target: %s\n",
				g->name, blobcr_strerror(err));
	} else if (err == -EEXIST) {
		fprintf(stderr, "blobcrctl: the target already has a group %s\n",
			g->name);
	}
	if (!err) {
		printf("%s", g->name);
		for (uint32_t i = 0; i < g->nmembers; i++)
			printf(" %s@%" PRIu32, names[i], vers[i]);
		putchar('\n');
	}
	free(names);
	free(vers);
	blobcr_close(t);
	blobcr_group_list_free(all, n);
	return repo_status(err);
}
