// SPDX-License-Identifier: GPL-2.0
/*
 * First dm-blobcr selftest: a blobcr table with all_present over a scratch
 * disk passes bytes through to the cache device unchanged, flushes follow
 * the cache device and the mode, and bad table lines are refused.
 *
 * Runs in the test guest (tests/vm/run); the scratch disk is $BLOBCR_DISK
 * (default /dev/vda).
 */
#include "blobcr_test.h"

#define DM_NAME "blobcr-basic"
#define DM_PATH "/dev/mapper/" DM_NAME
#define BUF_SIZE (1 << 20)

static const char *scratch_disk(void)
{
	return cache_disk();
}

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	return pread(fd, buf, len, off) == (ssize_t)len ? 0 : -1;
}

FIXTURE(passthrough) {
	unsigned long long sectors;
	char *buf;
	char *check;
};

FIXTURE_SETUP(passthrough)
{
	char cmd[256];
	int fd;

	fd = open(scratch_disk(), O_RDONLY);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", scratch_disk(), strerror(errno));
	ASSERT_EQ(0, ioctl(fd, BLKGETSIZE64, &self->sectors));
	close(fd);
	self->sectors >>= 9;
	ASSERT_LE(2 * BUF_SIZE / 512, self->sectors);

	snprintf(cmd, sizeof(cmd),
		 "dmsetup create %s --table '0 %llu blobcr %s 512 basic 1 all_present'",
		 DM_NAME, self->sectors, scratch_disk());
	ASSERT_EQ(0, run("%s", cmd));
	ASSERT_EQ(0, posix_memalign((void **)&self->buf, 4096, BUF_SIZE));
	ASSERT_EQ(0, posix_memalign((void **)&self->check, 4096, BUF_SIZE));
}

FIXTURE_TEARDOWN(passthrough)
{
	EXPECT_EQ(0, run("dmsetup remove " DM_NAME));
	free(self->buf);
	free(self->check);
}

static void fill_bytes(char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(seed * 131 + i * 7 + (i >> 12));
}

TEST_F(passthrough, write_read_compare)
{
	off_t off = BUF_SIZE / 2 + 4096;	/* not extent aligned */
	int fd;

	fill_bytes(self->buf, BUF_SIZE, 1);
	fd = open(DM_PATH, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd) TH_LOG("open " DM_PATH ": %s", strerror(errno));
	ASSERT_EQ(BUF_SIZE, pwrite(fd, self->buf, BUF_SIZE, off));
	ASSERT_EQ(0, fsync(fd));
	memset(self->check, 0, BUF_SIZE);
	ASSERT_EQ(0, pread_all(fd, self->check, BUF_SIZE, off));
	close(fd);
	ASSERT_EQ(0, memcmp(self->buf, self->check, BUF_SIZE));

	/* The bytes landed at the same offset of the cache device. */
	fd = open(scratch_disk(), O_RDONLY | O_DIRECT);
	ASSERT_LE(0, fd);
	memset(self->check, 0, BUF_SIZE);
	ASSERT_EQ(0, pread_all(fd, self->check, BUF_SIZE, off));
	close(fd);
	ASSERT_EQ(0, memcmp(self->buf, self->check, BUF_SIZE));
}

TEST_F(passthrough, table_printed_back)
{
	char line[256] = "";
	char want[128];
	FILE *p;

	p = popen("dmsetup table " DM_NAME, "r");
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, fgets(line, sizeof(line), p));
	pclose(p);
	snprintf(want, sizeof(want), "0 %llu blobcr ", self->sectors);
	ASSERT_EQ(0, strncmp(line, want, strlen(want))) TH_LOG("got %s", line);
	ASSERT_NE(NULL, strstr(line, " 512 basic 1 all_present\n"))
		TH_LOG("got %s", line);
}

static int try_table(const char *args)
{
	char cmd[512];
	int r;

	snprintf(cmd, sizeof(cmd),
		 "dmsetup create blobcr-bad --table '0 8192 blobcr %s' 2>/dev/null",
		 args);
	r = run("%s", cmd);
	if (!r)
		run("dmsetup remove blobcr-bad");
	return r;
}

/* The mode gates flushes too: "fail" fails an empty flush (fsync). */
TEST_F(passthrough, flush_fails_in_mode_fail)
{
	int fd = open(DM_PATH, O_RDWR);

	ASSERT_LE(0, fd);
	EXPECT_EQ(0, fsync(fd));
	ASSERT_EQ(0, run("dmsetup message " DM_NAME " 0 mode fail"));
	EXPECT_EQ(-1, fsync(fd));
	EXPECT_EQ(EIO, errno);
	ASSERT_EQ(0, run("dmsetup message " DM_NAME " 0 mode rw"));
	EXPECT_EQ(0, fsync(fd));
	close(fd);
}

/* The write cache the device advertises is the cache device's. */
TEST(write_cache_follows_cache_device)
{
	char wc[64] = "", zero_wc[64] = "";

	if (!dm_target_available("zero"))
		SKIP(return, "no dm-zero");
	ASSERT_EQ(0, run("dmsetup create blobcr-wc-zero --table '0 8192 zero'"));
	ASSERT_EQ(0, run("dmsetup create blobcr-wc --table '0 8192 blobcr /dev/mapper/blobcr-wc-zero 512 wc 1 all_present'"));
	EXPECT_EQ(0, sysfs_block_attr("/dev/mapper/blobcr-wc-zero",
				      "queue/write_cache", zero_wc,
				      sizeof(zero_wc)));
	EXPECT_EQ(0, sysfs_block_attr("/dev/mapper/blobcr-wc",
				      "queue/write_cache", wc, sizeof(wc)));
	EXPECT_STREQ("write through\n", zero_wc);
	EXPECT_STREQ(zero_wc, wc);
	EXPECT_EQ(0, run("dmsetup remove blobcr-wc && dmsetup remove blobcr-wc-zero"));
}

/*
 * The optimal I/O size is one extent, so the block layer reads ahead two
 * extents (its default, 128 KiB, is kept for smaller extents).
 */
TEST(io_size_is_one_extent)
{
	static const struct { const char *sectors, *bytes, *ra_kb; } t[] = {
		{ "512", "262144\n", "512\n" },
		{ "8", "4096\n", "128\n" },
	};
	char cmd[256], val[64];

	if (!dm_target_available("zero"))
		SKIP(return, "no dm-zero");
	ASSERT_EQ(0, run("dmsetup create blobcr-io-zero --table '0 8192 zero'"));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(cmd, sizeof(cmd),
			 "dmsetup create blobcr-io --table '0 8192 blobcr /dev/mapper/blobcr-io-zero %s io 1 all_present'",
			 t[i].sectors);
		ASSERT_EQ(0, run(cmd));
		EXPECT_EQ(0, sysfs_block_attr("/dev/mapper/blobcr-io",
					      "queue/optimal_io_size", val, sizeof(val)));
		EXPECT_STREQ(t[i].bytes, val);
		EXPECT_EQ(0, sysfs_block_attr("/dev/mapper/blobcr-io",
					      "queue/minimum_io_size", val, sizeof(val)));
		EXPECT_STREQ(t[i].bytes, val);
		EXPECT_EQ(0, sysfs_block_attr("/dev/mapper/blobcr-io",
					      "queue/read_ahead_kb", val, sizeof(val)));
		EXPECT_STREQ(t[i].ra_kb, val);
		EXPECT_EQ(0, run("dmsetup remove blobcr-io"));
	}
	EXPECT_EQ(0, run("dmsetup remove blobcr-io-zero"));
}

/*
 * More extents than the bitmaps can address (2^31, 6.1's bitmap helpers
 * stop at 2^32) are refused, with the reason, not truncated.
 */
TEST(too_many_extents_refused)
{
	unsigned long long big = (1ULL << 31) * 8 + 8;	/* 2^31 + 1 extents */
	char args[128];

	if (!dm_target_available("zero"))
		SKIP(return, "no dm-zero");
	ASSERT_EQ(0, run("dmsetup create blobcr-huge-zero --table '0 %llu zero'",
			 2 * big));
	ASSERT_EQ(0, run("dmesg | grep -c 'Too many extents' >/tmp/blobcr-huge.n; true"));
	EXPECT_NE(0, run("dmsetup create blobcr-huge --table '0 %llu blobcr /dev/mapper/blobcr-huge-zero 8 huge 1 all_present' 2>/dev/null",
			 big));
	EXPECT_EQ(0, run("test $(dmesg | grep -c 'Too many extents') -gt $(cat /tmp/blobcr-huge.n)"));
	/* 2^32 extents, the first count 6.1's helpers would truncate. */
	snprintf(args, sizeof(args), "/dev/mapper/blobcr-huge-zero 8 huge");
	EXPECT_NE(0, run("dmsetup create blobcr-huge --table '0 %llu blobcr %s' 2>/dev/null",
			 (1ULL << 32) * 8, args));
	run("dmsetup remove blobcr-huge 2>/dev/null");
	EXPECT_EQ(0, run("dmsetup remove blobcr-huge-zero"));
}

/* A cache device shorter than the table (or empty) is refused. */
TEST(small_cache_refused)
{
	char dev[64] = "", args[128];
	FILE *p;

	ASSERT_EQ(0, run("truncate -s 1M /tmp/small-cache"));
	p = popen("losetup -f --show /tmp/small-cache", "r");
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, fgets(dev, sizeof(dev), p));
	pclose(p);
	dev[strcspn(dev, "\n")] = '\0';
	snprintf(args, sizeof(args), "%s 512 small", dev);
	EXPECT_NE(0, try_table(args)) TH_LOG("accepted a 1 MiB cache for 4 MiB");
	snprintf(args, sizeof(args), "losetup -d %s", dev);
	ASSERT_EQ(0, run("%s", args));
	/* The same loop device, now unbound: size 0. */
	snprintf(args, sizeof(args), "%s 512 small", dev);
	EXPECT_NE(0, try_table(args)) TH_LOG("accepted an unbound loop device");
}

TEST(bad_table_refused)
{
	char args[256];
	const char *d = scratch_disk();
	static const char *const bad[] = {
		"",				/* no arguments */
		"/nonexistent 512 bad",		/* no such device */
		"%s",				/* too few */
		"%s 512",			/* too few */
		"%s 500 bad",			/* not a power of two */
		"%s 4 bad",			/* too small */
		"%s 4194304 bad",		/* too big */
		"%s 16384 bad",			/* bigger than the device */
		"%s 512x bad",			/* trailing garbage */
		"%s -512 bad",			/* negative */
		"%s 512 bad/name",		/* slash in name */
		"%s 512 ..",			/* dot-dot */
		"%s 512 bad 1 bogus",		/* unknown feature */
		"%s 512 bad 2 all_present",	/* count too big */
		"%s 512 bad 1 helper_timeout_ms",	/* missing value */
		"%s 512 bad 2 helper_timeout_ms 1x",	/* bad value */
		"%s 512 bad 2 helper_timeout_ms 99999999999",
		"%s 512 bad 4 all_present helper_timeout_ms 5 x",
		"%s 512 bad 1 all_present extra",	/* too many */
	};
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(args, sizeof(args), bad[i], d);
		EXPECT_NE(0, try_table(args)) TH_LOG("accepted: %s", args);
	}
	/* And the good forms are accepted. */
	snprintf(args, sizeof(args), "%s 512 good", d);
	EXPECT_EQ(0, try_table(args));
	snprintf(args, sizeof(args), "%s 8 good 3 all_present helper_timeout_ms 0", d);
	EXPECT_EQ(0, try_table(args));
}

TEST(channel_device_lifetime)
{
	char args[256];

	snprintf(args, sizeof(args),
		 "dmsetup create blobcr-life --table '0 8192 blobcr %s 512 life'",
		 scratch_disk());
	ASSERT_EQ(0, run("%s", args));
	ASSERT_EQ(0, access("/dev/blobcr/life", F_OK));
	/* A second device may not take the same channel, same geometry or not. */
	snprintf(args, sizeof(args),
		 "dmsetup create blobcr-life2 --table '0 4096 blobcr %s 512 life' 2>/dev/null",
		 scratch_disk());
	EXPECT_NE(0, run("%s", args));
	snprintf(args, sizeof(args),
		 "dmsetup create blobcr-life2 --table '0 8192 blobcr %s 512 life' 2>/dev/null",
		 scratch_disk());
	EXPECT_NE(0, run("%s", args));
	run("dmsetup remove blobcr-life2 2>/dev/null");
	ASSERT_EQ(0, run("dmsetup remove blobcr-life"));
	ASSERT_NE(0, access("/dev/blobcr/life", F_OK));
}

TEST_HARNESS_MAIN
