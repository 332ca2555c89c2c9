// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr never returns or commits bytes nobody wrote: a read sees what
 * was written or what the repository holds, never what the cache device
 * held before, when the cache device is slow (dm-delay), fails writes
 * (dm-flakey) or fails reads (dm-dust), and across a reload that is never
 * resumed.  Each test first puts "stale" bytes in the cache device.
 */
#include <pthread.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

#define NAME		"blobcr-stale"
#define DEV		"/dev/mapper/" NAME
#define LOWER_NAME	"blobcr-stale-lower"
#define LOWER		"/dev/mapper/" LOWER_NAME
#define CHANNEL		"stale"
#define NR_EXTENTS	16
#define DEV_SECTORS	(NR_EXTENTS * EXTENT_SECTORS)
#define DEV_BYTES	(NR_EXTENTS * EXTENT_BYTES)

#define STATUS_PRESENT	3
#define STATUS_DIRTY	4

#define SEED_STALE	111	/* in the cache device before the test */
#define SEED_REMOTE	222	/* in the "repository" */
#define SEED_WRITTEN	333	/* written through the target */

FIXTURE(stale) {
	struct helper_stats *stats;
	struct helper_opts opts;
	pid_t helper;
	bool lower;
};

FIXTURE_SETUP(stale)
{
	ASSERT_EQ(0, write_pattern(cache_disk(), 0, DEV_BYTES, SEED_STALE));
	ASSERT_EQ(0, write_pattern(remote_disk(), 0, DEV_BYTES, SEED_REMOTE));
	self->stats = helper_stats_new();
	ASSERT_NE(NULL, self->stats);
	self->opts.channel = CHANNEL;
	self->opts.remote = remote_disk();
	self->opts.cache = cache_disk();
	self->opts.quiet = true;
	self->helper = -1;
}

FIXTURE_TEARDOWN(stale)
{
	helper_kill(self->helper);
	/* A suspend makes dm-delay submit what it holds. */
	if (self->lower)
		run("dmsetup suspend " LOWER_NAME " && dmsetup resume " LOWER_NAME);
	run("dmsetup remove " NAME " 2>/dev/null");
	if (self->lower)
		EXPECT_EQ(0, run("dmsetup remove " LOWER_NAME));
}

static void start_helper(struct __test_metadata *_metadata,
			 FIXTURE_DATA(stale) *self)
{
	self->helper = helper_spawn(&self->opts, self->stats);
	ASSERT_LT(0, self->helper);
}

/* The target over @cache with feature arguments @features. */
static int create(const char *cache, const char *features)
{
	return run("dmsetup create " NAME " --table '0 %d blobcr %s %d " CHANNEL " %s'",
		   DEV_SECTORS, cache, EXTENT_SECTORS, features);
}

/*
 * A device-mapper device over the cache disk, to stack the target on:
 * "0 <sectors> @target <cache disk> 0 @args".
 */
static int create_lower(FIXTURE_DATA(stale) *self, const char *target,
			const char *args)
{
	int r = run("dmsetup create " LOWER_NAME " --table '0 %d %s %s 0 %s'",
		    DEV_SECTORS, target, cache_disk(), args);

	self->lower = !r;
	return r;
}

/* The uploaded copy of @extent in @version holds pattern @seed. */
static long long check_uploaded(const char *dir, uint64_t version,
				uint64_t extent, uint64_t seed)
{
	void *buf = xalloc(EXTENT_BYTES);
	long long bad = -2;
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%llu/%llu", dir,
		 (unsigned long long)version, (unsigned long long)extent);
	fd = open(path, O_RDONLY);
	if (fd >= 0 && read(fd, buf, EXTENT_BYTES) == EXTENT_BYTES)
		bad = check_pattern(buf, EXTENT_BYTES, extent * EXTENT_BYTES,
				    seed);
	if (fd >= 0)
		close(fd);
	free(buf);
	return bad;
}

struct io {
	bool write;
	uint64_t off;
	size_t len;
	uint64_t seed;
	volatile bool done;
	long long result;	/* read: first bad offset, -1 if none */
	int err;
};

static void *io_thread(void *arg)
{
	struct io *io = arg;
	void *buf = xalloc(io->len);
	int fd = open(DEV, (io->write ? O_WRONLY : O_RDONLY) | O_DIRECT);

	io->result = -2;
	if (fd < 0 || !buf) {
		io->err = errno;
	} else if (io->write) {
		fill_pattern(buf, io->len, io->off, io->seed);
		io->err = pwrite(fd, buf, io->len, io->off) ==
			  (ssize_t)io->len ? 0 : errno;
	} else if (pread(fd, buf, io->len, io->off) != (ssize_t)io->len) {
		io->err = errno;
	} else {
		io->result = check_pattern(buf, io->len, io->off, io->seed);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	io->done = true;
	return NULL;
}

/*
 * A whole-extent write to an absent extent is slow to reach the cache
 * device: a read of the extent meanwhile waits for it, and sees its bytes.
 */
TEST_F(stale, read_during_whole_extent_write)
{
	struct io w = { .write = true, .off = 5 * EXTENT_BYTES,
			.len = EXTENT_BYTES, .seed = SEED_WRITTEN };
	struct io r = { .off = 5 * EXTENT_BYTES + 8192, .len = 4096,
			.seed = SEED_WRITTEN };
	pthread_t tw, tr;
	char args[128];

	if (!dm_target_available("delay"))
		SKIP(return, "no dm-delay");
	/* Reads at once, writes held until the delay device is suspended. */
	snprintf(args, sizeof(args), "0 %s 0 600000", cache_disk());
	ASSERT_EQ(0, create_lower(self, "delay", args));
	ASSERT_EQ(0, create(LOWER, "2 helper_timeout_ms 0"));

	ASSERT_EQ(0, pthread_create(&tw, NULL, io_thread, &w));
	/* dm-delay's status: reads, writes it holds. */
	ASSERT_TRUE(wait_until(dm_status_field(LOWER_NAME, 4, NULL, 0) == 1));
	ASSERT_EQ(0, pthread_create(&tr, NULL, io_thread, &r));
	/* The read either came back (wrongly) or waits behind the write. */
	EXPECT_TRUE(wait_until(r.done || inflight(DEV, false) == 1));
	EXPECT_FALSE(r.done);
	ASSERT_EQ(0, run("dmsetup suspend " LOWER_NAME " && dmsetup resume " LOWER_NAME));
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	EXPECT_EQ(0, w.err);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(-1, r.result) TH_LOG("the read returned bytes nobody wrote");
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	EXPECT_EQ(0, self->stats->fetch_reqs);
}

/*
 * A whole-extent write to an absent extent fails in the cache device: the
 * extent stays absent and clean, a read fetches it, a commit skips it.
 */
TEST_F(stale, failed_whole_extent_write)
{
	struct io w = { .write = true, .off = 9 * EXTENT_BYTES,
			.len = EXTENT_BYTES, .seed = SEED_WRITTEN };
	struct blobcr_commit c;

	if (!dm_target_available("flakey"))
		SKIP(return, "no dm-flakey");
	/* Always down (0 s up, 1 s down), writes fail, reads pass. */
	ASSERT_EQ(0, create_lower(self, "flakey", "0 1 1 error_writes"));
	ASSERT_EQ(0, create(LOWER, "2 helper_timeout_ms 0"));
	/* The helper fills the cache disk itself, under the flakey device. */
	start_helper(_metadata, self);

	io_thread(&w);
	EXPECT_EQ(EIO, w.err);
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));

	EXPECT_EQ(-1, verify_pattern(DEV, 9 * EXTENT_BYTES, EXTENT_BYTES,
				     SEED_REMOTE))
		TH_LOG("the read returned bytes nobody wrote");
	EXPECT_EQ(1, self->stats->extent_fetches[9]);
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	EXPECT_EQ(0, c.nr_extents);
}

/*
 * The helper cannot read an extent of the commit set (dm-dust): the commit
 * fails and keeps its set dirty; the next one uploads the written bytes.
 */
TEST_F(stale, unreadable_extent_fails_the_commit)
{
	struct blobcr_commit c;

	if (!dm_target_available("dust"))
		SKIP(return, "no dm-dust (a debug kernel has it)");
	ASSERT_EQ(0, create_lower(self, "dust", "512"));
	ASSERT_EQ(0, create(LOWER, "1 all_present"));
	run("rm -rf /tmp/blobcr-stale-commits");
	ASSERT_EQ(0, mkdir("/tmp/blobcr-stale-commits", 0755));
	self->opts.cache = LOWER;
	self->opts.commit_dir = "/tmp/blobcr-stale-commits";
	start_helper(_metadata, self);

	ASSERT_EQ(0, write_pattern(DEV, 3 * EXTENT_BYTES, EXTENT_BYTES,
				   SEED_WRITTEN));
	/* Block 10 of extent 3 no longer reads. */
	ASSERT_EQ(0, run("dmsetup message " LOWER_NAME " 0 addbadblock %d && "
			 "dmsetup message " LOWER_NAME " 0 quiet && "
			 "dmsetup message " LOWER_NAME " 0 enable",
			 3 * EXTENT_SECTORS + 10));
	EXPECT_EQ(-EIO, channel_commit(CHANNEL, &c));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));

	ASSERT_EQ(0, run("dmsetup message " LOWER_NAME " 0 disable"));
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	EXPECT_EQ(1, c.nr_extents);
	EXPECT_EQ(-1, check_uploaded("/tmp/blobcr-stale-commits", c.version,
				     3, SEED_WRITTEN));
}

/*
 * A reload that is never resumed changes nothing the live table sees: not
 * the present extents (all_present), not the timeout.
 */
TEST_F(stale, reload_never_resumed)
{
	struct io r = { .off = 3 * EXTENT_BYTES, .len = 4096,
			.seed = SEED_REMOTE };

	ASSERT_EQ(0, create(cache_disk(), "2 helper_timeout_ms 1000"));
	ASSERT_EQ(0, run("dmsetup reload " NAME " --table '0 %d blobcr %s %d " CHANNEL " 3 all_present helper_timeout_ms 0'",
			 DEV_SECTORS, cache_disk(), EXTENT_SECTORS));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));

	/* No helper: the live table's timeout fails the read. */
	io_thread(&r);
	EXPECT_EQ(EIO, r.err) TH_LOG("read: %s (%lld)", strerror(r.err),
				     r.result);

	/* A helper: the extent is fetched, not read from the cache. */
	start_helper(_metadata, self);
	r.err = 0;
	io_thread(&r);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(-1, r.result);
	EXPECT_EQ(1, self->stats->fetch_reqs);

	/* Resumed, the new table's settings apply. */
	ASSERT_EQ(0, run("dmsetup resume " NAME));
	EXPECT_EQ(NR_EXTENTS, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
}

/*
 * all_present of a table resumed while an extent is being fetched leaves
 * that extent to its FETCH: reads of it wait for the helper's bytes.
 */
TEST_F(stale, all_present_during_fetch)
{
	struct io r1 = { .off = 7 * EXTENT_BYTES, .len = 4096,
			 .seed = SEED_REMOTE };
	struct io r2 = { .off = 7 * EXTENT_BYTES + 4096, .len = 4096,
			 .seed = SEED_REMOTE };
	pthread_t t1, t2;

	ASSERT_EQ(0, create(cache_disk(), "2 helper_timeout_ms 0"));
	self->stats->hold_fetches = 1;
	start_helper(_metadata, self);
	ASSERT_EQ(0, pthread_create(&t1, NULL, io_thread, &r1));
	ASSERT_TRUE(wait_until(self->stats->requests_read == 1));

	/* --noflush: the parked read is requeued, not waited for. */
	ASSERT_EQ(0, run("dmsetup reload " NAME " --table '0 %d blobcr %s %d " CHANNEL " 1 all_present' && "
			 "dmsetup suspend --noflush " NAME " && dmsetup resume " NAME,
			 DEV_SECTORS, cache_disk(), EXTENT_SECTORS));
	EXPECT_EQ(NR_EXTENTS - 1,
		  dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
	ASSERT_EQ(0, pthread_create(&t2, NULL, io_thread, &r2));
	EXPECT_TRUE(wait_until(r1.done || r2.done ||
			       inflight(DEV, false) == 2));
	EXPECT_FALSE(r1.done || r2.done);

	self->stats->hold_fetches = 0;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	EXPECT_EQ(0, r1.err);
	EXPECT_EQ(0, r2.err);
	EXPECT_EQ(-1, r1.result) TH_LOG("the read returned bytes nobody wrote");
	EXPECT_EQ(-1, r2.result) TH_LOG("the read returned bytes nobody wrote");
	EXPECT_EQ(NR_EXTENTS, dm_status_field(NAME, STATUS_PRESENT, NULL, 0));
}

TEST_HARNESS_MAIN
