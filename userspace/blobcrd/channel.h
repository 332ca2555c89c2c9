/* SPDX-License-Identifier: GPL-2.0 */
/*
 * channel.h - blobcrd's side of a dm-blobcr target's character device.
 * Thin wrappers over the UAPI of include/uapi/linux/dm-blobcr.h; every
 * function returns 0 or a negative errno unless it says otherwise.
 */
#ifndef BLOBCRD_CHANNEL_H
#define BLOBCRD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <linux/dm-blobcr.h>

/* The features blobcrd needs from the target. */
#define BLOBCRD_FEATURES (BLOBCR_F_FETCH_RUNS | BLOBCR_F_COMMIT | BLOBCR_F_UPLOADED)

/* Open /dev/blobcr/@name (non-blocking); Return: an fd or -errno. */
int channel_open(const char *name);

/* Make @fd a helper; Return: 0, or -EOPNOTSUPP if a feature is missing. */
int channel_attach(int fd);

int channel_info(int fd, struct blobcr_info *info);

/*
 * channel_get_bitmap() - copy bitmap @which (BLOBCR_BITMAP_*) of all
 * @nr_extents extents into @words (DIV_ROUND_UP(nr_extents, 64) words).
 */
int channel_get_bitmap(int fd, uint32_t which, uint64_t nr_extents,
		       uint64_t *words);

/*
 * channel_set_bitmap() - set (never clear) the bits of @words in bitmap
 * @which (BLOBCR_BITMAP_PRESENT or _DIRTY) of the @count extents from
 * @start (a multiple of 64).
 */
int channel_set_bitmap(int fd, uint32_t which, uint64_t start, uint64_t count,
		       const uint64_t *words);

/*
 * channel_read() - up to @max requests into @rq, waiting at most
 * @timeout_ms (-1: forever) and returning early when @stop_fd is readable.
 * Return: the number of requests (0 on timeout or stop), or -errno
 * (-ENODEV: the target is gone).
 */
int channel_read(int fd, int stop_fd, int timeout_ms, struct blobcr_request *rq,
		 size_t max);

/* channel_reply() - write one reply; Return: 0 or -errno. */
int channel_reply(int fd, const struct blobcr_reply *rp);

static inline int bitmap_test(const uint64_t *words, uint64_t bit)
{
	return (words[bit / 64] >> (bit % 64)) & 1;
}

#endif /* BLOBCRD_CHANNEL_H */
