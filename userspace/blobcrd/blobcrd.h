/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcrd.h - the per-host helper of dm-blobcr (the paper's mirroring
 * module): serves one target's FETCH and COMMIT requests from and into the
 * repository.
 */
#ifndef BLOBCRD_H
#define BLOBCRD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blobcr.h"
#include "cacheio.h"
#include "channel.h"

/* Extents per FETCH or COMMIT batch (one libaio submission). */
#define BLOBCRD_BATCH 32

/* Extents requested ahead of the furthest miss, in the recorded order. */
#define PREFETCH_WINDOW 32
#define PREFETCH_ANCESTORS 8	/* base-chain steps searched for an order */

/* Sequential read-ahead (readahead.c): window from RA_MIN to ra.max. */
#define RA_MIN 16		/* extents: 4 MiB of 256 KiB extents */
#define RA_DEFAULT 0		/* off: see benchmarks.rst, issue 14 */
#define RA_LIMIT 4096		/* largest --read-ahead */
#define RA_STREAMS 4

struct ra_stream {
	uint64_t next;		/* where the last miss of the stream ended */
	uint64_t ahead;		/* where its read-ahead ended */
	uint64_t window;	/* extents read ahead at its last miss */
	uint64_t used;		/* clock of its last miss; 0: unused */
};

struct readahead {
	pthread_mutex_t lock;
	struct ra_stream s[RA_STREAMS];
	uint64_t clock;
	uint64_t max;		/* largest window, extents; 0: off */
	uint64_t requested;	/* extents asked for */
};

/* The version's extent map, by pages of one lookup (extmap.c). */
#define EXTMAP_PAGE 4096

struct extmap {
	pthread_mutex_t lock;
	struct blobcr_extent_loc **pages;	/* NULL: not looked up yet */
	size_t npages;
};

/* Adaptive prefetch state (prefetch.c). */
struct prefetch {
	pthread_mutex_t lock;
	bool recording;		/* no order stored for our version: record one */
	bool saved;		/* recorded order stored (once) */
	uint64_t *order;	/* extents, first touch first */
	size_t n;
	uint64_t *seen;		/* recording: bitmap of extents in order[] */
	uint32_t *pos;		/* replaying: extent -> index in order[] */
	uint32_t cursor;	/* replaying: order[] below this was requested */
	uint64_t requested;	/* replaying: extents asked for */
};

/* What one blobcrd serves; fixed once started. */
struct deployment {
	const char *meta;		/* version manager address */
	struct blobcr_client_opts repo_opts; /* our key */
	struct blobcr_key *key;		/* ours: marks our versions' labels */
	const char *channel;		/* /dev/blobcr/<channel> */
	const char *dm_name;		/* the device-mapper device (messages) */
	const char *cache;		/* the cache device */
	const char *keep_dir;		/* kept bitmaps (keep.c); NULL: default */
	char image[BLOBCR_NAME_MAX];	/* FETCH reads image@version */
	uint32_t version;
	char commit_image[BLOBCR_NAME_MAX]; /* COMMIT publishes here */
	uint32_t commit_base;		/* its version this deployment started from */
	const char *tag;		/* label of the versions we publish */
	const char *label_file;		/* operator's label for the next commit */
	int threads;
	int verbose;
	uint64_t read_ahead;		/* --read-ahead: largest window */
	uint32_t lease_ms;		/* the term of our lease */
	uint32_t fetch_retry_ms;	/* --fetch-retry-s: an unreachable
					 * repository is tried this long */

	int chfd;			/* attached channel, shared by workers */
	int stop_fd;			/* eventfd: readable once we must stop */
	struct blobcr_info info;	/* the target's geometry */
	uint32_t extent_size;		/* bytes */
	struct blobcr_client *cl;	/* main thread's: setup and shutdown */
	struct prefetch pf;
	struct readahead ra;
	struct extmap map;
	atomic_bool target_gone;	/* the channel reported ENODEV */
	atomic_bool stopping;		/* workers and restore: finish up */

	/* counters, for the log at exit and metrics_write() */
	atomic_uint_fast64_t misses;	/* demand FETCHes: I/O waited on them */
	atomic_uint_fast64_t fetched_extents;
	atomic_uint_fast64_t zero_extents;
	atomic_uint_fast64_t fetch_failures;
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t map_lookups;	/* extent map pages looked up */
	atomic_uint_fast64_t commit_failures;
	atomic_uint_fast64_t commit_ms;	/* summed over the commits */
	atomic_uint_fast64_t commit_extents; /* summed over the commits */
	atomic_uint_fast64_t last_commit_ms;
	const char *metrics_dir;	/* node_exporter's textfile directory */
};

/*
 * metrics_write() - the counters above in the Prometheus text format,
 * atomically replacing METRICS_DIR/blobcrd-DMNAME.prom; nothing without
 * --metrics-dir.  Any thread may call it.
 */
void metrics_write(struct deployment *d);
/* metrics_remove() - at a stop: no series of a deployment that is gone. */
void metrics_remove(struct deployment *d);

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

/* prefetch.c */
int prefetch_init(struct deployment *d, struct blobcr_client *cl);
void prefetch_free(struct prefetch *p);
/* A demand FETCH of [first, first + n) was served: record or replay. */
void prefetch_on_miss(struct deployment *d, uint64_t first, uint64_t n);
/* Store the recorded order with the version, once. */
void prefetch_save(struct deployment *d, struct blobcr_client *cl);
/* Ask the target to prefetch extents [first, first + n). */
void prefetch_send(struct deployment *d, uint64_t first, uint64_t n);

/* readahead.c */
void readahead_init(struct readahead *ra, uint64_t max);
void readahead_free(struct readahead *ra);
/* A demand miss of [first, first + n) is about to be served. */
void readahead_on_miss(struct deployment *d, uint64_t first, uint64_t n);

/* extmap.c */
int extmap_init(struct deployment *d);
void extmap_free(struct extmap *m);
/* Where the @n extents @exts of the version live; Return: 0 or -errno. */
int extmap_get(struct deployment *d, struct blobcr_client *cl,
	       const uint64_t *exts, size_t n, struct blobcr_extent_loc *out);
/* Look the pages of @exts up again next time (replicas moved). */
void extmap_forget(struct deployment *d, const uint64_t *exts, size_t n);

/* keep.c */
struct kept;
/*
 * Before serving a fresh target: the bitmap saved for its cache, read and
 * deleted (NULL: none, or not usable; the log says why).
 */
struct kept *keep_take(struct deployment *d);
/* While serving: mark present the extents of @k the cache still holds. */
void keep_restore(struct deployment *d, struct worker *w, struct kept *k);
void keep_free(struct kept *k);
/* Clean stop: save which extents hold the shown version's bytes. */
void keep_save(struct deployment *d);

/* blobcrd.c */
void logmsg(const struct deployment *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* BLOBCRD_H */
