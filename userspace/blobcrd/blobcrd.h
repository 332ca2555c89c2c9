/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcrd.h - the per-host helper of dm-blobcr (the paper's mirroring
 * module): serves one target's FETCH and COMMIT requests from and into the
 * repository.
 */
#ifndef BLOBCRD_H
#define BLOBCRD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blobcr.h"
#include "cacheio.h"
#include "channel.h"

/* Extents per FETCH or COMMIT batch (one libaio submission). */
#define BLOBCRD_BATCH 32

/* What one blobcrd serves; fixed once started. */
struct deployment {
	const char *meta;		/* version manager address */
	const char *channel;		/* /dev/blobcr/<channel> */
	const char *cache;		/* the cache device */
	char image[BLOBCR_NAME_MAX];	/* FETCH reads image@version */
	uint32_t version;
	char commit_image[BLOBCR_NAME_MAX]; /* COMMIT publishes here */
	uint32_t commit_base;		/* its version this deployment started from */
	const char *tag;		/* label of the versions we publish */
	int threads;
	int verbose;

	int chfd;			/* attached channel, shared by workers */
	int stop_fd;			/* eventfd: readable once we must stop */
	struct blobcr_info info;	/* the target's geometry */
	uint32_t extent_size;		/* bytes */

	/* counters, for the log at exit */
	atomic_uint_fast64_t fetched_extents;
	atomic_uint_fast64_t zero_extents;
	atomic_uint_fast64_t fetch_failures;
	atomic_uint_fast64_t commits;
};

/* One serving thread, with its own repository handle and aio context. */
struct worker {
	struct deployment *d;
	struct blobcr_client *cl;
	struct cacheio io;
	void *bufs[BLOBCRD_BATCH];	/* extent_size bytes each, aligned */
	uint64_t exts[BLOBCRD_BATCH];
	struct blobcr_extent_loc locs[BLOBCRD_BATCH];
	struct blobcr_get gets[BLOBCRD_BATCH];
};

/* serve.c */
void serve_fetch(struct worker *w, const struct blobcr_request *rq);
void serve_commit(struct worker *w, const struct blobcr_request *rq);

/* blobcrd.c */
void logmsg(const struct deployment *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* BLOBCRD_H */
