// SPDX-License-Identifier: GPL-2.0
/*
 * channel.c - the character device of a dm-blobcr target, seen from the
 * helper: attach, requests in, replies out, bitmaps and info.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "channel.h"

int channel_open(const char *name)
{
	char path[sizeof(BLOBCR_DEV_DIR) + BLOBCR_CHANNEL_MAX + 1];
	int fd;

	if (strlen(name) > BLOBCR_CHANNEL_MAX)
		return -ENAMETOOLONG;
	snprintf(path, sizeof(path), BLOBCR_DEV_DIR "%s", name);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int channel_attach(int fd)
{
	struct blobcr_attach a = { .features = BLOBCRD_FEATURES };

	if (ioctl(fd, BLOBCR_IOC_ATTACH, &a) < 0)
		return -errno;
	if ((a.features & BLOBCRD_FEATURES) != BLOBCRD_FEATURES)
		return -EOPNOTSUPP;
	return 0;
}

int channel_info(int fd, struct blobcr_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl(fd, BLOBCR_IOC_GET_INFO, info) < 0 ? -errno : 0;
}

static int bitmap_ioctl(int fd, unsigned long req, uint32_t which,
			uint64_t start, uint64_t count, const uint64_t *words)
{
	struct blobcr_bitmap b = {
		.which = which,
		.start = start,
		.count = count,
		.addr = (uintptr_t)words,
	};

	return ioctl(fd, req, &b) < 0 ? -errno : 0;
}

int channel_get_bitmap(int fd, uint32_t which, uint64_t nr_extents,
		       uint64_t *words)
{
	return bitmap_ioctl(fd, BLOBCR_IOC_GET_BITMAP, which, 0, nr_extents, words);
}

int channel_set_bitmap(int fd, uint32_t which, uint64_t start, uint64_t count,
		       const uint64_t *words)
{
	return bitmap_ioctl(fd, BLOBCR_IOC_SET_BITMAP, which, start, count, words);
}

int channel_read(int fd, int stop_fd, int timeout_ms, struct blobcr_request *rq,
		 size_t max)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	ssize_t n;

	if (poll(p, 2, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents)
		return 0;
	if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
		return -ENODEV;
	if (!(p[0].revents & POLLIN))
		return 0;
	n = read(fd, rq, max * sizeof(*rq));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n % sizeof(*rq))
		return -EPROTO;
	return (int)(n / sizeof(*rq));
}

int channel_reply(int fd, const struct blobcr_reply *rp)
{
	ssize_t n;

	do
		n = write(fd, rp, sizeof(*rp));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == sizeof(*rp) ? 0 : -EIO;
}
