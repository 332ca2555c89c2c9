/* SPDX-License-Identifier: GPL-2.0 */
/*
 * store.h - blobcr-noded's content-addressed chunk store.
 *
 * Chunks are appended to segment files (DIR/seg-NNNNNNNN.dat), each behind
 * a 48-byte record header (magic, length, CRC32C, id).  An LMDB index in
 * DIR/index maps chunk id -> (segment, offset, length, CRC32C) and keeps
 * the live bytes of each segment.
 *
 * Durability: a PUT is acknowledged after its record is fdatasync'ed and
 * the index transaction that names it is committed (LMDB syncs on commit).
 * A crash before that leaves unindexed bytes in a segment: dead space,
 * reclaimed by compaction.  Compaction copies live records to the active
 * segment, syncs, repoints the index in one transaction, then unlinks the
 * old segment; a crash in between leaves both copies, one of them dead.
 *
 * All functions are thread-safe and may block on disk I/O.
 */
#ifndef BLOBCR_STORE_H
#define BLOBCR_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "blobcr_wire.h"

struct store;

struct store_opts {
	const char *dir;
	uint64_t capacity; /* bytes of segment files, 0: unlimited */
	uint64_t segment_size; /* roll over to a new segment past this */
	size_t map_bytes; /* the index's LMDB map to begin with, 0: 4 GiB;
			   * it doubles whenever more than half used */
};

struct store_stat {
	uint64_t chunks;
	uint64_t live_bytes; /* chunk bytes the index points to */
	uint64_t used_bytes; /* segment file bytes, records and dead space */
	uint64_t capacity;
	uint64_t segments;
	uint64_t corrupt; /* corrupt reads detected since start */
	uint64_t roots; /* roots (manifests) held */
};

/** store_open() - open or create the store in @o->dir.  Return: 0 or -errno. */
int store_open(const struct store_opts *o, struct store **out);
void store_close(struct store *st);

/**
 * store_put() - store @len bytes under @id, durably.  Idempotent.
 * Return: 0; -EINVAL (@id is not the SHA-256 of the bytes, or bad length);
 * -ENOSPC (capacity or disk full); -EIO.
 */
int store_put(struct store *st, const uint8_t id[BLOBCR_ID_SIZE],
	      const void *data, uint32_t len);

/**
 * store_get_len() - Return: the chunk's length (> 0), -ENOENT if absent.
 */
int64_t store_get_len(struct store *st, const uint8_t id[BLOBCR_ID_SIZE]);

/**
 * store_get() - read chunk @id into @buf (@cap bytes), checking its record
 * header and CRC; *@crc (if not NULL) gets the CRC32C of the bytes.  Return: its length; -ENOENT; -EUCLEAN if the stored copy
 * is corrupt (counted, logged, dropped from the index so that a later PUT
 * stores a good copy; never returned as data); -EIO.
 */
int64_t store_get(struct store *st, const uint8_t id[BLOBCR_ID_SIZE],
		  void *buf, uint32_t cap, uint32_t *crc);

/** store_has() - Return: 1 if present, 0 if not, -errno. */
int store_has(struct store *st, const uint8_t id[BLOBCR_ID_SIZE]);

/**
 * store_delete() - forget the @n chunks @ids (packed), in one index
 * transaction.  Return: how many were held, or -errno (none forgotten).
 */
int store_delete(struct store *st, const uint8_t *ids, size_t n);

/**
 * store_compact() - rewrite every segment whose live bytes are at most
 * half its size, or (@all) every segment with a dead byte; the active
 * segment is closed first if it is one of them.  Return: bytes reclaimed
 * (>= 0) or -errno.
 */
int64_t store_compact(struct store *st, bool all);

int store_stat(struct store *st, struct store_stat *out);

/**
 * store_uuid() - the store's identity: made at random when the store was
 * created, so that a wiped store restarted at the same address is known
 * for a new, empty node.
 */
void store_uuid(const struct store *st, uint8_t out[BLOBCR_UUID_SIZE]);

/**
 * store_verify() - read chunk @id back and check its record header, CRC32C
 * and SHA-256.  Return: 0 good; -ENOENT absent; -EUCLEAN corrupt (counted,
 * logged and dropped from the index, as by store_get()); -EIO.
 */
int store_verify(struct store *st, const uint8_t id[BLOBCR_ID_SIZE]);

/**
 * store_list() - the ids held, in id order: up to @max of them after
 * @after (NULL: from the first) into @ids; *@more tells whether others
 * follow.  Return: how many were written, or -errno.
 */
int store_list(struct store *st, const uint8_t *after,
	       uint8_t (*ids)[BLOBCR_ID_SIZE], int max, bool *more);

/*
 * Roots: the manifests metad keeps on the nodes, so that its database can
 * be rebuilt from them.  A root is a name (an image, a version, a group,
 * an access order) and the id of the chunk that says what it is, at a
 * sequence number: a higher one replaces a lower one.  A root goes with
 * its chunk when that chunk is deleted.
 */
#define STORE_ROOT_MAX BLOBCR_ROOT_MAX

struct store_root {
	char name[STORE_ROOT_MAX];
	uint64_t seq;
	uint8_t id[BLOBCR_ID_SIZE];
};

/**
 * store_put_root() - store_put() the chunk, then make it root @name at
 * @seq unless that root has a higher sequence number already (an empty
 * @name: no root).  Return: as store_put(); -EINVAL for a bad name.
 */
int store_put_root(struct store *st, const char *name, uint64_t seq,
		   const uint8_t id[BLOBCR_ID_SIZE], const void *data,
		   uint32_t len);

/**
 * store_list_roots() - the roots in name order after @after (NULL: from
 * the first), at most @max; *@more if others follow.  Return: how many,
 * or -errno.
 */
int store_list_roots(struct store *st, const char *after,
		     struct store_root *out, int max, bool *more);

#endif /* BLOBCR_STORE_H */
