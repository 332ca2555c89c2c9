/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared bits of the dm-blobcr selftests: scratch disks, dmsetup, data
 * patterns.  The guest has two scratch disks: $BLOBCR_DISK (default
 * /dev/vda) is the cache device, $BLOBCR_REMOTE (default /dev/vdb) plays
 * the repository.
 */
#ifndef BLOBCR_TEST_H
#define BLOBCR_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "kselftest_harness.h"

/*
 * A test is bounded by its operations, never by the machine's speed: the
 * harness's limit only catches a hang, and must hold on a loaded machine
 * under a debug kernel.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT	300

/* How long a test waits for another party's progress before failing. */
#define WAIT_LIMIT_MS	120000

#define EXTENT_SECTORS	512
#define EXTENT_BYTES	(EXTENT_SECTORS * 512)

static inline int run(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static inline int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static inline const char *cache_disk(void)
{
	const char *d = getenv("BLOBCR_DISK");

	return d ? d : "/dev/vda";
}

static inline const char *remote_disk(void)
{
	const char *d = getenv("BLOBCR_REMOTE");

	return d ? d : "/dev/vdb";
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The 8-byte word at device offset @off (8-aligned) of pattern @seed. */
static inline uint64_t pattern_word(uint64_t off, uint64_t seed)
{
	return (off * 0x9e3779b97f4a7c15ULL) ^ (seed * 0xff51afd7ed558ccdULL);
}

static inline void fill_pattern(void *buf, size_t len, uint64_t off,
				uint64_t seed)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pattern_word(off + i * 8, seed);
}

/* Offset of the first mismatch, or -1. */
static inline long long check_pattern(const void *buf, size_t len,
				      uint64_t off, uint64_t seed)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pattern_word(off + i * 8, seed))
			return (long long)(off + i * 8);
	return -1;
}

static inline void *xalloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len))
		return NULL;
	memset(p, 0, len);
	return p;
}

/* Write pattern @seed on [@off, @off + @len) of @path with O_DIRECT. */
static inline int write_pattern(const char *path, uint64_t off, size_t len,
				uint64_t seed)
{
	size_t chunk = 1 << 20, done;
	void *buf = xalloc(chunk);
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_DIRECT);
	if (fd < 0 || !buf) {
		free(buf);
		return -1;
	}
	for (done = 0; done < len && !r; done += chunk) {
		size_t n = len - done < chunk ? len - done : chunk;

		fill_pattern(buf, n, off + done, seed);
		if (pwrite(fd, buf, n, off + done) != (ssize_t)n)
			r = -1;
	}
	if (fsync(fd))
		r = -1;
	close(fd);
	free(buf);
	return r;
}

/* Read [@off, @off + @len) of @path and compare with pattern @seed. */
static inline long long verify_pattern(const char *path, uint64_t off,
				       size_t len, uint64_t seed)
{
	void *buf = xalloc(len);
	long long bad = -2;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd >= 0 && buf && pread(fd, buf, len, off) == (ssize_t)len)
		bad = check_pattern(buf, len, off, seed);
	if (fd >= 0)
		close(fd);
	free(buf);
	return bad;
}

/* Create the blobcr device @name over the cache disk; 0 on success. */
static inline int dm_create(const char *name, unsigned long long sectors,
			    const char *channel, const char *features)
{
	return run("dmsetup create %s --table '0 %llu blobcr %s %u %s%s%s'",
		   name, sectors, cache_disk(), EXTENT_SECTORS, channel,
		   features ? " " : "", features ? features : "");
}

/* Parse field @idx (0: start) of "dmsetup status @name"; -1 on error. */
static inline long long dm_status_field(const char *name, int idx,
					char *word, size_t wlen)
{
	char cmd[256], line[512], *tok, *save;
	long long v = -1;
	FILE *p;
	int i = 0;

	snprintf(cmd, sizeof(cmd), "dmsetup status %s", name);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fgets(line, sizeof(line), p)) {
		for (tok = strtok_r(line, " \n", &save); tok;
		     tok = strtok_r(NULL, " \n", &save), i++) {
			if (i != idx)
				continue;
			if (word)
				snprintf(word, wlen, "%s", tok);
			v = strtoll(tok, NULL, 10);
			break;
		}
	}
	pclose(p);
	return v;
}

/*
 * Wait until @cond holds, polling every 10 ms for at most WAIT_LIMIT_MS:
 * the bound is for another party's progress, which a loaded machine slows
 * but does not stop.  Evaluates to @cond's last value.
 */
#define wait_until(cond)						\
({									\
	int __i;							\
	for (__i = 0; !(cond) && __i < WAIT_LIMIT_MS / 10; __i++)	\
		usleep(10000);						\
	(cond);								\
})

/* Read /sys/dev/block/MAJ:MIN/@attr of block device @dev into @buf. */
static inline int sysfs_block_attr(const char *dev, const char *attr,
				   char *buf, size_t len)
{
	char path[256];
	struct stat sb;
	ssize_t n;
	int fd;

	if (stat(dev, &sb))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s",
		 major(sb.st_rdev), minor(sb.st_rdev), attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Reads (@write false) or writes under way on block device @dev. */
static inline long inflight(const char *dev, bool write)
{
	char buf[64];
	long r, w;

	if (sysfs_block_attr(dev, "inflight", buf, sizeof(buf)) ||
	    sscanf(buf, "%ld %ld", &r, &w) != 2)
		return -1;
	return write ? w : r;
}

/* The device-mapper target @target is there, loading its module if need be. */
static inline bool dm_target_available(const char *target)
{
	run("modprobe -q dm-%s 2>/dev/null", target);
	return !run("dmsetup targets | grep -q '^%s '", target);
}

static inline unsigned long long disk_sectors(const char *path)
{
	unsigned long long bytes = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	if (ioctl(fd, BLKGETSIZE64, &bytes))
		bytes = 0;
	close(fd);
	return bytes >> 9;
}

#endif /* BLOBCR_TEST_H */
