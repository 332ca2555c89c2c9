/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reference helper for the dm-blobcr selftests (as selftests/ublk keeps
 * kublk): serves FETCH from a local "remote" file or block device and
 * COMMIT into a directory, with knobs to make it slow, failing or silent.
 */
#ifndef BLOBCR_HELPER_H
#define BLOBCR_HELPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/dm-blobcr.h>

#define HELPER_MAX_EXTENTS	65536

struct helper_opts {
	const char *channel;		/* name under /dev/blobcr/ */
	const char *remote;		/* source of fetched bytes; NULL: zeros */
	const char *cache;		/* the cache device */
	const char *commit_dir;		/* COMMIT: <dir>/<version>/<extent>;
					 * NULL: read the extents, store nothing */
	unsigned int fetch_delay_ms;	/* sleep before each FETCH reply */
	unsigned int upload_delay_ms;	/* sleep per committed extent */
	int fetch_status;		/* FETCH reply status (0: do the work) */
	int commit_status;		/* COMMIT reply status */
	bool no_reply;			/* read requests, never answer */
	bool uploaded_replies;		/* send UPLOADED per extent */
	bool quiet;
	unsigned int threads;		/* serving threads (0 or 1: one) */
};

/*
 * Counters in shared memory, written by the helper process, and two gates
 * the test may close to hold the helper at a known point.
 */
struct helper_stats {
	volatile uint32_t hold_fetches;	/* set: FETCHes wait before replying */
	volatile uint64_t upload_limit;	/* non-zero: uploads wait while this
					 * many extents were uploaded */
	volatile uint64_t fetch_reqs;
	volatile uint64_t fetch_extents;
	volatile uint64_t prefetch_reqs;
	volatile uint64_t requests_read;
	volatile uint64_t commits;
	volatile uint64_t last_version;
	volatile uint64_t uploaded;
	volatile uint8_t extent_fetches[HELPER_MAX_EXTENTS];
};

/* Map a zeroed helper_stats shared with children.  NULL on error. */
struct helper_stats *helper_stats_new(void);

/*
 * Serve the channel until it goes away or a fatal error.  Returns 0 when
 * the channel went away, -errno otherwise.  @ready_fd >= 0 gets one byte
 * once attached.
 */
int helper_serve(const struct helper_opts *o, struct helper_stats *stats,
		 int ready_fd);

/* Fork a helper process, return its pid once attached, -1 on error. */
pid_t helper_spawn(const struct helper_opts *o, struct helper_stats *stats);

/* SIGKILL and reap a helper. */
void helper_kill(pid_t pid);

/* Open /dev/blobcr/<channel>; -1 with errno on error. */
int channel_open(const char *channel, int flags);

/* BLOBCR_IOC_GET_INFO on a fresh fd; 0 or -errno. */
int channel_info(const char *channel, struct blobcr_info *info);

/* BLOBCR_IOC_COMMIT; 0 or -errno. */
int channel_commit(const char *channel, struct blobcr_commit *c);

#endif /* BLOBCR_HELPER_H */
