// SPDX-License-Identifier: GPL-2.0
/*
 * extmap.c - the deployed version's extent map, looked up in pages of
 * EXTMAP_PAGE extents (one request to the version manager each) and kept
 * for the deployment: a version never changes, so a miss costs no lookup
 * once its page is known.  Where a chunk's replicas live can change (a
 * repair moves them): a fetch that fails on every replica forgets the page
 * and looks it up again (extmap_forget()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blobcrd.h"

int extmap_init(struct deployment *d)
{
	struct extmap *m = &d->map;

	pthread_mutex_init(&m->lock, NULL);
	m->npages = (d->info.nr_extents + EXTMAP_PAGE - 1) / EXTMAP_PAGE;
	m->pages = calloc(m->npages ? m->npages : 1, sizeof(*m->pages));
	return m->pages ? 0 : -ENOMEM;
}

void extmap_free(struct extmap *m)
{
	for (size_t i = 0; m->pages && i < m->npages; i++)
		free(m->pages[i]);
	free(m->pages);
	m->pages = NULL;
	pthread_mutex_destroy(&m->lock);
}

/* Page @pg, looked up if not known yet; under m->lock. */
static struct blobcr_extent_loc *page(struct deployment *d,
				      struct blobcr_client *cl, size_t pg,
				      int *err)
{
	struct extmap *m = &d->map;
	uint64_t first = (uint64_t)pg * EXTMAP_PAGE, n = EXTMAP_PAGE;
	struct blobcr_extent_loc *locs;
	uint64_t *exts;

	if (m->pages[pg])
		return m->pages[pg];
	if (n > d->info.nr_extents - first)
		n = d->info.nr_extents - first;
	locs = calloc(EXTMAP_PAGE, sizeof(*locs));
	exts = malloc(n * sizeof(*exts));
	*err = locs && exts ? 0 : -ENOMEM;
	for (uint64_t i = 0; !*err && i < n; i++)
		exts[i] = first + i;
	if (!*err)
		*err = blobcr_lookup(cl, d->image, d->version, exts, n, locs);
	free(exts);
	if (*err) {
		free(locs);
		return NULL;
	}
	m->pages[pg] = locs;
	atomic_fetch_add(&d->map_lookups, 1);
	return locs;
}

int extmap_get(struct deployment *d, struct blobcr_client *cl,
	       const uint64_t *exts, size_t n, struct blobcr_extent_loc *out)
{
	struct extmap *m = &d->map;
	int err = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; !err && i < n; i++) {
		struct blobcr_extent_loc *locs;

		if (exts[i] >= d->info.nr_extents) {
			err = -ERANGE;
			break;
		}
		locs = page(d, cl, exts[i] / EXTMAP_PAGE, &err);
		if (locs)
			out[i] = locs[exts[i] % EXTMAP_PAGE];
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

void extmap_forget(struct deployment *d, const uint64_t *exts, size_t n)
{
	struct extmap *m = &d->map;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		size_t pg = exts[i] / EXTMAP_PAGE;

		if (pg < m->npages) {
			free(m->pages[pg]);
			m->pages[pg] = NULL;
		}
	}
	pthread_mutex_unlock(&m->lock);
}
