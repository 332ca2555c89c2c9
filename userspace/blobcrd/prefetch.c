// SPDX-License-Identifier: GPL-2.0
/*
 * prefetch.c - adaptive prefetch, kept across runs (the paper's 3.1.4).
 *
 * The first deployment of a version records the order in which it first
 * touched its extents (demand FETCHes only) and stores it with the version
 * at the version manager, at its first commit or when it stops.  Later
 * deployments of that version load the order and, on each miss, ask the
 * target to prefetch the next extents of the order: a bounded window ahead
 * of the furthest miss, so prefetch never runs far ahead of the workload.
 * A version nobody recorded yet, typically a checkpoint just taken, is
 * served by the order of its nearest ancestor that has one (the job that
 * wrote it ran from there); its deployment then records nothing, since
 * prefetched extents would be missing from what it saw.
 * Prefetches go through the target (its "prefetch" message), which skips
 * present extents and extents being fetched, so they never race writes.
 */
#include <errno.h>
#include <libdevmapper.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcrd.h"

#define NO_POS UINT32_MAX

void prefetch_send(struct deployment *d, uint64_t first, uint64_t n)
{
	struct dm_task *dmt = dm_task_create(DM_DEVICE_TARGET_MSG);
	char msg[64];

	snprintf(msg, sizeof(msg), "prefetch %llu %llu",
		 (unsigned long long)first, (unsigned long long)n);
	if (!dmt || !dm_task_set_name(dmt, d->dm_name) ||
	    !dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, msg) ||
	    !dm_task_run(dmt))
		logmsg(d, "prefetch message to %s failed", d->dm_name);
	if (dmt)
		dm_task_destroy(dmt);
}

static void quiet_dm_log(int level, const char *file, int line, int dm_errno,
			 const char *f, ...)
{
	(void)level; (void)file; (void)line; (void)dm_errno; (void)f;
}

/*
 * Step from version *@v of @image to the one it was built on: its base in
 * the same image (or, the base deleted, the newest older version left),
 * and from the first version of a clone, the version it was cloned from.
 * Return: false when there is none or the repository cannot say.
 */
static bool step_back(struct blobcr_client *cl, char *image, uint32_t *v)
{
	struct blobcr_version_info *vs;
	struct blobcr_image_info ii;
	uint32_t base = 0, older = 0;
	bool listed = false;
	size_t n;

	if (*v) {
		if (blobcr_version_list(cl, image, &vs, &n))
			return false;
		for (size_t i = 0; i < n; i++) {
			if (vs[i].version == *v && vs[i].base < *v) {
				listed = true;
				base = vs[i].base;
			}
			if (vs[i].version < *v && vs[i].version > older)
				older = vs[i].version;
		}
		free(vs);
		if (!listed)
			base = older;
	}
	if (base) {
		*v = base;
		return true;
	}
	if (blobcr_image_info(cl, image, &ii) || !ii.parent[0])
		return false;
	snprintf(image, BLOBCR_NAME_MAX, "%s", ii.parent);
	*v = ii.parent_version;
	return true;
}

/*
 * Load into p->order the order recorded for our version, else for its
 * nearest ancestor; @from (BLOBCR_NAME_MAX bytes) and *@fromv say whose.
 * Return: -ENOENT if none has one.
 */
static int load_order(struct deployment *d, struct blobcr_client *cl,
		      size_t *n, char *from, uint32_t *fromv)
{
	int err, step = 0;

	snprintf(from, BLOBCR_NAME_MAX, "%s", d->image);
	*fromv = d->version;
	/* Version 0: a clone with no version yet, its source's bytes. */
	err = *fromv ? blobcr_access_order_get(cl, from, *fromv, &d->pf.order, n)
		     : -ENOENT;
	while (err == -ENOENT && step++ < PREFETCH_ANCESTORS &&
	       step_back(cl, from, fromv)) {
		err = blobcr_access_order_get(cl, from, *fromv, &d->pf.order, n);
		if (err && err != -ENOENT)
			err = -ENOENT;	/* an ancestor's trouble: we record */
	}
	return err;
}

int prefetch_init(struct deployment *d, struct blobcr_client *cl)
{
	struct prefetch *p = &d->pf;
	uint64_t nr = d->info.nr_extents;
	char from[BLOBCR_NAME_MAX];
	uint32_t fromv;
	size_t n = 0;
	int err;

	pthread_mutex_init(&p->lock, NULL);
	dm_log_with_errno_init(quiet_dm_log);
	err = load_order(d, cl, &n, from, &fromv);
	if (err == -ENOENT && !d->version)
		return 0;	/* nothing to replay, and no version to record */
	if (err == -ENOENT) {
		/* Nobody recorded this version yet: we do. */
		p->recording = true;
		p->order = calloc(nr ? nr : 1, sizeof(*p->order));
		p->seen = calloc((nr + 63) / 64 ? (nr + 63) / 64 : 1, sizeof(*p->seen));
		if (p->order && p->seen)
			return 0;
		p->recording = false;
		return -ENOMEM;
	}
	if (err)
		return err;
	p->pos = malloc((nr ? nr : 1) * sizeof(*p->pos));
	if (!p->pos)
		return -ENOMEM;
	for (uint64_t e = 0; e < nr; e++)
		p->pos[e] = NO_POS;
	for (size_t i = n; i-- > 0;)
		if (p->order[i] < nr)
			p->pos[p->order[i]] = (uint32_t)i;
	p->n = n;
	logmsg(d, "prefetching by the access order recorded for %s@%u%s (%zu extents, window %u)",
	       from, fromv,
	       fromv == d->version && !strcmp(from, d->image) ? "" : ", an ancestor",
	       n, PREFETCH_WINDOW);
	return 0;
}

void prefetch_free(struct prefetch *p)
{
	free(p->order);
	free(p->seen);
	free(p->pos);
	pthread_mutex_destroy(&p->lock);
}

/* Extents of the window past @pos not requested yet, as runs, unlocked. */
static void replay(struct deployment *d, uint32_t pos)
{
	struct prefetch *p = &d->pf;
	uint64_t runs[PREFETCH_WINDOW][2];
	size_t nruns = 0;
	uint32_t from, to;

	pthread_mutex_lock(&p->lock);
	from = pos + 1 > p->cursor ? pos + 1 : p->cursor;
	to = pos + 1 + PREFETCH_WINDOW;
	if (to > p->n)
		to = (uint32_t)p->n;
	for (uint32_t i = from; i < to; i++) {
		uint64_t e = p->order[i];

		if (e >= d->info.nr_extents)
			continue;
		if (nruns && runs[nruns - 1][0] + runs[nruns - 1][1] == e)
			runs[nruns - 1][1]++;
		else if (nruns < PREFETCH_WINDOW)
			runs[nruns][0] = e, runs[nruns++][1] = 1;
	}
	if (to > p->cursor)
		p->cursor = to;
	p->requested += to > from ? to - from : 0;
	pthread_mutex_unlock(&p->lock);

	for (size_t i = 0; i < nruns; i++)
		prefetch_send(d, runs[i][0], runs[i][1]);
}

void prefetch_on_miss(struct deployment *d, uint64_t first, uint64_t n)
{
	struct prefetch *p = &d->pf;
	uint32_t furthest = NO_POS;

	if (p->recording) {
		pthread_mutex_lock(&p->lock);
		for (uint64_t e = first; e < first + n; e++) {
			if (p->seen[e / 64] & (1ULL << (e % 64)))
				continue;
			p->seen[e / 64] |= 1ULL << (e % 64);
			p->order[p->n++] = e;
		}
		pthread_mutex_unlock(&p->lock);
		return;
	}
	if (!p->pos)
		return;
	for (uint64_t e = first; e < first + n; e++)
		if (p->pos[e] != NO_POS &&
		    (furthest == NO_POS || p->pos[e] > furthest))
			furthest = p->pos[e];
	if (furthest != NO_POS)
		replay(d, furthest);
}

void prefetch_save(struct deployment *d, struct blobcr_client *cl)
{
	struct prefetch *p = &d->pf;
	uint64_t *order = NULL;
	size_t n = 0;
	int err;

	pthread_mutex_lock(&p->lock);
	if (p->recording && !p->saved && p->n) {
		n = p->n;
		order = malloc(n * sizeof(*order));
		if (order)
			memcpy(order, p->order, n * sizeof(*order));
		p->saved = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (!order)
		return;
	err = blobcr_access_order_put(cl, d->image, d->version, order, n);
	if (err && err != -EEXIST)
		logmsg(d, "cannot record the access order: %s", blobcr_strerror(err));
	else
		logmsg(d, "recorded the access order of %s@%u (%zu extents)%s",
		       d->image, d->version, n,
		       err ? ": another deployment was first" : "");
	free(order);
}
