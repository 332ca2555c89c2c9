// SPDX-License-Identifier: GPL-2.0
/*
 * readahead.c - sequential read-ahead of misses.
 *
 * A demand miss that starts where an earlier one ended, or where our last
 * read-ahead ended, continues a sequential stream: the extents after it
 * are prefetched through the target (its "prefetch" message, which skips
 * present extents and extents being fetched), a window that doubles with
 * each such miss from RA_MIN up to --read-ahead extents (0, the default,
 * turns read-ahead off: see Documentation/benchmarks.rst, issue 14).  The reader then finds
 * its next extents present or in flight and misses again only where the
 * window ends, which starts the next one while the current miss is served.
 * A few streams are followed at once (RA_STREAMS), the least recently
 * continued one giving way to a new one; a miss that continues none starts
 * a stream with no read-ahead yet, so random reads prefetch nothing.
 */
#include <string.h>

#include "blobcrd.h"

void readahead_init(struct readahead *ra, uint64_t max)
{
	memset(ra, 0, sizeof(*ra));
	pthread_mutex_init(&ra->lock, NULL);
	ra->max = max;
}

void readahead_free(struct readahead *ra)
{
	pthread_mutex_destroy(&ra->lock);
}

void readahead_on_miss(struct deployment *d, uint64_t first, uint64_t n)
{
	struct readahead *ra = &d->ra;
	struct ra_stream *s = NULL, *oldest = &ra->s[0];
	uint64_t from = 0, to = 0, end = first + n;

	if (!ra->max)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->clock++;
	for (int i = 0; i < RA_STREAMS; i++) {
		struct ra_stream *c = &ra->s[i];

		if (c->used && (first == c->next || first == c->ahead)) {
			s = c;
			break;
		}
		if (c->used < oldest->used)
			oldest = c;
	}
	if (!s) {
		*oldest = (struct ra_stream){ .next = end, .ahead = end,
					      .used = ra->clock };
		pthread_mutex_unlock(&ra->lock);
		return;
	}
	s->used = ra->clock;
	s->window = s->window ? s->window * 2 : RA_MIN;
	if (s->window > ra->max)
		s->window = ra->max;
	from = end > s->ahead ? end : s->ahead;
	to = end + s->window;
	if (to > d->info.nr_extents)
		to = d->info.nr_extents;
	s->next = end;
	if (to > from) {
		s->ahead = to;
		ra->requested += to - from;
	}
	pthread_mutex_unlock(&ra->lock);
	if (to > from)
		prefetch_send(d, from, to - from);
}
