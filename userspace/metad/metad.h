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
 *   publish.c    a new version in one write transaction, staged if big
 *   replicas.c   how well a chunk is kept: holders, failure domains
 *   gc.c         garbage collection
 *   sessions.c   commits in flight: the chunks gc must spare
 *   locations.c  chunk locations: repairs, reports, under-replicated
 *   upkeep.c     suspects checked, removed nodes forgotten, inventories
 *   groups.c     checkpoint groups
 *   access.c     access orders for adaptive prefetch
 *   leases.c     leases on deployed versions
 *   manifests.c  the state kept on the nodes too, for a rebuild
 *   rebuild.c    the database made again from the nodes' manifests
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
#define CHUNK_DOOMED 0xff /* CHUNK_LOCATE's count: a gc deletes it, ask again */

struct pub;
struct mentry;

/* A commit in flight, or the publishes during a gc (sessions.c). */
struct session {
	uint64_t id;
	uint64_t touched; /* blobcr_now_ms() */
	uint64_t *keys; /* the chunks it counts on (may repeat) */
	size_t n, cap;
	struct session *next;
};

/* Chunks the commits in flight count on (sessions.c), under mu. */
struct wanted {
	pthread_mutex_t mu;
	pthread_rwlock_t mark_rw; /* a gc's snapshot against publishes */
	bool gc_running; /* publishes go to late meanwhile */
	struct session late; /* chunks published since the gc's snapshot */
	struct session *sessions;
	uint64_t *keys; /* id prefixes, open addressing */
	uint32_t *counts; /* how many sessions want each, 0: none now */
	uint8_t *taken; /* a slot once used stays taken until rebuilt */
	size_t cap, used;
};
#define DELETE_BATCH BLOBCR_DELETE_MAX
#define MAX_NODES 4096
#define SERVER_THREADS 4 /* heartbeats, lookups, lists */
#define HEAVY_THREADS 2 /* writes and gc (the rule table says which) */

struct node {
	uint32_t id; /* set before the node is published in nnodes */
	/* under nodes_mu (they change when a node moves or is re-homed): */
	char addr[BLOBCR_ADDR_MAX];
	uint8_t uuid[BLOBCR_UUID_SIZE];
	char domain[BLOBCR_DOMAIN_MAX];
	/* atomic: */
	uint32_t domain_hash; /* blobcr_domain_hash(domain) */
	uint8_t state; /* enum node_state */
	bool reconcile; /* compare its locations with its inventory */
	uint64_t incarnation; /* the node process's, from its heartbeats */
	uint64_t last_seen; /* blobcr_now_ms() of the last heartbeat, 0: never */
	uint64_t capacity, used, chunks;
};

struct metad {
	struct db db;
	struct blobcr_key *key; /* metad's own, role metad */
	int replicas;
	uint64_t dead_after_ms;
	int publish_delay_ms; /* test hook: stall publishes before commit */
	int gc_delay_ms; /* test hook: stall gc between its phases */
	const char *gc_pause; /* test hook: gc waits while PATH.mark/.delete */
	size_t rebuild_pause; /* test hook: a rebuild waits after N steps */
	size_t list_page_bytes; /* LIST_PAGE_BYTES; less in tests */
	size_t map_bytes; /* the LMDB map to begin with (--map-mb) */
	int node_timeout_ms;
	int repair_s; /* re-replication check period, 0: never */
	int reconcile_s; /* period of inventory checks, 0: on (re)join only */
	struct node *nodes; /* MAX_NODES entries */
	size_t nnodes; /* atomic, release after the entry is filled */
	pthread_mutex_t nodes_mu; /* appends, registrations, node records */
	pthread_mutex_t gc_mu; /* one gc at a time */
	/* upkeep (upkeep.c) waits on upkeep_cv for work or a period */
	pthread_mutex_t upkeep_mu;
	pthread_cond_t upkeep_cv;
	bool upkeep_kick; /* under upkeep_mu */
	uint64_t repair_events; /* atomic: bumped when copies may be missing */
	/* staged publishes (publish.c) */
	pthread_mutex_t stage_mu;
	struct pub *stages; /* under stage_mu */
	uint64_t staged_bytes; /* under stage_mu */
	uint64_t max_staged_bytes;
	uint64_t next_stage; /* atomic */
	pthread_mutex_t manifest_mu; /* manifests are written one at a time */
	struct wanted wanted;
	uint64_t gc_grace_ms; /* a session idle this long has ended */
	uint64_t gc_start_wait_ms; /* gc deletes nothing this long after start */
	uint64_t started_ms; /* blobcr_now_ms() at start */
	bool rebuilding; /* atomic: only heartbeats are served meanwhile */
	int rebuild_wait_s; /* longest wait for the nodes to join */
	struct blobcr_server srv;
	volatile sig_atomic_t stop;
};

/* ---- nodes.c ---- */

size_t node_count(struct metad *m);
struct node *node_find(struct metad *m, uint32_t id);
/** node_live() - heartbeats arrive and the node is not removed: readable. */
bool node_live(struct metad *m, uint32_t id);
/** node_counts() - live and active: its copies count towards R. */
bool node_counts(struct metad *m, uint32_t id);
uint8_t node_state(const struct node *n);
/** node_addr() - copy the node's current address into @out. */
void node_addr(struct metad *m, const struct node *n,
	       char out[BLOBCR_ADDR_MAX]);
/**
 * node_call() - one request to storage node @n (built in @e), as metad, in
 * a session of its own, waiting at most node_timeout_ms.  Return: as
 * blobcr_peer_call(); the connection is closed.
 */
int node_call(struct metad *m, const struct node *n, uint8_t op,
	      struct blobcr_enc *e, void **msg, struct blobcr_dec *d);
/** node_call_timeout() - node_call(), waiting at most @timeout_ms. */
int node_call_timeout(struct metad *m, const struct node *n, uint8_t op,
		      struct blobcr_enc *e, void **msg, struct blobcr_dec *d,
		      int timeout_ms);
/** load_nodes() - the node table from LMDB, at startup (all dead). */
int load_nodes(struct metad *m);
/** repair_wanted() - copies may be missing: let re-replication look. */
void repair_wanted(struct metad *m);
int do_heartbeat(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply);
int do_node_list(struct metad *m, struct blobcr_dec *req,
		 struct blobcr_enc *reply);
int do_node_drain(struct metad *m, struct blobcr_dec *req);
int do_node_remove(struct metad *m, struct blobcr_dec *req);

/* ---- request.c ---- */

int txn_begin(struct metad *m, unsigned int flags, MDB_txn **txn);
/** txn_end() - commit @txn if @err is 0, else abort it; Return: the outcome. */
int txn_end(MDB_txn *txn, int err);
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

/* A list reply's page stops past this many bytes (a frame holds 8 MiB). */
#define LIST_PAGE_BYTES (1u << 20)
/**
 * page_full() - after a record (encoded from @before on) and @n before
 * it: whether the page is full (m->list_page_bytes); if so the record is
 * taken back.
 */
bool page_full(struct metad *m, struct blobcr_enc *reply, size_t before,
	       uint32_t n);
/**
 * reply_table() - a page of the records of @dbi after the name the
 * request gives ("": the first), then whether more follow.
 */
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

/**
 * enc_locations() - where chunk @id lives: for reads (live holders first),
 * or with @counting_only the holders whose copy counts towards R.
 */
int enc_locations(struct metad *m, MDB_cursor *ccur, struct blobcr_enc *e,
		  const uint8_t *id, bool counting_only);
int do_lookup(struct metad *m, struct blobcr_dec *req,
	      struct blobcr_enc *reply);
int do_chunk_locate(struct metad *m, struct blobcr_dec *req,
		    struct blobcr_enc *reply);

/* ---- replicas.c ---- */

#define MAX_HOLDERS 32 /* locations of a chunk looked at */
#define MAX_WRITERS 32 /* writers' domains of a chunk looked at */

/* A chunk's holders, as holders_load() finds them. */
struct holders {
	int nlive; /* live holders: readable */
	int ncounting; /* live and active holders */
	int ndomains; /* distinct domains of the counting holders */
	int nwriters;
	int n; /* locations, live or not */
	uint32_t nodes[MAX_HOLDERS]; /* every location */
	uint32_t domains[MAX_HOLDERS];
	uint32_t writers[MAX_WRITERS]; /* domains of hosts that published it */
};

/**
 * holders_load() - the locations of @id (@ccur on chunks) and, if @wcur
 * (on writers) is given, its writers' domains; node @except (0: none) is
 * left out of the counts.  Return: 0 or -errno.
 */
int holders_load(struct metad *m, MDB_cursor *ccur, MDB_cursor *wcur,
		 const uint8_t *id, uint32_t except, struct holders *h);
/* The cursors of a walk over a table that weighs each chunk's holders. */
struct holder_walk {
	MDB_cursor *walk; /* on the table walked */
	MDB_cursor *chunks, *writers; /* for holders_load() */
};

/** holder_walk_open() - all three cursors, or none.  Return: 0 or -errno. */
int holder_walk_open(MDB_txn *txn, struct metad *m, MDB_dbi dbi,
		     struct holder_walk *w);
void holder_walk_close(struct holder_walk *w);
/** holders_replicas_for() - copies that count for a writer in @writer. */
int holders_replicas_for(const struct holders *h, uint32_t writer);
/** holders_replicas() - copies that count for every writer of the chunk. */
int holders_replicas(const struct holders *h);
bool holders_in_domain(const struct holders *h, uint32_t domain);
/**
 * holders_extras() - the copies of @id that R does not need (several in
 * one domain, or more domains than R outside the writers'), in @extra
 * (MAX_HOLDERS); none while a copy is dead, draining or removed.
 * Return: how many.
 */
int holders_extras(struct metad *m, const uint8_t *id, const struct holders *h,
		   uint32_t *extra);
bool holders_writer(const struct holders *h, uint32_t domain);
/**
 * place_nodes() - the live, active nodes ranked for chunk @id by
 * rendezvous hashing, best first (at most @max).  Return: how many.
 */
int place_nodes(struct metad *m, const uint8_t *id, uint32_t *out, int max);

/* ---- publish.c ---- */

int do_publish(struct metad *m, struct blobcr_dec *req,
	       struct blobcr_enc *reply);
int do_publish_begin(struct metad *m, struct blobcr_dec *req,
		     struct blobcr_enc *reply);
int do_publish_part(struct metad *m, struct blobcr_dec *req);
int do_publish_commit(struct metad *m, struct blobcr_dec *req,
		      struct blobcr_enc *reply);
int do_publish_abort(struct metad *m, struct blobcr_dec *req);
/** stages_free() - drop every staged publish, at exit. */
void stages_free(struct metad *m);

/* ---- sessions.c ---- */

/**
 * session_want() - commit @session (0: none) counts on the @n chunks @ids
 * (packed): gc spares them until it publishes or goes idle.
 */
int session_want(struct metad *m, uint64_t session, const uint8_t *ids,
		 size_t n);
/** session_end() - @session published: its chunks are referenced now. */
void session_end(struct metad *m, uint64_t session);
/*
 * A publish holds sessions_publish_begin() .. _end() around its write
 * transaction, in which sessions_published() tells a running gc its
 * chunks (@n entries @e).
 */
void sessions_publish_begin(struct metad *m);
int sessions_published(struct metad *m, const struct mentry *e, size_t n);
void sessions_publish_end(struct metad *m);
/**
 * sessions_gc_mark() - a gc begins: the read transaction of its mark in
 * *@txn; publishes from now on are noted until sessions_gc_done().
 */
int sessions_gc_mark(struct metad *m, MDB_txn **txn);
void sessions_gc_done(struct metad *m);
/* gc holds the sessions' lock (after its write transaction began) while
 * it chooses what to delete. */
void sessions_lock(struct metad *m);
void sessions_unlock(struct metad *m);
/** session_wanted_locked() - some commit in flight counts on @id. */
bool session_wanted_locked(struct metad *m, const uint8_t *id);
void sessions_free(struct metad *m);

/* ---- gc.c ---- */

/** chunk_doomed() - whether a gc is deleting @id. */
bool chunk_doomed(MDB_txn *txn, struct metad *m, const uint8_t *id);
int do_gc(struct metad *m, struct blobcr_dec *req, struct blobcr_enc *reply);
/** resume_gc() - finish a gc a crash interrupted, before serving. */
int resume_gc(struct metad *m);

/* ---- locations.c ---- */

/**
 * location_drop() - forget that @node holds @id, unless it is the chunk's
 * last location.  Return: 0; -ENOENT (no such location); -EBUSY (the
 * last: kept, logged); -errno.
 */
int location_drop(MDB_txn *txn, struct metad *m, const uint8_t *id,
		  uint32_t node);
/** suspect_clear() - @id on @node is no longer suspected. */
int suspect_clear(MDB_txn *txn, struct metad *m, const uint8_t *id,
		  uint32_t node);
/**
 * locations_confirmed_bad() - @node itself says it lacks the @n chunks
 * @ids, or holds them corrupt: drop those locations (the last ones kept).
 */
int locations_confirmed_bad(struct metad *m, uint32_t node,
			    const uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n,
			    size_t *dropped);
/** node_chunks_short() - how many of @node's chunks lack R copies elsewhere. */
int node_chunks_short(struct metad *m, uint32_t node, uint64_t *short_of);
int do_chunk_add_locations(struct metad *m, struct blobcr_dec *req,
			   struct blobcr_enc *reply);
int do_chunk_suspect(struct metad *m, struct blobcr_dec *req);
int do_node_bad_chunks(struct metad *m, struct blobcr_dec *req);
int do_under_replicated(struct metad *m, struct blobcr_dec *req,
			struct blobcr_enc *reply);

/* ---- manifests.c ---- */

#define MANIFEST_MAGIC "BCRMANI1" /* 8 bytes: a manifest chunk */

enum manifest_kind {
	MANIFEST_IMAGE = 1,
	MANIFEST_VERSION = 2,
	MANIFEST_GROUP = 3,
	MANIFEST_ACCESS = 4,
	MANIFEST_TOMBSTONE = 5,
};

/* One extent of a version, as a manifest lists it. */
struct mentry {
	uint64_t extent;
	uint8_t kind;
	uint8_t id[BLOBCR_ID_SIZE];
};

void manifest_name_image(char out[BLOBCR_ROOT_MAX], const char *image);
/** manifest_name_version() - @kind 'v' a version, 'a' its access order. */
void manifest_name_version(char out[BLOBCR_ROOT_MAX], char kind,
			   uint64_t image, uint32_t ver);
void manifest_name_group(char out[BLOBCR_ROOT_MAX], const char *group);
/**
 * manifest_pending() - in the transaction of a mutation: the manifest of
 * @name must be written again, at a fresh sequence number.
 */
int manifest_pending(MDB_txn *txn, struct metad *m, const char *name);
/** manifest_write() - write @name's manifest, if pending, from the database. */
int manifest_write(struct metad *m, const char *name);
/** manifest_write_logged() - the same; a failure is logged, left pending. */
void manifest_write_logged(struct metad *m, const char *name);
/**
 * manifest_publish() - write a just published version's manifest from its
 * entries, unless a later change made it pending again.
 */
int manifest_publish(struct metad *m, const char *name, uint64_t seq,
		     uint64_t image, const struct version *ver, uint32_t writer,
		     const struct mentry *e, size_t n);
/** manifests_flush() - write pending manifests (a batch); *@left: failed. */
int manifests_flush(struct metad *m, size_t *left);
/**
 * manifests_keep() - copy manifests with fewer than R live holders to
 * more nodes.  Return: 0 or the first error (the others are tried).
 */
int manifests_keep(struct metad *m);
/**
 * manifest_fetch() - manifest chunk @id from the first of @n @nodes that
 * has it whole, malloc'ed in *@out.  Return: 0 or -errno.
 */
int manifest_fetch(struct metad *m, const uint32_t *nodes, int n,
		   const uint8_t *id, uint8_t **out, size_t *len);

/* ---- rebuild.c ---- */

/**
 * rebuild_start() - rebuild the database from the nodes in a thread;
 * m->rebuilding until done.  The database must be empty, or hold a
 * rebuild a crash interrupted, which is done again from the start.
 * Return: 0; -ENOTEMPTY if the database holds images of its own; -errno.
 */
int rebuild_start(struct metad *m, pthread_t *tid);
/**
 * rebuild_interrupted() - whether the database holds an unfinished
 * rebuild (metad must then finish it before serving).  Return: 1, 0 or
 * -errno.
 */
int rebuild_interrupted(struct metad *m);

/* ---- leases.c ---- */

/**
 * lease_check() - -EBUSY (logged) if a live lease holds @img@@ver, or any
 * version of @img when @ver is 0; expired leases met are deleted.
 */
int lease_check(MDB_txn *txn, struct metad *m, const struct image *img,
		uint32_t ver);
int do_lease(struct metad *m, struct blobcr_dec *req);

/* ---- upkeep.c ---- */

/**
 * upkeep_start() - the thread that asks nodes about suspected copies,
 * forgets removed nodes' locations and reconciles locations with the
 * nodes' inventories.  Return: 0 or -errno.
 */
int upkeep_start(struct metad *m, pthread_t *tid);
/** upkeep_kick() - wake the upkeep thread: there is work. */
void upkeep_kick(struct metad *m);

/* ---- groups.c ---- */

int do_group_publish(struct metad *m, struct blobcr_dec *req);
int do_group_list(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);
/**
 * do_group_delete() - forget a group; the versions it named last name the
 * group before it that names them, if any.
 */
int do_group_delete(struct metad *m, struct blobcr_dec *req);

/* ---- access.c ---- */

/** access_del() - forget the access order of image@@ver, if any. */
int access_del(MDB_txn *txn, struct metad *m, uint64_t image, uint32_t ver);
int do_access_put(struct metad *m, struct blobcr_dec *req);
int do_access_get(struct metad *m, struct blobcr_dec *req,
		  struct blobcr_enc *reply);

#endif /* BLOBCR_METAD_H */
