/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr.h - client library of the dm-blobcr repository.
 *
 * One handle (struct blobcr_client) talks to the version manager
 * (blobcr-metad) over one REQ socket and to the storage nodes
 * (blobcr-noded) through a pool of REQ sockets per node, so that many chunk
 * requests are in flight at once.  Chunks are placed by rendezvous hashing
 * of the chunk id over the live nodes, R replicas each; reads fail over
 * between replicas on error, timeout or corruption.
 *
 * Every function returns 0 or a negative errno unless it says otherwise.
 * A handle is not thread-safe: use one per thread.
 */
#ifndef BLOBCR_H
#define BLOBCR_H

#include <stddef.h>
#include <stdint.h>

#include "blobcr_auth.h"
#include "blobcr_wire.h"

struct blobcr_client;
struct blobcr_changeset;

struct blobcr_client_opts {
	int timeout_ms; /* per request; 0: 10000 */
	int inflight; /* sockets (requests in flight) per node; 0: 8 */
	int replicas; /* 0: the version manager's setting */
	/*
	 * The failure domain of the host this client writes from: copies
	 * there never count towards R.  NULL: $BLOBCR_DOMAIN, else the host
	 * name (what blobcr-noded takes by default).
	 */
	const char *domain;
	const char *key_file; /* our private key; NULL: $BLOBCR_KEY */
	int encrypt; /* encrypt every payload; 0: only if $BLOBCR_ENCRYPT=1 */
};

enum blobcr_node_state {
	BLOBCR_NODE_LIVE = 1,
	BLOBCR_NODE_DEAD = 2,
};

enum blobcr_node_role {
	BLOBCR_NODE_ACTIVE = 1, /* takes new copies */
	BLOBCR_NODE_DRAINING = 2, /* serves reads; its copies move elsewhere */
	BLOBCR_NODE_REMOVED = 3, /* gone for good */
};

struct blobcr_node_info {
	uint32_t id;
	uint8_t state; /* enum blobcr_node_state */
	uint8_t role; /* enum blobcr_node_role */
	char domain[BLOBCR_DOMAIN_MAX]; /* failure domain */
	char addr[BLOBCR_ADDR_MAX];
	uint64_t heartbeat_age_ms; /* since the last heartbeat */
	uint64_t capacity; /* bytes, 0: unlimited */
	uint64_t used; /* bytes in segment files */
	uint64_t chunks; /* chunks the node holds */
};

struct blobcr_image_info {
	char name[BLOBCR_NAME_MAX];
	uint64_t size; /* bytes */
	uint32_t extent_size; /* bytes */
	uint32_t latest; /* latest version, 0: none yet (all zeros) */
	uint32_t nversions;
	char parent[BLOBCR_NAME_MAX]; /* clone source, "" if none */
	uint32_t parent_version;
	uint64_t created; /* unix seconds */
};

struct blobcr_version_info {
	uint32_t version;
	uint32_t base; /* version it was built on */
	uint64_t time; /* unix seconds */
	uint64_t changed; /* extents this version stores */
	char label[BLOBCR_NAME_MAX];
	char group[BLOBCR_NAME_MAX]; /* checkpoint group naming it last, "" */
};

enum blobcr_extent_kind {
	BLOBCR_EXT_ZERO = 0, /* hole: reads as zeros */
	BLOBCR_EXT_DATA = 1,
};

/* Where one extent's bytes live, as blobcr_lookup() reports it. */
struct blobcr_extent_loc {
	uint64_t extent;
	uint8_t kind; /* enum blobcr_extent_kind */
	uint8_t nreplicas;
	uint8_t id[BLOBCR_ID_SIZE]; /* chunk id (SHA-256), DATA only */
	uint32_t replicas[BLOBCR_MAX_REPLICAS]; /* node ids holding it */
};

/* One chunk read for blobcr_get_chunks(). */
struct blobcr_get {
	const struct blobcr_extent_loc *loc; /* kind DATA */
	void *buf; /* receives the chunk */
	uint32_t len; /* expected chunk length */
	int status; /* out: 0 or -errno */
};

/* One chunk write for blobcr_put_chunks(). */
struct blobcr_put {
	uint8_t id[BLOBCR_ID_SIZE]; /* SHA-256 of data */
	const void *data;
	uint32_t len;
	uint8_t nhave; /* in: live nodes that already hold it */
	uint8_t nreplicas; /* out: nodes holding it, have + written */
	uint32_t replicas[BLOBCR_MAX_REPLICAS]; /* in: the nhave; out: all */
	int status; /* out: 0 or -errno */
	/* in: failure domains (blobcr_domain_hash()) of the hosts that wrote
	 * the chunk (a commit: its own): each writer must survive its own
	 * host, so of the copies in these domains one does not count, and
	 * new copies go elsewhere first */
	uint8_t nexclude;
	uint32_t exclude[BLOBCR_MAX_REPLICAS];
};

struct blobcr_gc_stats {
	uint64_t chunks_deleted;
	uint64_t chunks_kept;
	uint64_t delete_failures; /* node deletes that failed (retried next gc) */
	uint64_t copies_trimmed; /* copies beyond what R needs, deleted */
	uint64_t strays_deleted; /* chunks of commits that never published */
	uint64_t spared; /* not deleted: a commit in flight counts on them,
			  * or the grace period is not over */
};

struct blobcr_repair_stats {
	uint64_t under_replicated;
	uint64_t repaired;
	uint64_t failed;
	uint64_t lost; /* of the failed: no good copy left (none live, or
			* every live holder's is bad or missing) */
};

struct blobcr_group_member {
	char image[BLOBCR_NAME_MAX];
	uint32_t version;
};

/* A checkpoint group, as blobcr_group_list() reports it. */
struct blobcr_group_info {
	char name[BLOBCR_NAME_MAX];
	uint64_t time; /* unix seconds */
	uint32_t nmembers;
	struct blobcr_group_member *members;
};

/* Progress callback for import/export: @done of @total bytes. */
typedef void (*blobcr_progress_fn)(void *arg, uint64_t done, uint64_t total);

/**
 * blobcr_connect() - open a handle on the repository whose version manager
 * listens at @meta_addr (a nanomsg address, "tcp://host:port"), with the
 * key @opts->key_file (Documentation/security.rst).  @opts may be NULL for
 * defaults.  Fetches the node list once.
 * Return: 0 and *@out, or -errno (-ETIMEDOUT: metad did not answer;
 * -ENOKEY, -EKEYREJECTED, -EACCES: see blobcr_auth_detail()).
 */
int blobcr_connect(const char *meta_addr, const struct blobcr_client_opts *opts,
		   struct blobcr_client **out);

/** blobcr_close() - close every socket and free the handle.  NULL is fine. */
void blobcr_close(struct blobcr_client *c);

/**
 * blobcr_strerror() - text for a negative errno this library returns.  For
 * a key or permission error, blobcr_auth_detail() says more (which key,
 * refused by whom and why).
 */
const char *blobcr_strerror(int err);

/** blobcr_key_file() - the private key file the handle authenticates with. */
const char *blobcr_key_file(const struct blobcr_client *c);

/** blobcr_replicas() - Return: the replication factor in use (>= 1). */
int blobcr_replicas(const struct blobcr_client *c);

/**
 * blobcr_node_list() - the storage nodes metad knows, live or dead.
 * Return: 0 and a malloc'ed array in *@out (free() it) of *@n entries.
 */
int blobcr_node_list(struct blobcr_client *c, struct blobcr_node_info **out,
		     size_t *n);

/** blobcr_image_create() - an empty image (version 0, all zeros). */
int blobcr_image_create(struct blobcr_client *c, const char *name,
			uint64_t size, uint32_t extent_size);

/**
 * blobcr_image_clone() - @dst, a new image sharing every chunk of
 * @src@@version (0: its latest).  Return: 0, -ENOENT, -EEXIST.
 */
int blobcr_image_clone(struct blobcr_client *c, const char *src,
		       uint32_t version, const char *dst);

/** blobcr_image_info() - Return: 0 and *@out, or -ENOENT. */
int blobcr_image_info(struct blobcr_client *c, const char *name,
		      struct blobcr_image_info *out);

/** blobcr_image_list() - every image; malloc'ed array in *@out, free() it. */
int blobcr_image_list(struct blobcr_client *c, struct blobcr_image_info **out,
		      size_t *n);

/** blobcr_version_list() - an image's versions, oldest first; free() *@out. */
int blobcr_version_list(struct blobcr_client *c, const char *name,
			struct blobcr_version_info **out, size_t *n);

/**
 * blobcr_image_delete() - delete @name@@version, or the whole image when
 * @version is 0.  Chunks are freed by the next blobcr_gc().
 * Return: 0, -ENOENT, -EBUSY (a clone depends on it, or a deployment holds
 * a lease on it).
 */
int blobcr_image_delete(struct blobcr_client *c, const char *name,
			uint32_t version);

/**
 * blobcr_lookup() - where the @n extents @extents of @name@@version live
 * (version 0: the latest), following clone parents; holes come back as
 * BLOBCR_EXT_ZERO.  One request per 4096 extents.  @out has @n entries.
 * Return: 0, -ENOENT (image or version), -ERANGE (an extent past the end).
 */
int blobcr_lookup(struct blobcr_client *c, const char *name, uint32_t version,
		  const uint64_t *extents, size_t n,
		  struct blobcr_extent_loc *out);

/**
 * blobcr_get_chunks() - read @n chunks in parallel, each from one of its
 * replicas, failing over to the next on error, timeout or corruption.
 * Every chunk is verified against its id (and every reply against its
 * frame CRC).  Corrupt or missing copies are reported to metad, which asks
 * their node before it forgets them.
 * Return: 0 if every get succeeded, else the first error (see ->status).
 */
int blobcr_get_chunks(struct blobcr_client *c, struct blobcr_get *gets,
		      size_t n);

/**
 * blobcr_put_chunks() - write @n chunks so that each is durable on R live
 * nodes in R distinct failure domains, none of them excluded (placement by
 * rendezvous hashing, skipping the nodes that already hold it); a failed
 * node is replaced by the next one in the ranking.
 * Return: 0 if every chunk reached R nodes, else the first error
 * (-EHOSTDOWN: not enough live nodes in distinct domains).
 */
int blobcr_put_chunks(struct blobcr_client *c, struct blobcr_put *puts,
		      size_t n);

/**
 * blobcr_commit_begin() - start a new version of @image on top of its
 * latest one.  Extents not given keep their content (shadowing).
 */
int blobcr_commit_begin(struct blobcr_client *c, const char *image,
			struct blobcr_changeset **out);

/**
 * blobcr_commit_extent() - set extent @extent to the extent_size bytes at
 * @data (all zeros is recorded as a hole).  Data is hashed, deduplicated
 * and uploaded in batches; @data may be reused on return.
 */
int blobcr_commit_extent(struct blobcr_changeset *cm, uint64_t extent,
			 const void *data);

/**
 * blobcr_commit_overlap() - from now on, upload each full batch (32 MiB)
 * from a thread of the commit's own while blobcr_commit_extent() goes on
 * hashing the next one: two batches of memory instead of one.  Until
 * blobcr_commit_publish() or blobcr_commit_free() returns, the client the
 * commit was begun on belongs to that thread: the caller must not use it.
 * An upload's failure is returned by a later call, as without overlap.
 */
void blobcr_commit_overlap(struct blobcr_changeset *cm);

/**
 * blobcr_commit_publish() - upload what is left and publish the version
 * atomically; *@version receives its number.  @label may be NULL.
 * Nothing is published once an upload of this commit failed: that error
 * is returned again.
 * Return: 0; -EBUSY (another commit published first), -EAGAIN (the commit
 * lasted longer than metad's --gc-grace-s and a gc took a chunk it found),
 * -EHOSTDOWN (a chunk lacks R live replicas in distinct failure domains
 * outside the writer's).
 */
int blobcr_commit_publish(struct blobcr_changeset *cm, const char *label,
			  uint32_t *version);

/** blobcr_commit_free() - free the commit; unpublished data is dropped. */
void blobcr_commit_free(struct blobcr_changeset *cm);

/**
 * blobcr_image_import() - create @name (@extent_size bytes per extent) and
 * publish the content of the file @fd (@size bytes) as version 1.  Zero
 * extents are stored as holes, identical extents once.
 */
int blobcr_image_import(struct blobcr_client *c, const char *name, int fd,
			uint64_t size, uint32_t extent_size,
			blobcr_progress_fn progress, void *arg);

/**
 * blobcr_image_export() - write @name@@version (0: latest) into @fd,
 * byte-exact; holes are left as holes (the file is truncated to the size
 * first).
 */
int blobcr_image_export(struct blobcr_client *c, const char *name,
			uint32_t version, int fd, blobcr_progress_fn progress,
			void *arg);

/**
 * blobcr_access_order_put() - record the order in which a deployment of
 * @image@@version first touched its extents (@n extent numbers), for
 * later deployments of that version to prefetch by.  The first record of
 * a version stays.  Return: 0, -EEXIST (one is recorded), -ENOENT,
 * -ERANGE (an extent past the end), -EBADMSG (@n is 0 or too large).
 */
int blobcr_access_order_put(struct blobcr_client *c, const char *image,
			    uint32_t version, const uint64_t *extents,
			    size_t n);

/**
 * blobcr_access_order_get() - the access order recorded for
 * @image@@version: a malloc'ed array in *@out (free() it) of *@n extents.
 * Return: 0, -ENOENT (no image, version or record).
 */
int blobcr_access_order_get(struct blobcr_client *c, const char *image,
			    uint32_t version, uint64_t **out, size_t *n);

/**
 * blobcr_lease() - as @holder (a name: 1 to 127 of A-Z a-z 0-9 . _ - : +),
 * take or renew a lease on @image@@version (0: the latest) for @ttl_ms
 * (at most one hour), or release it (@ttl_ms 0).  A version with a live
 * lease cannot be deleted, nor its image, so gc keeps its chunks; renew
 * well before @ttl_ms runs out.  Return: 0, -ENOENT, -EINVAL.
 */
int blobcr_lease(struct blobcr_client *c, const char *holder,
		 const char *image, uint32_t version, uint32_t ttl_ms);

/**
 * blobcr_gc() - delete from the nodes every chunk that no remaining version
 * needs, copies beyond what R needs, and chunks of commits that never
 * published (after metad's --gc-grace-s).  Never fails a commit in
 * flight: the chunks it counts on are spared.  @st may be NULL.
 */
int blobcr_gc(struct blobcr_client *c, struct blobcr_gc_stats *st);

/**
 * blobcr_repair() - copy every chunk with fewer than R live replicas (in
 * distinct failure domains, outside its writers') to new nodes, from a
 * live replica, and record the new locations.  @st may be NULL.
 * Return: 0; -EHOSTDOWN if some could not be repaired (see @st).
 */
int blobcr_repair(struct blobcr_client *c, struct blobcr_repair_stats *st);

/**
 * blobcr_under_replicated() - count, without repairing them, the chunks
 * blobcr_repair() would copy (fewer than R live replicas).  Return: 0 and
 * *@n, or -errno.
 */
int blobcr_under_replicated(struct blobcr_client *c, uint64_t *n);

/**
 * blobcr_node_drain() - with @drain, node @id serves reads but takes no
 * new copies and its copies stop counting, so that repairs move them
 * elsewhere (decommission, step one); without, it is active again.
 * Return: 0, -ENOENT (no such node).
 */
int blobcr_node_drain(struct blobcr_client *c, uint32_t id, int drain);

/**
 * blobcr_node_remove() - remove node @id for good (decommission, step
 * two): its locations are forgotten.  Return: 0; -ENOENT; -EBUSY (some of
 * its chunks lack R copies elsewhere: drain and repair first).
 */
int blobcr_node_remove(struct blobcr_client *c, uint32_t id);

/**
 * blobcr_group_publish() - record the checkpoint group @name: the @n
 * images @images at versions @versions, one global checkpoint, atomically.
 */
int blobcr_group_publish(struct blobcr_client *c, const char *name, size_t n,
			 const char *const *images, const uint32_t *versions);

/**
 * blobcr_group_list() - every checkpoint group; an array in *@out of *@n
 * entries, to be freed with blobcr_group_list_free().
 */
int blobcr_group_list(struct blobcr_client *c, struct blobcr_group_info **out,
		      size_t *n);

/** blobcr_group_list_free() - free what blobcr_group_list() returned. */
void blobcr_group_list_free(struct blobcr_group_info *v, size_t n);

/**
 * blobcr_group_delete() - forget checkpoint group @name (its versions
 * stay; those it named last name no group any more).
 * Return: 0, -ENOENT, -errno.
 */
int blobcr_group_delete(struct blobcr_client *c, const char *name);

/** blobcr_chunk_id() - SHA-256 of @len bytes at @data into @id. */
int blobcr_chunk_id(const void *data, size_t len, uint8_t id[BLOBCR_ID_SIZE]);

/** blobcr_id_hex() - @id as 64 hex digits and a NUL in @out. */
void blobcr_id_hex(const uint8_t id[BLOBCR_ID_SIZE], char out[65]);

#endif /* BLOBCR_H */
