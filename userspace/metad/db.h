/* SPDX-License-Identifier: GPL-2.0 */
/*
 * db.h - blobcr-metad's LMDB schema.  Every key and value is encoded field
 * by field in big-endian, so that keys sort numerically.
 *
 *   images     name                        -> struct image fields
 *   image_ids  image id (u64)              -> name
 *   versions   image id, version (u64,u32) -> base, time, changed, label
 *                                             (u16 length, bytes), group
 *   extmap     image id, extent, version   -> kind (u8) [, chunk id]
 *   chunks     chunk id  (dupsort)         -> node id (u32), one per replica
 *   node_chunks node id, chunk id          -> (): chunks by node, the same
 *                                             locations as chunks
 *   writers    chunk id  (dupsort)         -> failure domain (u32 hash) of a
 *                                             host that published it
 *   suspects   chunk id, node id           -> time (u64): a reported bad
 *                                             copy the node must confirm
 *   nodes      node id (u32)               -> struct node_rec fields
 *   node_addrs address                     -> node id
 *   groups     name                        -> time, count, (image, version)*
 *   access     image id, version (u64,u32) -> extents (u64)*: the order in
 *                                             which a first deployment
 *                                             touched them (prefetch)
 *   leases     image id, version, holder  -> expiry (u64, wall ms): a
 *                                             deployment serves it
 *   doomed     chunk id                    -> kind, node ids: a gc deleting
 *                                             them
 *   orphans    chunk id, node id           -> (): a node delete to retry
 *   strays     chunk id, node id           -> first seen (u64, wall ms): a
 *                                             chunk a node holds, metad not
 *   manifests  root name                   -> seq (u64), head id, entry chunk
 *                                             ids: the manifest on the nodes
 *   pending    root name                   -> seq (u64): a manifest to write
 *   meta       "next_image", "next_node", "manifest_seq" -> u64
 *
 * All functions take the caller's transaction and return 0 or -errno
 * (-ENOENT for a missing record).
 */
#ifndef BLOBCR_METAD_DB_H
#define BLOBCR_METAD_DB_H

#include <pthread.h>
#include <stdint.h>

#include <lmdb.h>

#include "blobcr_wire.h"

struct db {
	MDB_env *env;
	/*
	 * Read-held by every transaction, write-held to grow the map (LMDB
	 * allows that only with no transaction open in the process).
	 */
	pthread_rwlock_t txn_rw;
	MDB_dbi images, image_ids, versions, extmap, chunks, node_chunks,
		writers, suspects, nodes, node_addrs, groups, access, leases,
		manifests, pending, doomed, orphans, strays, meta;
};

/* A storage node's persistent state. */
enum node_state {
	NODE_ACTIVE = 1, /* takes new replicas, counts towards R */
	NODE_DRAINING = 2, /* serves reads; its copies no longer count */
	NODE_REMOVED = 3, /* gone for good: replaced by a new store, or removed */
};

struct node_rec {
	uint32_t id;
	uint8_t state; /* enum node_state */
	uint8_t uuid[BLOBCR_UUID_SIZE]; /* all zeros: not known yet */
	char addr[BLOBCR_ADDR_MAX];
	char domain[BLOBCR_DOMAIN_MAX];
};

struct image {
	char name[BLOBCR_NAME_MAX];
	uint64_t id;
	uint64_t size;
	uint32_t extent_size;
	uint32_t latest; /* 0: no version yet */
	uint32_t next_version; /* never reused, even after deletes */
	uint32_t nversions;
	uint64_t parent_id; /* 0: not a clone */
	uint32_t parent_version;
	uint64_t created;
};

struct version {
	uint32_t version;
	uint32_t base;
	uint64_t time;
	uint64_t changed;
	char label[BLOBCR_NAME_MAX];
	char group[BLOBCR_NAME_MAX]; /* last checkpoint group naming it, "" */
};

#define EXT_KEY 20

/**
 * db_open() - open or create the database in @dir, its map at least
 * @map_bytes; the map doubles whenever it is more than half used, or full.
 */
int db_open(const char *dir, struct db *db, size_t map_bytes);
void db_close(struct db *db);
int db_err(int rc);
/**
 * db_reserve() - grow the map now, if need be, so that a transaction of
 * about @bytes fits with room to spare; waits for every open transaction
 * to end, so the caller must hold none.  Return: 0 or -errno.
 */
int db_reserve(struct db *db, size_t bytes);
/**
 * db_txn_begin() - a transaction on @db (a write one first grows the map
 * if it needs room); end it with db_txn_end() or db_txn_abort() only.
 */
int db_txn_begin(struct db *db, unsigned int flags, MDB_txn **txn);
/** db_txn_end() - commit @txn if @err is 0, else abort it.  Return: outcome. */
int db_txn_end(MDB_txn *txn, int err);
void db_txn_abort(MDB_txn *txn);

int db_image_get(MDB_txn *txn, struct db *db, const char *name,
		 struct image *img);
int db_image_get_by_id(MDB_txn *txn, struct db *db, uint64_t id,
		       struct image *img);
int db_image_put(MDB_txn *txn, struct db *db, const struct image *img);
int db_image_del(MDB_txn *txn, struct db *db, const struct image *img);

int db_version_get(MDB_txn *txn, struct db *db, uint64_t image, uint32_t v,
		   struct version *out);
int db_version_put(MDB_txn *txn, struct db *db, uint64_t image,
		   const struct version *v);
int db_version_del(MDB_txn *txn, struct db *db, uint64_t image, uint32_t v);

void db_ext_key(uint8_t k[EXT_KEY], uint64_t image, uint64_t extent,
		uint32_t version);
void db_ext_key_parse(const uint8_t *k, uint64_t *image, uint64_t *extent,
		      uint32_t *version);

/**
 * db_extent_find() - the entry of @extent visible in @image@@version: the
 * greatest version not above @version, else the clone parent's, else none.
 * Return: 1 found (*@kind, @id set), 0 a hole, -errno.
 */
int db_extent_find(MDB_cursor *cur, struct db *db, MDB_txn *txn,
		   const struct image *img, uint32_t version, uint64_t extent,
		   uint8_t *kind, uint8_t id[BLOBCR_ID_SIZE]);

/** db_chunk_nodes() - the nodes holding @id; Return: how many (<= @max). */
int db_chunk_nodes(MDB_cursor *cur, const uint8_t *id, uint32_t *nodes,
		   int max);
/*
 * A location whose node confirmed its copy gone, kept because it was the
 * chunk's last: the node id with this bit.  It never counts nor serves;
 * it keeps the chunk visible, as lost, until a good copy comes back.
 */
#define LOC_LOST 0x80000000u

/** db_chunk_add() - record a location.  Return: 1 new, 0 known, -errno. */
int db_chunk_add(MDB_txn *txn, struct db *db, const uint8_t *id,
		 uint32_t node);
/** db_chunk_del() - forget a location.  Return: 0, -ENOENT, -errno. */
int db_chunk_del(MDB_txn *txn, struct db *db, const uint8_t *id,
		 uint32_t node);
/** db_chunk_writers() - domains (hashes) of hosts that published @id. */
int db_chunk_writers(MDB_cursor *cur, const uint8_t *id, uint32_t *domains,
		     int max);
/** db_writer_add() - record that a host of @domain published @id. */
int db_writer_add(MDB_txn *txn, struct db *db, const uint8_t *id,
		  uint32_t domain);
/** db_chunk_mark_lost() - turn the location of @id on @node into LOC_LOST. */
int db_chunk_mark_lost(MDB_txn *txn, struct db *db, const uint8_t *id,
		       uint32_t node);
/** db_chunk_forget() - forget every location and writer of @id. */
int db_chunk_forget(MDB_txn *txn, struct db *db, const uint8_t *id);

/** db_node_put() - store a node's record (by id) and its address's index. */
int db_node_put(MDB_txn *txn, struct db *db, const struct node_rec *n);
/** db_node_decode() - a record of the nodes table.  Return: 0, -EUCLEAN. */
int db_node_decode(const MDB_val *k, const MDB_val *v, struct node_rec *n);

int db_meta_get(MDB_txn *txn, struct db *db, const char *key, uint64_t *v);
int db_meta_put(MDB_txn *txn, struct db *db, const char *key, uint64_t v);

void put_be32(uint8_t *p, uint32_t v);
void put_be64(uint8_t *p, uint64_t v);
uint32_t get_be32(const uint8_t *p);
uint64_t get_be64(const uint8_t *p);

#endif /* BLOBCR_METAD_DB_H */
