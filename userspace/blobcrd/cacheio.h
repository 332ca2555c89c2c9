/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cacheio.h - extent-sized direct I/O on the cache device with libaio:
 * a batch of extents is submitted at once and waited for as a whole.
 */
#ifndef BLOBCRD_CACHEIO_H
#define BLOBCRD_CACHEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libaio.h>

struct cacheio {
	int fd;
	io_context_t ctx;
	unsigned int depth;	/* most extents per batch */
	bool blockdev;
	uint32_t extent_size;
	uint64_t dev_bytes;	/* the last extent may be shorter */
};

/*
 * cacheio_open() - open @path (a block device or a file) for O_DIRECT I/O
 * in batches of at most @depth extents.  Return: 0 or -errno.
 */
int cacheio_open(struct cacheio *io, const char *path, uint32_t extent_size,
		 uint64_t dev_bytes, unsigned int depth);
void cacheio_close(struct cacheio *io);

/* Bytes of @extent on the device (extent_size, or less for the last). */
uint32_t cacheio_extent_len(const struct cacheio *io, uint64_t extent);

/*
 * cacheio_rw() - read (or write) the @n extents @extents into (from) the
 * 4096-aligned buffers @bufs, all in flight at once; @n <= depth.
 * Return: 0 once every one is done, or the first -errno (short I/O: -EIO).
 */
int cacheio_rw(struct cacheio *io, bool write, const uint64_t *extents,
	       void *const *bufs, size_t n);

/* cacheio_zero() - make @extent read as zeros without writing its bytes. */
int cacheio_zero(struct cacheio *io, uint64_t extent);

#endif /* BLOBCRD_CACHEIO_H */
