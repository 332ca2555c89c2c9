// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr lazy fetch: cold reads fetch exactly what they touch, through
 * the reference helper; partial and whole-extent writes; one FETCH for
 * many waiters; helper death, absence and failure; prefetch; present
 * bitmap; reload, suspend and modes.
 */
#include <pthread.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

#define NAME		"blobcr-fetch"
#define DEV		"/dev/mapper/" NAME
#define CHANNEL		"fetch"
#define NR_EXTENTS	64
#define DEV_SECTORS	(NR_EXTENTS * EXTENT_SECTORS)
#define DEV_BYTES	(NR_EXTENTS * EXTENT_BYTES)

#define STATUS_PRESENT	3
#define STATUS_FETCHES	6
#define STATUS_HELPERS	9
#define STATUS_MODE	10

FIXTURE(lazy) {
	struct helper_stats *stats;
	struct helper_opts opts;
	pid_t helper;
	uint64_t seed;
	bool removed;
};

FIXTURE_SETUP(lazy)
{
	self->seed = (uint64_t)getpid() * 7919 + (uint64_t)time(NULL);
	ASSERT_EQ(0, write_pattern(remote_disk(), 0, DEV_BYTES, self->seed));
	ASSERT_EQ(0, dm_create(NAME, DEV_SECTORS, CHANNEL,
			       "2 helper_timeout_ms 600000"));
	self->stats = helper_stats_new();
	ASSERT_NE(NULL, self->stats);
	self->opts.channel = CHANNEL;
	self->opts.remote = remote_disk();
	self->opts.cache = cache_disk();
	self->helper = -1;
}

FIXTURE_TEARDOWN(lazy)
{
	helper_kill(self->helper);
	if (!self->removed)
		EXPECT_EQ(0, run("dmsetup remove " NAME));
}

static void start_helper(struct __test_metadata *_metadata,
			 FIXTURE_DATA(lazy) *self)
{
	self->helper = helper_spawn(&self->opts, self->stats);
	ASSERT_LT(0, self->helper);
}

/* Read @len bytes at @off of the device and check the remote's pattern. */
static long long read_check(uint64_t off, size_t len, uint64_t seed)
{
	return verify_pattern(DEV, off, len, seed);
}

TEST_F(lazy, cold_read_fetches_touched_extents)
{
	start_helper(_metadata, self);
	ASSERT_EQ(0, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));

	EXPECT_EQ(-1, read_check(3 * EXTENT_BYTES + 8192, 4096, self->seed));
	EXPECT_EQ(1, self->stats->fetch_extents);
	EXPECT_EQ(1, self->stats->extent_fetches[3]);

	/* Again: no fetch. */
	EXPECT_EQ(-1, read_check(3 * EXTENT_BYTES, EXTENT_BYTES, self->seed));
	EXPECT_EQ(1, self->stats->fetch_extents);

	/* Across an extent boundary: both extents, once each. */
	EXPECT_EQ(-1, read_check(6 * EXTENT_BYTES - 32768, 65536, self->seed));
	EXPECT_EQ(1, self->stats->extent_fetches[5]);
	EXPECT_EQ(1, self->stats->extent_fetches[6]);
	EXPECT_EQ(3, self->stats->fetch_extents);
	EXPECT_EQ(3, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
}

TEST_F(lazy, sequential_read_in_runs)
{
	int i;

	start_helper(_metadata, self);
	EXPECT_EQ(-1, read_check(10 * EXTENT_BYTES, 16 * EXTENT_BYTES,
				 self->seed));
	EXPECT_EQ(16, self->stats->fetch_extents);
	for (i = 10; i < 26; i++)
		EXPECT_EQ(1, self->stats->extent_fetches[i]);
	EXPECT_GE(16, self->stats->fetch_reqs);
	TH_LOG("16 extents in %llu FETCH requests",
	       (unsigned long long)self->stats->fetch_reqs);
}

TEST_F(lazy, partial_write_fetches_first)
{
	char *buf = xalloc(EXTENT_BYTES);
	int fd;

	ASSERT_NE(NULL, buf);
	start_helper(_metadata, self);
	fill_pattern(buf, 4096, 7 * EXTENT_BYTES + 4096, 42);
	fd = open(DEV, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	ASSERT_EQ(4096, pwrite(fd, buf, 4096, 7 * EXTENT_BYTES + 4096));
	EXPECT_EQ(1, self->stats->extent_fetches[7]);
	ASSERT_EQ(EXTENT_BYTES, pread(fd, buf, EXTENT_BYTES, 7 * EXTENT_BYTES));
	close(fd);
	EXPECT_EQ(-1, check_pattern(buf, 4096, 7 * EXTENT_BYTES, self->seed));
	EXPECT_EQ(-1, check_pattern(buf + 4096, 4096, 7 * EXTENT_BYTES + 4096,
				    42));
	EXPECT_EQ(-1, check_pattern(buf + 8192, EXTENT_BYTES - 8192,
				    7 * EXTENT_BYTES + 8192, self->seed));
	EXPECT_EQ(1, self->stats->fetch_extents);
	free(buf);
}

TEST_F(lazy, whole_extent_write_needs_no_fetch)
{
	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 8 * EXTENT_BYTES, 2 * EXTENT_BYTES, 43));
	EXPECT_EQ(0, self->stats->fetch_reqs);
	EXPECT_EQ(-1, read_check(8 * EXTENT_BYTES, 2 * EXTENT_BYTES, 43));
	EXPECT_EQ(0, self->stats->fetch_reqs);
	EXPECT_EQ(2, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
}

struct reader {
	const char *dev;	/* NULL: DEV */
	uint64_t off;
	size_t len;
	uint64_t seed;
	long long result;
	int err;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	void *buf = xalloc(r->len);
	int fd = open(r->dev ? r->dev : DEV, O_RDONLY | O_DIRECT);

	r->result = -2;
	if (fd < 0 || !buf) {
		r->err = errno;
	} else if (pread(fd, buf, r->len, r->off) != (ssize_t)r->len) {
		r->err = errno;
	} else {
		r->result = check_pattern(buf, r->len, r->off, r->seed);
		r->err = 0;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

TEST_F(lazy, concurrent_readers_one_fetch)
{
	struct reader rd[8];
	pthread_t t[8];
	int i;

	/* The helper holds its reply until all eight wait. */
	self->stats->hold_fetches = 1;
	start_helper(_metadata, self);
	for (i = 0; i < 8; i++) {
		rd[i] = (struct reader){ .off = 12 * EXTENT_BYTES + i * 32768,
					 .len = 4096, .seed = self->seed };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_thread, &rd[i]));
	}
	EXPECT_TRUE(wait_until(inflight(DEV, false) == 8));
	self->stats->hold_fetches = 0;
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, rd[i].err);
		EXPECT_EQ(-1, rd[i].result);
	}
	EXPECT_EQ(1, self->stats->fetch_reqs);
	EXPECT_EQ(1, self->stats->extent_fetches[12]);
}

TEST_F(lazy, several_helper_threads)
{
	struct reader rd[16];
	pthread_t t[16];
	int i;

	self->opts.threads = 4;
	self->opts.fetch_delay_ms = 50;
	start_helper(_metadata, self);
	for (i = 0; i < 16; i++) {
		rd[i] = (struct reader){ .off = (uint64_t)(2 * i + 1) * EXTENT_BYTES,
					 .len = 8192, .seed = self->seed };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_thread, &rd[i]));
	}
	for (i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, rd[i].err);
		EXPECT_EQ(-1, rd[i].result);
		EXPECT_EQ(1, self->stats->extent_fetches[2 * i + 1]);
	}
	EXPECT_EQ(16, self->stats->fetch_extents);
}

static int wait_requests_read(struct helper_stats *s, uint64_t n)
{
	return wait_until(s->requests_read >= n) ? 0 : -1;
}

TEST_F(lazy, helper_killed_with_requests_in_flight)
{
	struct blobcr_info info;
	struct reader rd[2];
	pthread_t t[2];
	int i;

	self->opts.no_reply = true;
	start_helper(_metadata, self);
	for (i = 0; i < 2; i++) {
		rd[i] = (struct reader){ .off = (20 + 4 * i) * EXTENT_BYTES,
					 .len = 65536, .seed = self->seed };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_thread, &rd[i]));
	}
	ASSERT_EQ(0, wait_requests_read(self->stats, 2));
	ASSERT_EQ(0, channel_info(CHANNEL, &info));
	EXPECT_EQ(2, info.fetches_inflight);
	EXPECT_EQ(1, info.nr_helpers);

	helper_kill(self->helper);
	self->helper = -1;
	ASSERT_EQ(0, channel_info(CHANNEL, &info));
	EXPECT_EQ(0, info.nr_helpers);
	EXPECT_EQ(0, info.fetches_inflight);
	EXPECT_EQ(2, info.fetches_queued);

	self->opts.no_reply = false;
	start_helper(_metadata, self);
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, rd[i].err);
		EXPECT_EQ(-1, rd[i].result);
	}
	EXPECT_EQ(1, self->stats->extent_fetches[20]);
	EXPECT_EQ(1, self->stats->extent_fetches[24]);
}

TEST_F(lazy, drop_helper_message_requeues)
{
	struct reader rd = { .off = 30 * EXTENT_BYTES, .len = 4096 };
	pthread_t t;

	rd.seed = self->seed;
	self->opts.no_reply = true;
	start_helper(_metadata, self);
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_thread, &rd));
	ASSERT_EQ(0, wait_requests_read(self->stats, 1));
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 drop_helper"));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_HELPERS, NULL, 0));
	/* The dropped helper exits (its read() says ENOTCONN). */
	helper_kill(self->helper);
	self->opts.no_reply = false;
	start_helper(_metadata, self);
	pthread_join(t, NULL);
	EXPECT_EQ(0, rd.err);
	EXPECT_EQ(-1, rd.result);
}

TEST_F(lazy, no_helper_fails_after_timeout)
{
	char *buf = xalloc(4096);
	uint64_t t0, ms;
	int fd;

	/* The table's 600 s is past the harness's limit: the message's counts. */
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 helper_timeout_ms 500"));
	fd = open(DEV, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, fd);
	t0 = now_ns();
	EXPECT_EQ(-1, pread(fd, buf, 4096, 0));
	EXPECT_EQ(EIO, errno);
	ms = (now_ns() - t0) / 1000000;
	EXPECT_LE(450, ms);
	TH_LOG("failed after %llu ms", (unsigned long long)ms);
	close(fd);
	free(buf);
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_FETCHES, NULL, 0));
}

TEST_F(lazy, late_helper_is_served)
{
	struct reader rd = { .off = 2 * EXTENT_BYTES, .len = 8192 };
	pthread_t t;

	rd.seed = self->seed;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_thread, &rd));
	EXPECT_TRUE(wait_until(inflight(DEV, false) == 1));
	start_helper(_metadata, self);
	pthread_join(t, NULL);
	EXPECT_EQ(0, rd.err);
	EXPECT_EQ(-1, rd.result);
}

TEST_F(lazy, failed_fetch_is_eio_and_retried)
{
	self->opts.fetch_status = -EIO;
	start_helper(_metadata, self);
	EXPECT_EQ(-2, read_check(9 * EXTENT_BYTES, 4096, self->seed));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	helper_kill(self->helper);
	self->opts.fetch_status = 0;
	start_helper(_metadata, self);
	EXPECT_EQ(-1, read_check(9 * EXTENT_BYTES, 4096, self->seed));
}

TEST_F(lazy, prefetch_message)
{
	start_helper(_metadata, self);
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 prefetch 40 8"));
	EXPECT_TRUE(wait_until(dm_status_field(NAME, STATUS_PRESENT,
					       NULL, 0) == 8));
	EXPECT_LE(1, self->stats->prefetch_reqs);
	EXPECT_EQ(-1, read_check(40 * EXTENT_BYTES, 8 * EXTENT_BYTES,
				 self->seed));
	EXPECT_EQ(8, self->stats->fetch_extents);
	EXPECT_NE(0, run("dmsetup message " NAME " 0 prefetch 60 5 2>/dev/null"));
	EXPECT_NE(0, run("dmsetup message " NAME " 0 prefetch 1x 5 2>/dev/null"));
	EXPECT_NE(0, run("dmsetup message " NAME " 0 prefetch 1 0 2>/dev/null"));
}

TEST_F(lazy, present_bitmap_get_and_set)
{
	struct blobcr_bitmap b = { .which = BLOBCR_BITMAP_PRESENT };
	uint64_t map[1] = { 3ULL << 48 };
	int fd;

	start_helper(_metadata, self);
	EXPECT_EQ(-1, read_check(1 * EXTENT_BYTES, 4096, self->seed));

	fd = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, fd);
	b.count = NR_EXTENTS;
	b.addr = (uintptr_t)map;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_SET_BITMAP, &b));
	map[0] = 0;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_GET_BITMAP, &b));
	EXPECT_EQ((3ULL << 48) | 2, map[0]);
	close(fd);

	/* Marked present: read from the cache, no fetch. */
	ASSERT_EQ(0, write_pattern(cache_disk(), 48 * EXTENT_BYTES,
				   EXTENT_BYTES, 77));
	EXPECT_EQ(-1, read_check(48 * EXTENT_BYTES, EXTENT_BYTES, 77));
	EXPECT_EQ(1, self->stats->fetch_extents);
	EXPECT_EQ(3, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));

	/* Restore a dirty set: only present extents take the bit. */
	fd = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, fd);
	b.which = BLOBCR_BITMAP_DIRTY;
	map[0] = (1ULL << 48) | (1ULL << 50) | 2;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_SET_BITMAP, &b));
	map[0] = 0;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_GET_BITMAP, &b));
	EXPECT_EQ((1ULL << 48) | 2, map[0]);
	close(fd);
	EXPECT_EQ(2, dm_status_field(NAME, 4, NULL, 0));
}

TEST_F(lazy, reload_keeps_state)
{
	char cmd[512];

	start_helper(_metadata, self);
	EXPECT_EQ(-1, read_check(4 * EXTENT_BYTES, 4096, self->seed));
	snprintf(cmd, sizeof(cmd),
		 "dmsetup reload %s --table '0 %d blobcr %s %d %s' && "
		 "dmsetup suspend %s && dmsetup resume %s",
		 NAME, DEV_SECTORS, cache_disk(), EXTENT_SECTORS, CHANNEL,
		 NAME, NAME);
	ASSERT_EQ(0, run("%s", cmd));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_HELPERS, NULL, 0));
	EXPECT_EQ(-1, read_check(4 * EXTENT_BYTES, EXTENT_BYTES, self->seed));
	EXPECT_EQ(1, self->stats->fetch_extents);

	/* Another geometry on the same channel is refused. */
	EXPECT_NE(0, run("dmsetup reload %s --table '0 %d blobcr %s 1024 %s' 2>/dev/null",
			 NAME, DEV_SECTORS, cache_disk(), CHANNEL));
	EXPECT_EQ(0, run("dmsetup clear %s", NAME));
}

TEST_F(lazy, noflush_suspend_with_parked_io)
{
	struct reader rd = { .off = 33 * EXTENT_BYTES, .len = 4096 };
	pthread_t t;

	/* No helper, no timeout: a suspend that waited would never end. */
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 helper_timeout_ms 0"));
	rd.seed = self->seed;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_thread, &rd));
	EXPECT_TRUE(wait_until(inflight(DEV, false) == 1));
	ASSERT_EQ(0, run("dmsetup suspend --noflush " NAME));
	ASSERT_EQ(0, run("dmsetup resume " NAME));
	start_helper(_metadata, self);
	pthread_join(t, NULL);
	EXPECT_EQ(0, rd.err);
	EXPECT_EQ(-1, rd.result);
}

TEST_F(lazy, modes)
{
	char mode[16];
	char *buf = xalloc(4096);
	int fd;

	start_helper(_metadata, self);
	dm_status_field(NAME, STATUS_MODE, mode, sizeof(mode));
	EXPECT_STREQ("rw", mode);
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 mode ro"));
	dm_status_field(NAME, STATUS_MODE, mode, sizeof(mode));
	EXPECT_STREQ("ro", mode);
	fd = open(DEV, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	EXPECT_EQ(4096, pread(fd, buf, 4096, 0));
	EXPECT_EQ(-1, pwrite(fd, buf, 4096, 0));
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 mode fail"));
	EXPECT_EQ(-1, pread(fd, buf, 4096, 0));
	ASSERT_EQ(0, run("dmsetup message " NAME " 0 mode rw"));
	EXPECT_EQ(4096, pwrite(fd, buf, 4096, 0));
	EXPECT_NE(0, run("dmsetup message " NAME " 0 mode bogus 2>/dev/null"));
	EXPECT_NE(0, run("dmsetup message " NAME " 0 bogus 2>/dev/null"));
	close(fd);
	free(buf);
}

TEST_F(lazy, removal_with_parked_io)
{
	struct reader rd = { .off = 17 * EXTENT_BYTES, .len = 4096 };
	pthread_t t;

	rd.seed = self->seed;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_thread, &rd));
	EXPECT_TRUE(wait_until(inflight(DEV, false) == 1));
	/* Swap in an error table without waiting for the parked read. */
	ASSERT_EQ(0, run("dmsetup suspend --noflush %s && "
			 "dmsetup reload %s --table '0 %d error' && "
			 "dmsetup resume %s", NAME, NAME, DEV_SECTORS, NAME));
	pthread_join(t, NULL);
	EXPECT_EQ(-2, rd.result);
	EXPECT_EQ(EIO, rd.err);
	EXPECT_NE(0, access(BLOBCR_DEV_DIR CHANNEL, F_OK));
	ASSERT_EQ(0, run("dmsetup remove " NAME));
	self->removed = true;
}

struct churn {
	int rounds;
	int err;
	uint64_t seed;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	int i;

	for (i = 0; i < c->rounds && !c->err; i++) {
		/* Whole extents 0-7, then a partial write into 8-15. */
		c->err = write_pattern(DEV, 0, 8 * EXTENT_BYTES, c->seed + i);
		if (!c->err)
			c->err = write_pattern(DEV, 8 * EXTENT_BYTES + 4096,
					       8 * EXTENT_BYTES - 8192,
					       c->seed + i);
	}
	return NULL;
}

TEST_F(lazy, reload_and_suspend_under_io)
{
	struct churn c = { .rounds = 20, .seed = 1000 };
	pthread_t t;
	int i;

	start_helper(_metadata, self);
	ASSERT_EQ(0, pthread_create(&t, NULL, churn_thread, &c));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, run("dmsetup reload %s --table '0 %d blobcr %s %d %s' && "
				 "dmsetup suspend %s %s && dmsetup resume %s",
				 NAME, DEV_SECTORS, cache_disk(), EXTENT_SECTORS,
				 CHANNEL, i % 2 ? "--noflush" : "", NAME, NAME));
		usleep(100000);
	}
	pthread_join(t, NULL);
	ASSERT_EQ(0, c.err);
	EXPECT_EQ(-1, verify_pattern(DEV, 0, 8 * EXTENT_BYTES, 1019));
	EXPECT_EQ(-1, verify_pattern(DEV, 8 * EXTENT_BYTES + 4096,
				     8 * EXTENT_BYTES - 8192, 1019));
	EXPECT_EQ(-1, verify_pattern(DEV, 8 * EXTENT_BYTES, 4096, self->seed));
	/* 1 MiB chunks from 8E + 4K: partial writes hit extents 8, 12, 15. */
	EXPECT_EQ(3, self->stats->fetch_extents);
	EXPECT_EQ(1, self->stats->extent_fetches[8]);
	EXPECT_EQ(1, self->stats->extent_fetches[12]);
	EXPECT_EQ(1, self->stats->extent_fetches[15]);
}

/*
 * failslab on the requests' slab cache: a debug kernel's fault injection,
 * aimed at the cache marked at boot (slub_debug=A,blobcr_req, which
 * selftests.vmt passes).
 */
static int fail_requests(bool on)
{
	if (on && (run("mountpoint -q /sys/kernel/debug || "
		       "mount -t debugfs none /sys/kernel/debug") ||
		   access("/sys/kernel/debug/failslab", F_OK) ||
		   run("grep -qx 1 /sys/kernel/slab/blobcr_req/failslab 2>/dev/null")))
		return -1;
	if (on)
		return run("cd /sys/kernel/debug/failslab && echo 0 >verbose && "
			   "echo Y >cache-filter && echo N >ignore-gfp-wait && "
			   "echo -1 >times && echo 100 >probability");
	return run("echo 0 >/sys/kernel/debug/failslab/probability");
}

#define STARVE_NAME	"blobcr-starve"
#define STARVE_DEV	"/dev/mapper/" STARVE_NAME
#define STARVE_READERS	(BLOBCR_RESERVE + 1)
#define BLOBCR_RESERVE	64	/* the target's reserve of requests */

/*
 * With no memory for requests and the reserve used up by FETCHes nobody
 * answers, a bio that needs one more waits for a request to be freed, and
 * the worker does not wait with it: a suspend (or a commit's drain, or a
 * removal) goes on.  Each reader reads an extent of its own, two apart, so
 * that each needs a FETCH of its own.
 */
TEST(requests_exhausted_worker_never_blocks)
{
	struct helper_stats *stats = helper_stats_new();
	struct helper_opts o = {
		.channel = "starve", .remote = remote_disk(),
		.cache = cache_disk(), .quiet = true,
	};
	struct reader rd[STARVE_READERS];
	pthread_t t[STARVE_READERS];
	struct blobcr_info info;
	uint64_t seed = 4242;
	pid_t helper;
	int i;

	ASSERT_NE(NULL, stats);
	ASSERT_EQ(0, write_pattern(remote_disk(), 0,
				   2 * STARVE_READERS * EXTENT_BYTES, seed));
	ASSERT_EQ(0, run("dmsetup create " STARVE_NAME " --table '0 %d blobcr %s %d starve 2 helper_timeout_ms 0'",
			 2 * STARVE_READERS * EXTENT_SECTORS, cache_disk(),
			 EXTENT_SECTORS));
	if (fail_requests(true)) {
		run("dmsetup remove " STARVE_NAME);
		SKIP(return, "no failslab for the requests' cache (debug kernel, slub_debug=A,blobcr_req)");
	}
	for (i = 0; i < STARVE_READERS; i++) {
		rd[i] = (struct reader){ .dev = STARVE_DEV, .seed = seed,
					 .off = 2ULL * i * EXTENT_BYTES,
					 .len = 4096 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, reader_thread, &rd[i]));
	}
	EXPECT_TRUE(wait_until(!channel_info("starve", &info) &&
			       info.fetches_queued == BLOBCR_RESERVE &&
			       inflight(STARVE_DEV, false) == STARVE_READERS));

	/* The harness's limit fails this if the worker waits for a request. */
	EXPECT_EQ(0, run("dmsetup suspend --noflush " STARVE_NAME));
	EXPECT_EQ(0, fail_requests(false));
	EXPECT_EQ(0, run("dmsetup resume " STARVE_NAME));

	helper = helper_spawn(&o, stats);
	ASSERT_LT(0, helper);
	for (i = 0; i < STARVE_READERS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, rd[i].err);
		EXPECT_EQ(-1, rd[i].result);
	}
	EXPECT_EQ(STARVE_READERS, stats->fetch_extents);
	helper_kill(helper);
	EXPECT_EQ(0, run("dmsetup remove " STARVE_NAME));
}

TEST_HARNESS_MAIN
