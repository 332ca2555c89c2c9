// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr under churn: reader/writer threads over a cold device while
 * the helper is killed and restarted, commits run with UPLOADED replies,
 * and the table is reloaded.  Each thread owns a set of extents and keeps
 * a model of their bytes; every read is checked against it, and the last
 * commit against the final model.  The amount of work is fixed: the
 * workers may run at most two rounds of operations ahead of the events,
 * and each event waits for one round of them (never for the clock), so a
 * slow machine takes longer and does the same test.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

/* Operations of each worker between two events. */
#define OPS_PER_ROUND	16
#define ROUNDS		16

/* One test of at most ROUNDS + 2 rounds of I/O: a loaded machine's limit. */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT	900

#define NAME		"blobcr-stress"
#define DEV		"/dev/mapper/" NAME
#define CHANNEL		"stress"
#define NR_EXTENTS	256
#define DEV_SECTORS	(NR_EXTENTS * EXTENT_SECTORS)
#define DEV_BYTES	(NR_EXTENTS * EXTENT_BYTES)
#define NR_THREADS	4
#define COMMIT_DIR	"/tmp/blobcr-stress"
#define BLOCK		4096

struct worker {
	int id;
	uint64_t remote_seed;
	volatile int *stop;
	volatile long *allowed;	/* operations this worker may have done */
	uint8_t *model;		/* DEV_BYTES, only this worker's extents */
	unsigned int seed;
	volatile long ops;
	volatile long long bad;	/* first bad offset, or -1 */
	volatile int err;
};

/* The fewest operations any worker has done, or -1 once one failed. */
static long min_ops(struct worker *w)
{
	long ops = LONG_MAX;
	int i;

	for (i = 0; i < NR_THREADS; i++) {
		if (w[i].err || w[i].bad >= 0)
			return -1;
		if (w[i].ops < ops)
			ops = w[i].ops;
	}
	return ops;
}

/* Byte source for writes: a pattern keyed by (worker, op). */
static void fill_block(uint8_t *buf, size_t len, uint64_t key)
{
	fill_pattern(buf, len, 0, key);
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = xalloc(2 * EXTENT_BYTES);
	int fd = open(DEV, O_RDWR | O_DIRECT);

	if (fd < 0 || !buf) {
		w->err = errno ? errno : ENOMEM;
		goto out;
	}
	while (!*w->stop && !w->err && w->bad < 0) {
		size_t blocks, first, n, len;
		off_t off;
		int e;

		if (w->ops >= *w->allowed) {
			usleep(1000);	/* until the next event */
			continue;
		}
		/* An extent of ours, a 4 KiB-aligned range within it. */
		e = (rand_r(&w->seed) % (NR_EXTENTS / NR_THREADS)) *
			NR_THREADS + w->id;
		blocks = EXTENT_BYTES / BLOCK;
		first = rand_r(&w->seed) % blocks;
		n = 1 + rand_r(&w->seed) % (blocks - first);
		off = (off_t)e * EXTENT_BYTES + first * BLOCK;
		len = n * BLOCK;

		if (rand_r(&w->seed) % 3 == 0) {
			fill_block(buf, len, ((uint64_t)w->id << 32) | w->ops);
			if (pwrite(fd, buf, len, off) != (ssize_t)len) {
				w->err = errno;
				break;
			}
			memcpy(w->model + off, buf, len);
		} else {
			if (pread(fd, buf, len, off) != (ssize_t)len) {
				w->err = errno;
				break;
			}
			if (memcmp(w->model + off, buf, len)) {
				size_t i;

				for (i = 0; i < len && buf[i] == w->model[off + i]; i++)
					;
				w->bad = off + i;
			}
		}
		w->ops++;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

TEST(churn)
{
	struct helper_stats *stats = helper_stats_new();
	struct helper_opts o = {
		.channel = CHANNEL, .remote = remote_disk(),
		.cache = cache_disk(), .commit_dir = COMMIT_DIR,
		.uploaded_replies = true, .threads = 2, .quiet = true,
		.fetch_delay_ms = 10,
	};
	struct worker w[NR_THREADS];
	pthread_t t[NR_THREADS];
	struct blobcr_commit c;
	volatile int stop = 0;
	volatile long allowed = 2 * OPS_PER_ROUND;
	uint64_t seed = (uint64_t)getpid() * 31 + time(NULL), e;
	uint8_t *model = xalloc(DEV_BYTES);
	pid_t helper;
	long ops = 0;
	int i, round, commits = 0;

	ASSERT_NE(NULL, stats);
	ASSERT_NE(NULL, model);
	run("rm -rf " COMMIT_DIR);
	ASSERT_EQ(0, mkdir(COMMIT_DIR, 0755));
	ASSERT_EQ(0, write_pattern(remote_disk(), 0, DEV_BYTES, seed));
	fill_pattern(model, DEV_BYTES, 0, seed);
	/* No timeout: the helper is restarted, never absent for good. */
	ASSERT_EQ(0, dm_create(NAME, DEV_SECTORS, CHANNEL,
			       "2 helper_timeout_ms 0"));
	helper = helper_spawn(&o, stats);
	ASSERT_LT(0, helper);

	for (i = 0; i < NR_THREADS; i++) {
		w[i] = (struct worker){ .id = i, .remote_seed = seed,
					.stop = &stop, .allowed = &allowed,
					.model = model,
					.seed = (unsigned int)seed + i,
					.bad = -1 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, worker_thread, &w[i]));
	}

	for (round = 0; round < ROUNDS; round++) {
		long target = (round + 1) * OPS_PER_ROUND;

		/*
		 * Every worker did this round's operations and may go on
		 * with the next one during the event.  A worker that failed
		 * ends the rounds (reported below); one that makes no
		 * progress at all for the wait's generous bound fails here.
		 */
		if (!wait_until(min_ops(w) < 0 || min_ops(w) >= target)) {
			EXPECT_LE(target, min_ops(w))
				TH_LOG("round %d: the workers are stuck", round);
			break;
		}
		if (min_ops(w) < 0)
			break;
		allowed = target + 2 * OPS_PER_ROUND;
		switch (round % 4) {
		case 0:		/* the helper dies, another takes over */
			helper_kill(helper);
			usleep(50000);
			helper = helper_spawn(&o, stats);
			ASSERT_LT(0, helper);
			break;
		case 1:
		case 3:
			if (!channel_commit(CHANNEL, &c))
				commits++;
			break;
		case 2:		/* reload, flushing or not */
			EXPECT_EQ(0, run("dmsetup reload %s --table '0 %d blobcr %s %d %s 2 helper_timeout_ms 0' && "
					 "dmsetup suspend %s %s && dmsetup resume %s",
					 NAME, DEV_SECTORS, cache_disk(),
					 EXTENT_SECTORS, CHANNEL,
					 round % 8 ? "--noflush" : "", NAME, NAME));
			break;
		}
	}
	stop = 1;
	for (i = 0; i < NR_THREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, w[i].err) TH_LOG("worker %d: %s", i,
					     strerror(w[i].err));
		EXPECT_EQ(-1, w[i].bad) TH_LOG("worker %d: bad byte at %lld",
					      i, w[i].bad);
		ops += w[i].ops;
	}
	EXPECT_LE(2, commits);

	/* A last commit: every extent it holds matches the final model. */
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	for (e = 0; e < NR_EXTENTS; e++) {
		char path[128];
		uint8_t *buf = xalloc(EXTENT_BYTES);
		int fd;

		snprintf(path, sizeof(path), COMMIT_DIR "/%llu/%llu",
			 (unsigned long long)c.version, (unsigned long long)e);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			EXPECT_EQ(EXTENT_BYTES, read(fd, buf, EXTENT_BYTES));
			EXPECT_EQ(0, memcmp(buf, model + e * EXTENT_BYTES,
					    EXTENT_BYTES))
				TH_LOG("extent %llu of version %llu differs",
				       (unsigned long long)e,
				       (unsigned long long)c.version);
			close(fd);
		}
		free(buf);
	}
	TH_LOG("%ld ops, %d commits, %llu fetch requests, %llu extents",
	       ops, commits, (unsigned long long)stats->fetch_reqs,
	       (unsigned long long)stats->fetch_extents);

	/* And the whole device matches the model. */
	{
		uint8_t *buf = xalloc(DEV_BYTES);
		int fd = open(DEV, O_RDONLY | O_DIRECT);

		ASSERT_LE(0, fd);
		ASSERT_EQ(DEV_BYTES, pread(fd, buf, DEV_BYTES, 0));
		EXPECT_EQ(0, memcmp(buf, model, DEV_BYTES));
		close(fd);
		free(buf);
	}
	helper_kill(helper);
	EXPECT_EQ(0, run("dmsetup remove " NAME));
	free(model);
}

TEST_HARNESS_MAIN
