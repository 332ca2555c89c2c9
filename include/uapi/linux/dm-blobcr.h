/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-blobcr: the channel between the "blobcr" device-mapper target and its
 * userspace helper (blobcrd), and the ioctls of that channel.
 *
 * Each target has a character device /dev/blobcr/<channel_name>.  A helper
 * opens it, attaches with BLOBCR_IOC_ATTACH, read()s struct blobcr_request
 * records and write()s struct blobcr_reply records, in any order and from any
 * number of threads.  Operators (blobcrctl) open the same device and use the
 * ioctls without attaching.  ATTACH, SET_BITMAP, COMMIT and COMMIT_WAIT
 * need CAP_SYS_ADMIN (EPERM).  Documentation/dm-blobcr.rst is the contract.
 *
 * Every structure has a fixed size, natural alignment and explicit padding
 * that must be zero.  New behaviour gets a new feature bit, opcode or ioctl
 * number, never a new layout of an existing structure.
 */
#ifndef _UAPI_LINUX_DM_BLOBCR_H
#define _UAPI_LINUX_DM_BLOBCR_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The channel devices live in this directory. */
#define BLOBCR_DEV_DIR		"/dev/blobcr/"
/* Longest channel name, without the terminating NUL. */
#define BLOBCR_CHANNEL_MAX	63

/* Operations (struct blobcr_request.op and struct blobcr_reply.op). */
#define BLOBCR_OP_FETCH		1	/* fill extents in the cache device */
#define BLOBCR_OP_COMMIT	2	/* upload the commit set, publish it */
#define BLOBCR_OP_UPLOADED	3	/* reply only: part of a commit is safe */

/* struct blobcr_request.flags */
#define BLOBCR_REQ_F_PREFETCH	(1U << 0)	/* no I/O waits on this FETCH */

/* Features the kernel reports in struct blobcr_attach and blobcr_info. */
#define BLOBCR_F_FETCH_RUNS	(1ULL << 0)	/* a FETCH may span extents */
#define BLOBCR_F_COMMIT		(1ULL << 1)	/* BLOBCR_OP_COMMIT */
#define BLOBCR_F_UPLOADED	(1ULL << 2)	/* BLOBCR_OP_UPLOADED replies */
#define BLOBCR_F_SET_BITMAP	(1ULL << 3)	/* BLOBCR_IOC_SET_BITMAP */

/* Modes (struct blobcr_info.mode). */
#define BLOBCR_MODE_RW		0
#define BLOBCR_MODE_RO		1
#define BLOBCR_MODE_FAIL	2

/* Bitmaps (struct blobcr_bitmap.which). */
#define BLOBCR_BITMAP_PRESENT	0
#define BLOBCR_BITMAP_DIRTY	1
#define BLOBCR_BITMAP_COMMIT	2

/**
 * struct blobcr_request - a request from the kernel to the helper
 * @id: identifier to quote in the reply; unique for the channel's life
 * @op: BLOBCR_OP_FETCH or BLOBCR_OP_COMMIT
 * @flags: BLOBCR_REQ_F_* bits
 * @pad: zero
 * @extent: FETCH: first extent to fill; COMMIT: zero
 * @nr_extents: FETCH: number of consecutive extents to fill;
 *	COMMIT: number of extents in the commit set
 * @reserved: zero
 *
 * FETCH: write the repository's bytes of extents [@extent, @extent +
 * @nr_extents) at the same offsets of the cache device, make them durable
 * as far as the helper cares, then reply.  The last extent of the device
 * may be shorter than the others (see struct blobcr_info).
 *
 * COMMIT: read the commit set with BLOBCR_IOC_GET_BITMAP
 * (BLOBCR_BITMAP_COMMIT), read those extents from the cache device, store
 * them as a new version, then reply with its number.
 */
struct blobcr_request {
	__aligned_u64 id;
	__u16 op;
	__u16 flags;
	__u32 pad;
	__aligned_u64 extent;
	__aligned_u64 nr_extents;
	__aligned_u64 reserved[4];
};

/**
 * struct blobcr_reply - the helper's answer to a request
 * @id: the request's @id
 * @op: the request's @op, or BLOBCR_OP_UPLOADED with a COMMIT's @id
 * @flags: zero
 * @status: 0 on success, or a negative errno; a failed FETCH fails the I/O
 *	waiting on it with EIO, a failed COMMIT fails BLOBCR_IOC_COMMIT with
 *	the same errno if it is EIO, ENOMEM, ENOSPC, EDQUOT, ETIMEDOUT,
 *	ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH or EPROTO, and
 *	with EIO otherwise
 * @extent: FETCH: the request's @extent; UPLOADED: first uploaded extent;
 *	COMMIT: zero
 * @nr_extents: FETCH: the request's @nr_extents; UPLOADED: number of
 *	uploaded extents; COMMIT: zero
 * @version: COMMIT: the published version number; otherwise zero
 * @reserved: zero
 *
 * A FETCH or COMMIT reply completes its request.  An UPLOADED reply does
 * not: it tells the kernel that the helper no longer needs to read these
 * extents of the commit in progress, so writes to them may go on.
 * A reply is refused with EINVAL (and changes nothing) if its id is unknown,
 * not handed out or handed to another file, its numbers differ from the
 * request's, a range leaves the device, or a zero field is not zero.  A
 * file that is not attached gets ENOTCONN.
 */
struct blobcr_reply {
	__aligned_u64 id;
	__u16 op;
	__u16 flags;
	__s32 status;
	__aligned_u64 extent;
	__aligned_u64 nr_extents;
	__aligned_u64 version;
	__aligned_u64 reserved[3];
};

/**
 * struct blobcr_attach - BLOBCR_IOC_ATTACH argument
 * @features: in: the BLOBCR_F_* bits the helper knows; out: the kernel's
 * @flags: zero
 * @pad: zero
 * @reserved: zero
 *
 * Makes the file a helper: it may read requests and write replies.
 * Requests it has read and not answered when it is closed (or detached by
 * the "drop_helper" message) are handed to the next reader.
 */
struct blobcr_attach {
	__aligned_u64 features;
	__u32 flags;
	__u32 pad;
	__aligned_u64 reserved[2];
};

/**
 * struct blobcr_info - BLOBCR_IOC_GET_INFO result
 * @features: BLOBCR_F_* bits the kernel supports
 * @nr_extents: number of extents of the device
 * @dev_sectors: length of the device in 512-byte sectors
 * @extent_sectors: extent size in 512-byte sectors (a power of two)
 * @mode: BLOBCR_MODE_*
 * @cache_major: major number of the cache device
 * @cache_minor: minor number of the cache device
 * @nr_present: extents held by the cache device
 * @nr_dirty: extents written since the last commit (what a commit would
 *	upload)
 * @nr_committing: size of the commit set of the commit in progress, or 0
 * @commits_done: commits completed successfully
 * @last_version: version number of the last successful commit
 * @fetches_queued: FETCH requests not yet read by a helper
 * @fetches_inflight: FETCH requests read by a helper, not yet answered
 * @nr_helpers: attached helper files
 * @pad: zero
 * @reserved: zero
 */
struct blobcr_info {
	__aligned_u64 features;
	__aligned_u64 nr_extents;
	__aligned_u64 dev_sectors;
	__u32 extent_sectors;
	__u32 mode;
	__u32 cache_major;
	__u32 cache_minor;
	__aligned_u64 nr_present;
	__aligned_u64 nr_dirty;
	__aligned_u64 nr_committing;
	__aligned_u64 commits_done;
	__aligned_u64 last_version;
	__u32 fetches_queued;
	__u32 fetches_inflight;
	__u32 nr_helpers;
	__u32 pad;
	__aligned_u64 reserved[4];
};

/**
 * struct blobcr_bitmap - BLOBCR_IOC_GET_BITMAP / BLOBCR_IOC_SET_BITMAP
 * @which: BLOBCR_BITMAP_* (SET_BITMAP: PRESENT or DIRTY)
 * @flags: zero
 * @start: first extent, a multiple of 64
 * @count: number of extents; @start + @count must not pass the last extent
 * @addr: user pointer to DIV_ROUND_UP(@count, 64) __u64 words; bit b of
 *	word w stands for extent @start + 64 * w + b
 * @reserved: zero
 *
 * GET_BITMAP copies a bitmap out.  SET_BITMAP only sets bits, never clears
 * one: PRESENT marks extents whose data the cache device already holds (a
 * redeploy over a kept cache) and skips extents being fetched; DIRTY marks
 * present extents as written since the last commit (restoring a dirty set
 * saved before the device was removed) and skips absent ones.
 */
struct blobcr_bitmap {
	__u32 which;
	__u32 flags;
	__aligned_u64 start;
	__aligned_u64 count;
	__aligned_u64 addr;
	__aligned_u64 reserved[2];
};

/* struct blobcr_commit.flags */
#define BLOBCR_COMMIT_F_NOWAIT	(1U << 0)	/* return once writes resume */

/**
 * struct blobcr_commit - BLOBCR_IOC_COMMIT / BLOBCR_IOC_COMMIT_WAIT argument
 * @flags: COMMIT: BLOBCR_COMMIT_F_NOWAIT or zero; COMMIT_WAIT: zero
 * @pad: zero
 * @version: out: the version number the helper published
 * @nr_extents: out: number of extents in the commit set
 * @pause_ns: out (COMMIT): how long writes were held to take the commit set
 * @commit_id: COMMIT: zero in, the commit's number out; COMMIT_WAIT: in
 * @reserved: zero
 *
 * COMMIT takes the dirty set as the commit set and starts an empty dirty
 * set, in one step that waits only for the writes already under way; then
 * hands a COMMIT request to the helper and, unless BLOBCR_COMMIT_F_NOWAIT,
 * waits for its reply.  With NOWAIT it returns as soon as writes resume
 * (a hypervisor resumes the guest then) and COMMIT_WAIT with the returned
 * @commit_id waits for the version.  COMMIT_WAIT fails with ESTALE if a
 * later commit has ended since, EINVAL for an id never returned.  Writes
 * to extents of the commit set wait until the helper has read them
 * (UPLOADED or COMMIT reply); others proceed at once.  On failure the
 * commit set is merged back into the dirty set.  One commit at a time:
 * EBUSY otherwise.
 */
struct blobcr_commit {
	__u32 flags;
	__u32 pad;
	__aligned_u64 version;
	__aligned_u64 nr_extents;
	__aligned_u64 pause_ns;
	__aligned_u64 commit_id;
	__aligned_u64 reserved[3];
};

#define BLOBCR_IOCTL_MAGIC	0xbc

#define BLOBCR_IOC_ATTACH	_IOWR(BLOBCR_IOCTL_MAGIC, 0x00, struct blobcr_attach)
#define BLOBCR_IOC_GET_INFO	_IOR(BLOBCR_IOCTL_MAGIC, 0x01, struct blobcr_info)
#define BLOBCR_IOC_GET_BITMAP	_IOW(BLOBCR_IOCTL_MAGIC, 0x02, struct blobcr_bitmap)
#define BLOBCR_IOC_SET_BITMAP	_IOW(BLOBCR_IOCTL_MAGIC, 0x03, struct blobcr_bitmap)
#define BLOBCR_IOC_COMMIT	_IOWR(BLOBCR_IOCTL_MAGIC, 0x04, struct blobcr_commit)
#define BLOBCR_IOC_COMMIT_WAIT	_IOWR(BLOBCR_IOCTL_MAGIC, 0x05, struct blobcr_commit)

#endif /* _UAPI_LINUX_DM_BLOBCR_H */
