// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr commit: the commit set is exactly what was written before the
 * ioctl, even while writes race with the upload; failures put the commit
 * set back into the dirty set; one commit at a time; the pause is
 * reported.  The helper is held at known points (helper_stats gates), never
 * raced against the clock.
 */
#include <pthread.h>
#include <sys/stat.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

#define NAME		"blobcr-commit"
#define DEV		"/dev/mapper/" NAME
#define CHANNEL		"commit"
#define NR_EXTENTS	128
#define DEV_SECTORS	(NR_EXTENTS * EXTENT_SECTORS)
#define COMMIT_DIR	"/tmp/blobcr-commits"

#define STATUS_DIRTY	4
#define STATUS_COMMITS	7
#define STATUS_VERSION	8

FIXTURE(commit) {
	struct helper_stats *stats;
	struct helper_opts opts;
	pid_t helper;
};

FIXTURE_SETUP(commit)
{
	run("rm -rf " COMMIT_DIR);
	ASSERT_EQ(0, mkdir(COMMIT_DIR, 0755));
	ASSERT_EQ(0, dm_create(NAME, DEV_SECTORS, CHANNEL,
			       "3 all_present helper_timeout_ms 600000"));
	self->stats = helper_stats_new();
	ASSERT_NE(NULL, self->stats);
	self->opts.channel = CHANNEL;
	self->opts.cache = cache_disk();
	self->opts.commit_dir = COMMIT_DIR;
	self->helper = -1;
}

FIXTURE_TEARDOWN(commit)
{
	helper_kill(self->helper);
	EXPECT_EQ(0, run("dmsetup remove " NAME));
}

static void start_helper(struct __test_metadata *_metadata,
			 FIXTURE_DATA(commit) *self)
{
	self->helper = helper_spawn(&self->opts, self->stats);
	ASSERT_LT(0, self->helper);
}

/* Compare the uploaded copy of @extent in @version with pattern @seed. */
static long long check_uploaded(uint64_t version, uint64_t extent,
				uint64_t seed)
{
	char path[256];
	void *buf = xalloc(EXTENT_BYTES);
	long long bad = -2;
	int fd;

	snprintf(path, sizeof(path), COMMIT_DIR "/%llu/%llu",
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

static int count_uploaded(uint64_t version)
{
	char cmd[256], line[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls " COMMIT_DIR "/%llu | wc -l",
		 (unsigned long long)version);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (!fgets(line, sizeof(line), p))
		line[0] = 0;
	pclose(p);
	return atoi(line);
}

TEST_F(commit, captures_written_extents)
{
	struct blobcr_commit c;
	int e;

	start_helper(_metadata, self);
	/* Extents 0-3 whole, 10 partially, 11-12 across a boundary. */
	ASSERT_EQ(0, write_pattern(DEV, 0, 4 * EXTENT_BYTES, 1));
	ASSERT_EQ(0, write_pattern(DEV, 10 * EXTENT_BYTES, EXTENT_BYTES, 1));
	ASSERT_EQ(0, write_pattern(DEV, 12 * EXTENT_BYTES - 4096, 8192, 1));
	EXPECT_EQ(7, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	{
		/* The "dirty" query: extents and sectors a commit would take. */
		char line[128] = "";
		FILE *p = popen("dmsetup message " NAME " 0 dirty", "r");

		ASSERT_NE(NULL, p);
		if (!fgets(line, sizeof(line), p))
			line[0] = 0;
		pclose(p);
		EXPECT_STREQ("7 3584\n", line);
	}

	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	EXPECT_EQ(1, c.version);
	EXPECT_EQ(7, c.nr_extents);
	EXPECT_EQ(7, count_uploaded(1));
	for (e = 0; e < 4; e++)
		EXPECT_EQ(-1, check_uploaded(1, e, 1));
	EXPECT_EQ(-1, check_uploaded(1, 10, 1));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_COMMITS, NULL, 0));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_VERSION, NULL, 0));

	/* Nothing written since: an empty commit. */
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	EXPECT_EQ(2, c.version);
	EXPECT_EQ(0, c.nr_extents);
}

struct racer {
	int first, count;
	uint64_t seed;
	int err;
};

/* Each test runs in its own process: one background commit at a time. */
static int commit_result;

/* The commit in progress has taken its set (nr_committing is not 0). */
static bool committing(void)
{
	struct blobcr_info info;

	return !channel_info(CHANNEL, &info) && info.nr_committing;
}

static void *commit_thread(void *arg)
{
	struct blobcr_commit *c = arg;

	commit_result = channel_commit(CHANNEL, c);
	return NULL;
}

static void *write_thread(void *arg)
{
	struct racer *r = arg;

	r->err = write_pattern(DEV, (uint64_t)r->first * EXTENT_BYTES,
			       (size_t)r->count * EXTENT_BYTES, r->seed);
	return NULL;
}

static void race(struct __test_metadata *_metadata,
		 FIXTURE_DATA(commit) *self, bool uploaded_replies)
{
	struct racer w = { .first = 0, .count = 32, .seed = 3 };
	struct blobcr_info info;
	struct blobcr_commit c;
	pthread_t tc, tw;
	int e;

	self->opts.upload_delay_ms = 20;
	self->opts.uploaded_replies = uploaded_replies;
	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, 32 * EXTENT_BYTES, 2));

	/* The helper uploads one extent, then waits for us. */
	self->stats->upload_limit = 1;
	ASSERT_EQ(0, pthread_create(&tc, NULL, commit_thread, &c));
	ASSERT_TRUE(wait_until(self->stats->uploaded == 1));
	ASSERT_EQ(0, channel_info(CHANNEL, &info));
	ASSERT_EQ(32, info.nr_committing);
	/* The upload runs: overwrite everything it has to read. */
	ASSERT_EQ(0, pthread_create(&tw, NULL, write_thread, &w));
	/* Let the helper go on once writes wait for it. */
	EXPECT_TRUE(wait_until(inflight(DEV, true) > 0));
	self->stats->upload_limit = 0;
	pthread_join(tw, NULL);
	pthread_join(tc, NULL);
	ASSERT_EQ(0, w.err);
	ASSERT_EQ(0, commit_result);
	EXPECT_EQ(32, c.nr_extents);

	/* Version 1 holds the old bytes only, the device the new ones. */
	for (e = 0; e < 32; e++)
		EXPECT_EQ(-1, check_uploaded(c.version, e, 2));
	EXPECT_EQ(-1, verify_pattern(DEV, 0, 32 * EXTENT_BYTES, 3));
	EXPECT_EQ(32, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));

	/* And the next commit holds the new ones. */
	self->opts.upload_delay_ms = 0;
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	for (e = 0; e < 32; e++)
		EXPECT_EQ(-1, check_uploaded(c.version, e, 3));
}

TEST_F(commit, racing_writes_do_not_leak)
{
	race(_metadata, self, false);
}

TEST_F(commit, racing_writes_do_not_leak_with_uploaded)
{
	race(_metadata, self, true);
	EXPECT_LE(32, self->stats->uploaded);
}

TEST_F(commit, uploaded_extents_accept_writes_early)
{
	struct blobcr_info info;
	struct blobcr_commit c;
	pthread_t tc;

	/* The helper uploads extent 0 (and says so), then waits for us. */
	self->opts.uploaded_replies = true;
	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, 16 * EXTENT_BYTES, 4));
	self->stats->upload_limit = 1;
	ASSERT_EQ(0, pthread_create(&tc, NULL, commit_thread, &c));
	ASSERT_TRUE(wait_until(self->stats->uploaded == 1));
	/* Extent 0 is uploaded: the write goes through before the end. */
	ASSERT_EQ(0, write_pattern(DEV, 0, EXTENT_BYTES, 5));
	/* The write completed while the commit still runs. */
	ASSERT_EQ(0, channel_info(CHANNEL, &info));
	EXPECT_EQ(16, info.nr_committing);
	self->stats->upload_limit = 0;
	pthread_join(tc, NULL);
	EXPECT_EQ(0, commit_result);
	EXPECT_EQ(-1, check_uploaded(c.version, 0, 4));
}

TEST_F(commit, failed_commit_keeps_dirty)
{
	struct blobcr_commit c;

	self->opts.commit_status = -EIO;
	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 5 * EXTENT_BYTES, 3 * EXTENT_BYTES, 6));
	EXPECT_EQ(-EIO, channel_commit(CHANNEL, &c));
	EXPECT_EQ(3, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	ASSERT_EQ(0, write_pattern(DEV, 6 * EXTENT_BYTES, 2 * EXTENT_BYTES, 7));
	EXPECT_EQ(3, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_COMMITS, NULL, 0));

	helper_kill(self->helper);
	self->opts.commit_status = 0;
	start_helper(_metadata, self);
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	EXPECT_EQ(3, c.nr_extents);
	EXPECT_EQ(-1, check_uploaded(c.version, 5, 6));
	EXPECT_EQ(-1, check_uploaded(c.version, 7, 7));
}

TEST_F(commit, no_helper_times_out)
{
	struct blobcr_commit c;

	ASSERT_EQ(0, run("dmsetup message " NAME " 0 helper_timeout_ms 300"));
	ASSERT_EQ(0, write_pattern(DEV, 0, EXTENT_BYTES, 8));
	EXPECT_EQ(-ETIMEDOUT, channel_commit(CHANNEL, &c));
	EXPECT_EQ(1, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
}

/* The device goes away under a queued commit: ENODEV, not a helper's EIO. */
TEST_F(commit, removal_fails_commit_with_enodev)
{
	struct blobcr_commit c;
	pthread_t tc;

	ASSERT_EQ(0, run("dmsetup message " NAME " 0 helper_timeout_ms 0"));
	ASSERT_EQ(0, write_pattern(DEV, 0, EXTENT_BYTES, 8));
	ASSERT_EQ(0, pthread_create(&tc, NULL, commit_thread, &c));
	ASSERT_TRUE(wait_until(committing()));
	ASSERT_EQ(0, run("dmsetup remove " NAME));
	pthread_join(tc, NULL);
	EXPECT_EQ(-ENODEV, commit_result);
	/* For the teardown. */
	ASSERT_EQ(0, dm_create(NAME, DEV_SECTORS, CHANNEL, "1 all_present"));
}

TEST_F(commit, helper_killed_before_upload_hands_commit_on)
{
	struct blobcr_commit c;
	pthread_t tc;

	self->opts.no_reply = true;
	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, 2 * EXTENT_BYTES, 9));
	ASSERT_EQ(0, pthread_create(&tc, NULL, commit_thread, &c));
	ASSERT_TRUE(wait_until(self->stats->requests_read >= 1));
	helper_kill(self->helper);
	self->opts.no_reply = false;
	start_helper(_metadata, self);
	pthread_join(tc, NULL);
	EXPECT_EQ(0, commit_result);
	EXPECT_EQ(2, c.nr_extents);
	EXPECT_EQ(-1, check_uploaded(c.version, 1, 9));
}

TEST_F(commit, one_at_a_time)
{
	struct blobcr_commit c, c2;
	pthread_t tc;

	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, 4 * EXTENT_BYTES, 10));
	self->stats->upload_limit = 1;
	ASSERT_EQ(0, pthread_create(&tc, NULL, commit_thread, &c));
	ASSERT_TRUE(wait_until(committing()));
	EXPECT_EQ(-EBUSY, channel_commit(CHANNEL, &c2));
	self->stats->upload_limit = 0;
	pthread_join(tc, NULL);
	EXPECT_EQ(0, commit_result);
}

/*
 * The pause is part of the ioctl.  That it does not grow with the dirty
 * data is a speed claim: bench/kernel/run measures it (part 3).
 */
TEST_F(commit, pause_is_reported)
{
	struct blobcr_commit c;
	uint64_t t0, ns;

	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, NR_EXTENTS * EXTENT_BYTES, 12));
	t0 = now_ns();
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	ns = now_ns() - t0;
	EXPECT_EQ(NR_EXTENTS, c.nr_extents);
	EXPECT_LT(0, c.pause_ns);
	EXPECT_GE(ns, c.pause_ns);
	TH_LOG("pause: %llu us at %d extents",
	       (unsigned long long)c.pause_ns / 1000, NR_EXTENTS);
}

TEST_F(commit, nowait_then_wait)
{
	struct blobcr_commit c = { .flags = BLOBCR_COMMIT_F_NOWAIT }, w;
	struct blobcr_info info;
	int fd;

	start_helper(_metadata, self);
	ASSERT_EQ(0, write_pattern(DEV, 0, 8 * EXTENT_BYTES, 13));
	fd = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, fd);

	/* Returns once writes resume, while the helper is held. */
	self->stats->upload_limit = 1;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_COMMIT, &c));
	ASSERT_EQ(0, channel_info(CHANNEL, &info));
	EXPECT_EQ(8, info.nr_committing);
	EXPECT_LE(1, c.commit_id);
	EXPECT_EQ(0, c.version);
	EXPECT_EQ(8, c.nr_extents);

	memset(&w, 0, sizeof(w));
	w.commit_id = c.commit_id + 1;
	EXPECT_EQ(-1, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	w.commit_id = c.commit_id;
	w.flags = BLOBCR_COMMIT_F_NOWAIT;
	EXPECT_EQ(-1, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	w.flags = 0;
	self->stats->upload_limit = 0;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(1, w.version);
	EXPECT_EQ(8, w.nr_extents);
	EXPECT_EQ(-1, check_uploaded(1, 7, 13));
	/* Output fields must come in zero. */
	EXPECT_EQ(-1, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	/* Waiting again for the same, finished commit: same answer. */
	w.version = 0;
	w.nr_extents = 0;
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(1, w.version);

	/* Once a later commit ended, the first one's result is gone. */
	ASSERT_EQ(0, channel_commit(CHANNEL, &c));
	w.version = 0;
	w.nr_extents = 0;
	EXPECT_EQ(-1, ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w));
	EXPECT_EQ(ESTALE, errno);
	/* commit_id must be zero for COMMIT. */
	memset(&c, 0, sizeof(c));
	c.commit_id = 1;
	EXPECT_EQ(-1, ioctl(fd, BLOBCR_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST_HARNESS_MAIN
