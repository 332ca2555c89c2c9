/* SPDX-License-Identifier: GPL-2.0 */
/*
 * metad.h - what blobcr-metad's parts share: the daemon's state and the
 * helpers and request handlers each file offers the others.
 *
 *   metad.c      main, options, dispatch of requests to the handlers
 *   request.c    transactions, the image a request names, list replies
 *   nodes.c      the node table: registration, heartbeats, liveness
 *   images.c     images and versions: create, clone, lists, deletes
 *   lookup.c     where extents and chunks live: LOOKUP, CHUNK_LOCATE
 *   publish.c    a new version in one write transaction
 *   gc.c         garbage collection
 *   locations.c  chunk locations' upkeep (repair, reports)
 *   groups.c     checkpoint groups
 *   access.c     access orders for adaptive prefetch
 *   db.c         the LMDB schema (db.h)
 *   repair.c     the re-replication thread (repair.h)
 *
 * Handlers (do_*) decode a request, write the reply's payload and return
 * 0 or -errno (the reply's status).
 */
#ifndef BLOBCR_METAD_H
#define BLOBCR_METAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <pthread.h>

#include "blobcr_util.h"
#include "db.h"

#define MAX_BATCH 65536 /* extents or ids per request */
#define DELETE_BATCH 4096
#define MAX_NODES 4096
#define SERVER_THREADS 4

struct node {
	uint32_t id; /* set before the node is published in nnodes */
	char addr[BLOBCR_ADDR_MAX]; /* likewise */
	/* atomic: */
	uint64_t last_seen; /* blobcr_now_ms() of the last heartbeat, 0: never */
	uint64_t capacity, used, chunks;
};

struct metad {
	struct db db;
	int replicas;
	uint64_t dead_after_ms;
	int publish_delay_ms; /* test hook: stall publishes before commit */
	int node_timeout_ms;
	int repair_s; /* re-replication check period, 0: never */
	struct node *nodes; /* MAX_NODES entries */
	size_t nnodes; /* atomic, release after the entry is filled */
	pthread_mutex_t nodes_mu; /* appends and registrations */
	pthread_mutex_t gc_mu; /* one gc at a time */
	struct blobcr_server srv;
	volatile sig_atomic_t stop;
};

/* ---- nodes.c ---- */

size_t node_count(struct metad *m);
struct node *node_find(struct metad *m, uint32_t id);
bool node_live(struct metad *m, uint32_t id);
/** load_nodes() - the node table from LMDB, at startup (all dead). */
int load_nodes(struct metad *m);
int do_heartbeat(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply);
int do_node_list(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply);

/* ---- request.c ---- */

int txn_begin(struct metad *m, unsigned int flags, MDB_txn **txn);
/** txn_end() - commit @txn if @err is 0, else abort it; Return: the outcome. */
int txn_end(MDB_txn *txn, int err);
bool valid_name(const char *s);
uint64_t image_extents(const struct image *img);
/** resolve_version() - version 0 becomes the latest; check that it exists. */
int resolve_version(MDB_txn *txn, struct metad *m, const struct image *img,
		    uint32_t *ver);
/** read_image() - the image the request names (on failure, just its name). */
int read_image(MDB_txn *txn, struct metad *m, struct blobcr_dec *req,
	       struct image *img);
/** begin_on_image() - a transaction and the image the request names. */
int begin_on_image(struct metad *m, unsigned int flags, struct blobcr_dec *req,
		   MDB_txn **txn, struct image *img);
/** enc_count_slot() - reserve a list reply's count; Return: its offset. */
size_t enc_count_slot(struct blobcr_enc *reply);
void enc_count_fill(struct blobcr_enc *reply, size_t off, uint32_t n);

/* Encodes one record of a table: 1 if it did, 0 to pass it over, or -errno. */
typedef int (*enc_record_fn)(MDB_txn *txn, struct metad *m, const MDB_val *k,
			     const MDB_val *v, struct blobcr_enc *reply);

/** reply_table() - answer an empty request with every record of @dbi. */
int reply_table(struct metad *m, struct blobcr_dec *req, MDB_dbi dbi,
		enc_record_fn enc_record, struct blobcr_enc *reply);

/* ---- images.c ---- */

int do_image_create(struct metad *m, struct blobcr_dec *req);
int do_image_clone(struct metad *m, struct blobcr_dec *req);
int do_image_info(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);
int do_image_list(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);
int do_version_list(struct metad *m, struct blobcr_dec *req,
		    struct blobcr_enc *reply);
int do_image_delete(struct metad *m, struct blobcr_dec *req, uint8_t op);

/* ---- lookup.c ---- */

/** enc_locations() - where chunk @id lives: live replicas first. */
int enc_locations(struct metad *m, MDB_cursor *ccur, struct blobcr_enc *e,
		  const uint8_t *id, bool live_only);
int do_lookup(struct metad *m, struct blobcr_dec *req,
	      struct blobcr_enc *reply);
int do_chunk_locate(struct metad *m, struct blobcr_dec *req,
		    struct blobcr_enc *reply);

/* ---- publish.c ---- */

int do_publish(struct metad *m, struct blobcr_dec *req,
	       struct blobcr_enc *reply);

/* ---- gc.c ---- */

int gc_epoch(MDB_txn *txn, struct metad *m, uint64_t *epoch);
/** chunk_doomed() - whether a gc is deleting @id. */
bool chunk_doomed(MDB_txn *txn, struct metad *m, const uint8_t *id);
int do_gc(struct metad *m, struct blobcr_dec *req, struct blobcr_enc *reply);
/** resume_gc() - finish a gc a crash interrupted, before serving. */
int resume_gc(struct metad *m);

/* ---- locations.c ---- */

int do_chunk_add_locations(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply);
int do_chunk_drop_location(struct metad *m, struct blobcr_dec *req);
int do_under_replicated(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply);

/* ---- groups.c ---- */

int do_group_publish(struct metad *m, struct blobcr_dec *req);
int do_group_list(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);

/* ---- access.c ---- */

/** access_del() - forget the access order of image@@ver, if any. */
int access_del(MDB_txn *txn, struct metad *m, uint64_t image, uint32_t ver);
int do_access_put(struct metad *m, struct blobcr_dec *req);
int do_access_get(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);

#endif /* BLOBCR_METAD_H */
