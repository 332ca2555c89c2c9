// SPDX-License-Identifier: GPL-2.0
/*
 * cacheio.c - direct I/O of whole extents on the cache device, with libaio.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cacheio.h"

int cacheio_open(struct cacheio *io, const char *path, uint32_t extent_size,
		 uint64_t dev_bytes, unsigned int depth)
{
	struct stat st;
	int err;

	memset(io, 0, sizeof(*io));
	io->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (io->fd < 0)
		return -errno;
	if (fstat(io->fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	io->blockdev = S_ISBLK(st.st_mode);
	io->extent_size = extent_size;
	io->dev_bytes = dev_bytes;
	io->depth = depth;
	err = io_setup(depth, &io->ctx);
	if (err)
		goto out_close;
	return 0;

out_close:
	close(io->fd);
	io->fd = -1;
	return err;
}

void cacheio_close(struct cacheio *io)
{
	if (io->fd < 0)
		return;
	io_destroy(io->ctx);
	close(io->fd);
	io->fd = -1;
}

uint32_t cacheio_extent_len(const struct cacheio *io, uint64_t extent)
{
	uint64_t off = extent * io->extent_size;

	if (off >= io->dev_bytes)
		return 0;
	return io->dev_bytes - off < io->extent_size ?
		(uint32_t)(io->dev_bytes - off) : io->extent_size;
}

/* Reap @n completions; Return: 0 or the first error among them. */
static int reap(struct cacheio *io, struct iocb *cbs, size_t n)
{
	struct io_event ev[64];
	size_t done = 0;
	int err = 0;

	while (done < n) {
		int want = n - done > 64 ? 64 : (int)(n - done);
		int got = io_getevents(io->ctx, want, want, ev, NULL);

		if (got == -EINTR)
			continue;
		if (got < 0)
			return got;
		for (int i = 0; i < got; i++) {
			struct iocb *cb = ev[i].obj;
			long res = (long)ev[i].res;

			if (!err && res < 0)
				err = (int)res;
			else if (!err && (size_t)res != cb->u.c.nbytes)
				err = -EIO;
		}
		done += got;
	}
	(void)cbs;
	return err;
}

int cacheio_rw(struct cacheio *io, bool write, const uint64_t *extents,
	       void *const *bufs, size_t n)
{
	struct iocb cbs[n ? n : 1], *ptrs[n ? n : 1];
	size_t submitted = 0;
	int err = 0;

	if (n > io->depth)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = cacheio_extent_len(io, extents[i]);
		long long off = (long long)(extents[i] * io->extent_size);

		if (!len)
			return -ERANGE;
		if (write)
			io_prep_pwrite(&cbs[i], io->fd, bufs[i], len, off);
		else
			io_prep_pread(&cbs[i], io->fd, bufs[i], len, off);
		ptrs[i] = &cbs[i];
	}
	while (submitted < n) {
		int r = io_submit(io->ctx, n - submitted, ptrs + submitted);

		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r <= 0) {
			err = r ? r : -EIO;
			break;
		}
		submitted += r;
	}
	/* Whatever was submitted must complete before the buffers are reused. */
	if (submitted) {
		int r = reap(io, cbs, submitted);

		if (!err)
			err = r;
	}
	return err;
}

int cacheio_zero(struct cacheio *io, uint64_t extent)
{
	uint64_t range[2] = { extent * io->extent_size,
			      cacheio_extent_len(io, extent) };

	if (!range[1])
		return -ERANGE;
	if (io->blockdev)
		return ioctl(io->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
	return fallocate(io->fd, FALLOC_FL_ZERO_RANGE, (off_t)range[0],
			 (off_t)range[1]) < 0 ? -errno : 0;
}
