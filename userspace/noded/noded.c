// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-noded - a storage node of the dm-blobcr repository: serves the
 * chunk store (store.h) over a nanomsg REP socket, heartbeats to the
 * version manager with its identity and failure domain, scrubs its chunks
 * in the background and reports the bad ones it finds.  Every request
 * comes in a session opened with a key of the repository; the role table
 * below says which role may send what.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/param.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_conf.h"
#include "blobcr_notify.h"
#include "blobcr_util.h"
#include "forward.h"
#include "store.h"

#define BAD_QUEUE_MAX 4096 /* bad chunks kept for the next report */
#define INVENTORY_MAX 65536 /* ids per INVENTORY reply */
#define SCRUB_PAGE 256 /* ids listed at once by the scrubber */
#define ROOTS_MAX 4096 /* roots per ROOT_LIST reply */

/* Chunks found bad here, waiting to be reported to metad. */
struct bad_queue {
	pthread_mutex_t mu;
	uint8_t (*ids)[BLOBCR_ID_SIZE]; /* BAD_QUEUE_MAX */
	size_t n;
};

struct noded {
	struct store *st; /* chunks */
	struct store *mst; /* manifests: metad's state, kept for a rebuild */
	struct blobcr_server srv;
	struct blobcr_key *key; /* this node's */
	const char *meta; /* version manager, NULL: standalone */
	const char *advertise; /* address metad hands to clients */
	const char *data; /* the store's directory */
	char domain[BLOBCR_DOMAIN_MAX]; /* failure domain */
	uint64_t incarnation; /* this process's start: a restart is news to metad */
	int heartbeat_ms;
	int compact_s; /* period of background compaction, 0: never */
	uint64_t scrub_bps; /* scrubber's read rate, 0: no scrubbing */
	struct bad_queue bad;
	struct forwarder *fwd; /* PUT_FWD's copies to the other replicas */
	uint64_t scrubbed, scrub_passes; /* atomic */
	/* chunk bytes received in PUTs, in PUT_FWDs, and sent on: atomic */
	uint64_t put_bytes, put_fwd_bytes, forwarded_bytes;
	uint64_t scrub_pause; /* test hook: the scrubber stops after N chunks */
	volatile sig_atomic_t stop;
};

/* Remember a chunk this node found bad (a full queue drops it: metad's
 * reconciliation with the inventory finds it missing later anyway). */
static void report_bad(struct noded *nd, const uint8_t *id)
{
	pthread_mutex_lock(&nd->bad.mu);
	if (nd->bad.n < BAD_QUEUE_MAX)
		memcpy(nd->bad.ids[nd->bad.n++], id, BLOBCR_ID_SIZE);
	pthread_mutex_unlock(&nd->bad.mu);
}

static int do_put(struct noded *nd, struct blobcr_dec *req)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t len = blobcr_dec_u32(req);
	const uint8_t *data = blobcr_dec_bytes(req, len);
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	__atomic_fetch_add(&nd->put_bytes, len, __ATOMIC_RELAXED);
	err = store_put(nd->st, id, data, len);
	if (err && err != -EINVAL)
		log_warn("PUT of %" PRIu32 " bytes failed: %s", len,
			 strerror(-err));
	return err;
}

/*
 * PUT_FWD: PUT here, and to the nodes listed, each of which must be a
 * distinct node metad lists, not this one.  The copies elsewhere are
 * made while this one is, and the reply waits for all of them: its
 * status is this node's (an error: the others may or may not have a
 * copy), its payload each other node's, so that the client places again
 * exactly the copies that failed.  Each node checks the id against the
 * bytes, as for any PUT.
 */
static int do_put_fwd(struct noded *nd, struct blobcr_dec *req,
		      struct blobcr_enc *reply)
{
	uint8_t format = blobcr_dec_u8(req);
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t len = blobcr_dec_u32(req);
	const uint8_t *data = blobcr_dec_bytes(req, len);
	uint32_t wait_ms = blobcr_dec_u32(req);
	uint8_t n = blobcr_dec_u8(req);
	uint32_t ids[BLOBCR_MAX_REPLICAS];
	int status[BLOBCR_MAX_REPLICAS];
	int err = 0;

	if (!req->err && format != BLOBCR_PUT_FWD_FORMAT) {
		log_warn("PUT_FWD refused: format %u, this node knows %u",
			 format, BLOBCR_PUT_FWD_FORMAT);
		return -EPROTO;
	}
	if (!req->err && (n < 1 || n >= BLOBCR_MAX_REPLICAS)) {
		log_warn("PUT_FWD refused: %u other nodes, 1 to %d allowed", n,
			 BLOBCR_MAX_REPLICAS - 1);
		return -EINVAL;
	}
	for (int i = 0; i < n && !req->err; i++)
		ids[i] = blobcr_dec_u32(req);
	err = blobcr_dec_end(req);
	if (!err && (wait_ms < BLOBCR_FWD_WAIT_MIN_MS ||
		     wait_ms > BLOBCR_FWD_WAIT_MAX_MS)) {
		log_warn("PUT_FWD refused: a wait of %" PRIu32 " ms, %d to %d "
			 "allowed", wait_ms, BLOBCR_FWD_WAIT_MIN_MS,
			 BLOBCR_FWD_WAIT_MAX_MS);
		err = -EINVAL;
	}
	if (!err)
		err = fwd_check(nd->fwd, ids, n);
	if (err)
		return err;
	__atomic_fetch_add(&nd->put_fwd_bytes, len, __ATOMIC_RELAXED);
	err = store_put(nd->st, id, data, len);
	if (err) {
		if (err != -EINVAL)
			log_warn("PUT of %" PRIu32 " bytes failed: %s", len,
				 strerror(-err));
		return err; /* not sent on: the client places every copy again */
	}
	__atomic_fetch_add(&nd->forwarded_bytes,
			   fwd_put(nd->fwd, ids, n, id, data, len, (int)wait_ms,
				   status), __ATOMIC_RELAXED);
	blobcr_enc_u8(reply, n);
	for (int i = 0; i < n; i++) {
		blobcr_enc_u32(reply, ids[i]);
		blobcr_enc_u32(reply, (uint32_t)status[i]);
	}
	return reply->err;
}

static int do_get(struct noded *nd, struct store *st, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	int64_t len;
	uint8_t *buf;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	len = store_get_len(st, id);
	if (len < 0)
		return (int)len;
	if (blobcr_enc_grow(reply, (size_t)len))
		return reply->err;
	buf = blobcr_enc_reserve(reply, (size_t)len);
	if (!buf)
		return reply->err;
	len = store_get(st, id, buf, (uint32_t)len, NULL);
	if (len == -EUCLEAN && st == nd->st)
		report_bad(nd, id);
	return len < 0 ? (int)len : 0;
}

/* HAS, DELETE, GETV and VERIFY carry a count then that many ids. */
static int decode_ids(struct blobcr_dec *req, const uint8_t **ids, uint32_t *n)
{
	*n = blobcr_dec_u32(req);
	if (*n > BLOBCR_MAX_PAYLOAD / BLOBCR_ID_SIZE)
		return -EMSGSIZE;
	*ids = blobcr_dec_bytes(req, (size_t)*n * BLOBCR_ID_SIZE);
	return blobcr_dec_end(req);
}

/*
 * GETV: several chunks in one reply, each as status (0 or -errno), length
 * and bytes, so that one message carries many chunks.  A chunk that would
 * overflow the frame is answered -E2BIG.
 */
static int do_getv(struct noded *nd, struct blobcr_dec *req,
		   struct blobcr_enc *reply)
{
	const uint8_t *ids;
	uint32_t n;
	int err = decode_ids(req, &ids, &n);

	size_t total = 4;

	if (!err && n > BLOBCR_GETV_MAX)
		err = -EMSGSIZE;
	if (err)
		return err;
	/* Size the reply once: growing it step by step copies it each time. */
	for (uint32_t i = 0; i < n; i++) {
		int64_t len = store_get_len(nd->st, ids + (size_t)i * BLOBCR_ID_SIZE);

		total += 8 + (len > 0 ? (size_t)len : 0);
	}
	if (blobcr_enc_grow(reply, total < BLOBCR_MAX_PAYLOAD ? total :
				   BLOBCR_MAX_PAYLOAD))
		return reply->err;
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n && !reply->err; i++) {
		const uint8_t *id = ids + (size_t)i * BLOBCR_ID_SIZE;
		int64_t len = store_get_len(nd->st, id);
		size_t at = reply->len; /* the buffer may move: keep offsets */
		uint8_t *buf;

		if (len >= 0 && at + 8 + (size_t)len > BLOBCR_MAX_FRAME)
			len = -E2BIG;
		blobcr_enc_u32(reply, (uint32_t)(len < 0 ? len : 0));
		blobcr_enc_u32(reply, 0);
		if (len < 0)
			continue;
		buf = blobcr_enc_reserve(reply, (size_t)len);
		if (!buf)
			break;
		len = store_get(nd->st, id, buf, (uint32_t)len, NULL);
		if (len == -EUCLEAN)
			report_bad(nd, id);
		if (len < 0) {
			/* Not served after all: status set, the bytes dropped. */
			reply->len = at + 8;
			buf = reply->buf + at;
			buf[0] = (uint8_t)((uint32_t)len >> 24);
			buf[1] = (uint8_t)((uint32_t)len >> 16);
			buf[2] = (uint8_t)((uint32_t)len >> 8);
			buf[3] = (uint8_t)len;
			continue;
		}
		buf = reply->buf + at + 4;
		buf[0] = (uint8_t)(len >> 24);
		buf[1] = (uint8_t)(len >> 16);
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
	}
	return reply->err;
}

/* HAS and VERIFY: the count, then an answer per id from @answer. */
static int answer_ids(struct noded *nd, struct blobcr_dec *req,
		      struct blobcr_enc *reply,
		      int (*answer)(struct noded *nd, const uint8_t *id,
				    struct blobcr_enc *reply))
{
	const uint8_t *ids;
	uint32_t n;
	int err = decode_ids(req, &ids, &n);

	if (err)
		return err;
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n && !err; i++)
		err = answer(nd, ids + (size_t)i * BLOBCR_ID_SIZE, reply);
	return err ? err : reply->err;
}

/* HAS: 1 present, 0 not. */
static int answer_has(struct noded *nd, const uint8_t *id,
		      struct blobcr_enc *reply)
{
	int r = store_has(nd->st, id);

	if (r < 0)
		return r;
	blobcr_enc_u8(reply, (uint8_t)r);
	return 0;
}

/* VERIFY: read the chunk back and check it whole; 0, -ENOENT, -EUCLEAN. */
static int answer_verify(struct noded *nd, const uint8_t *id,
			 struct blobcr_enc *reply)
{
	int r = store_verify(nd->st, id);

	if (r == -EUCLEAN)
		report_bad(nd, id);
	if (r && r != -ENOENT && r != -EUCLEAN)
		return r;
	blobcr_enc_u32(reply, (uint32_t)r);
	return 0;
}

static int do_delete(struct store *st, struct blobcr_dec *req,
		     struct blobcr_enc *reply)
{
	const uint8_t *ids;
	uint32_t n;
	int r, err = decode_ids(req, &ids, &n);

	if (err)
		return err;
	r = store_delete(st, ids, n); /* one index transaction */
	if (r < 0)
		return r;
	blobcr_enc_u32(reply, (uint32_t)r);
	return reply->err;
}

/* INVENTORY: the ids held, in id order, a page at a time. */
static int do_inventory(struct noded *nd, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	uint8_t has_after = blobcr_dec_u8(req);
	const uint8_t *after = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t max = blobcr_dec_u32(req);
	size_t count_off;
	uint8_t *ids;
	bool more;
	int n, err = blobcr_dec_end(req);

	if (err)
		return err;
	if (max > INVENTORY_MAX)
		max = INVENTORY_MAX;
	count_off = reply->len;
	blobcr_enc_u32(reply, 0);
	ids = blobcr_enc_reserve(reply, (size_t)max * BLOBCR_ID_SIZE);
	if (!ids)
		return reply->err;
	n = store_list(nd->st, has_after ? after : NULL,
		       (uint8_t (*)[BLOBCR_ID_SIZE])ids, (int)max, &more);
	if (n < 0)
		return n;
	reply->len = count_off + 4 + (size_t)n * BLOBCR_ID_SIZE;
	blobcr_enc_u8(reply, more);
	ids = reply->buf + count_off;
	ids[0] = (uint8_t)((uint32_t)n >> 24);
	ids[1] = (uint8_t)((uint32_t)n >> 16);
	ids[2] = (uint8_t)((uint32_t)n >> 8);
	ids[3] = (uint8_t)n;
	return reply->err;
}

/*
 * ROOT_PUT: a manifest chunk, into the manifest store, root of its name
 * (or, with no name, a part a root names).
 */
static int do_root_put(struct noded *nd, struct blobcr_dec *req)
{
	char name[BLOBCR_ROOT_MAX];
	int err = blobcr_dec_str(req, name, sizeof(name));
	uint64_t seq = blobcr_dec_u64(req);
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t len = blobcr_dec_u32(req);
	const uint8_t *data = blobcr_dec_bytes(req, len);

	if (!err)
		err = blobcr_dec_end(req);
	return err ? err : store_put_root(nd->mst, name, seq, id, data, len);
}

/* ROOT_LIST: the roots in name order, a page at a time. */
static int do_root_list(struct noded *nd, struct blobcr_dec *req,
			struct blobcr_enc *reply)
{
	char after[BLOBCR_ROOT_MAX];
	uint8_t has_after = blobcr_dec_u8(req);
	int err = blobcr_dec_str(req, after, sizeof(after));
	uint32_t max = blobcr_dec_u32(req);
	struct store_root *r;
	bool more;
	int n;

	if (!err)
		err = blobcr_dec_end(req);
	if (err)
		return err;
	if (max > ROOTS_MAX)
		max = ROOTS_MAX;
	r = malloc((max ? max : 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	n = store_list_roots(nd->mst, has_after ? after : NULL, r, (int)max,
			     &more);
	if (n >= 0) {
		blobcr_enc_u32(reply, (uint32_t)n);
		for (int i = 0; i < n; i++) {
			blobcr_enc_str(reply, r[i].name);
			blobcr_enc_u64(reply, r[i].seq);
			blobcr_enc_bytes(reply, r[i].id, BLOBCR_ID_SIZE);
		}
		blobcr_enc_u8(reply, more);
	}
	free(r);
	return n < 0 ? n : reply->err;
}

static int do_stat(struct noded *nd, struct blobcr_dec *req,
		   struct blobcr_enc *reply)
{
	struct store_stat s, ms;
	int err = blobcr_dec_end(req);

	if (!err)
		err = store_stat(nd->st, &s);
	if (!err)
		err = store_stat(nd->mst, &ms);
	if (err)
		return err;
	blobcr_enc_u64(reply, s.chunks);
	blobcr_enc_u64(reply, s.live_bytes);
	blobcr_enc_u64(reply, s.used_bytes);
	blobcr_enc_u64(reply, s.capacity);
	blobcr_enc_u64(reply, s.segments);
	blobcr_enc_u64(reply, s.corrupt);
	blobcr_enc_u64(reply, __atomic_load_n(&nd->srv.requests, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->srv.malformed, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->scrubbed, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->scrub_passes, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, ms.roots);
	blobcr_enc_u64(reply, ms.used_bytes);
	blobcr_enc_u64(reply, __atomic_load_n(&nd->put_bytes, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->put_fwd_bytes, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->forwarded_bytes,
					      __ATOMIC_RELAXED));
	return reply->err;
}

static int do_compact(struct noded *nd, struct blobcr_dec *req,
		      struct blobcr_enc *reply)
{
	int64_t r;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	/* Asked for: every dead byte goes, the open segment's too. */
	r = store_compact(nd->st, true);
	if (r >= 0) {
		int64_t mr = store_compact(nd->mst, true);

		r = mr < 0 ? mr : r + mr;
	}
	if (r < 0)
		return (int)r;
	blobcr_enc_u64(reply, (uint64_t)r);
	return reply->err;
}

/*
 * Who may send what: hosts read and write chunks (and so do metad and
 * operators, for repairs, and nodes, for copies); only metad deletes
 * (gc), operators and metad compact, verify and list the chunks.  A DELETE
 * carries at most one gc batch of ids; deletes, compactions and inventories
 * have workers of their own, and so does PUT_FWD, which waits for PUTs on
 * other nodes: the workers that serve those never wait on a node.
 */
#define ROLES_CHUNKS (BLOBCR_ROLE_HOST | BLOBCR_ROLE_ADMIN | \
		      BLOBCR_ROLE_METAD | BLOBCR_ROLE_NODE)
static const struct blobcr_op_rule rules[] = {
	{ BLOBCR_OP_PING, false, BLOBCR_ROLE_ANY, 0 },
	{ BLOBCR_OP_PUT, false, ROLES_CHUNKS, 0 },
	{ BLOBCR_OP_PUT_FWD, true, ROLES_CHUNKS, 0 },
	{ BLOBCR_OP_GET, false, ROLES_CHUNKS, BLOBCR_ID_SIZE },
	{ BLOBCR_OP_GETV, false, ROLES_CHUNKS, 4 + BLOBCR_GETV_MAX * BLOBCR_ID_SIZE },
	{ BLOBCR_OP_HAS, false, ROLES_CHUNKS, 4 + BLOBCR_DELETE_MAX * BLOBCR_ID_SIZE },
	{ BLOBCR_OP_DELETE, true, BLOBCR_ROLE_METAD,
	  4 + BLOBCR_DELETE_MAX * BLOBCR_ID_SIZE },
	{ BLOBCR_OP_STAT, false, BLOBCR_ROLE_ANY, 0 },
	{ BLOBCR_OP_COMPACT, true, BLOBCR_ROLE_ADMIN | BLOBCR_ROLE_METAD, 0 },
	{ BLOBCR_OP_VERIFY, false, BLOBCR_ROLE_ADMIN | BLOBCR_ROLE_METAD,
	  4 + BLOBCR_DELETE_MAX * BLOBCR_ID_SIZE },
	{ BLOBCR_OP_INVENTORY, true, BLOBCR_ROLE_ADMIN | BLOBCR_ROLE_METAD,
	  1 + BLOBCR_ID_SIZE + 4 },
	/* metad's manifests: written, listed, read back and dropped by it */
	{ BLOBCR_OP_ROOT_PUT, true, BLOBCR_ROLE_METAD, 0 },
	{ BLOBCR_OP_ROOT_LIST, true, BLOBCR_ROLE_METAD,
	  1 + 2 + BLOBCR_ROOT_MAX + 4 },
	{ BLOBCR_OP_MANIFEST_GET, false, BLOBCR_ROLE_METAD, BLOBCR_ID_SIZE },
	{ BLOBCR_OP_MANIFEST_DELETE, true, BLOBCR_ROLE_METAD,
	  4 + BLOBCR_DELETE_MAX * BLOBCR_ID_SIZE },
};

static int handle(void *ctx, const struct blobcr_hdr *h, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct noded *nd = ctx;

	switch (h->opcode) {
	case BLOBCR_OP_PING:
		return blobcr_dec_end(req);
	case BLOBCR_OP_PUT:
		return do_put(nd, req);
	case BLOBCR_OP_PUT_FWD:
		return do_put_fwd(nd, req, reply);
	case BLOBCR_OP_GET:
		return do_get(nd, nd->st, req, reply);
	case BLOBCR_OP_GETV:
		return do_getv(nd, req, reply);
	case BLOBCR_OP_HAS:
		return answer_ids(nd, req, reply, answer_has);
	case BLOBCR_OP_DELETE:
		return do_delete(nd->st, req, reply);
	case BLOBCR_OP_STAT:
		return do_stat(nd, req, reply);
	case BLOBCR_OP_COMPACT:
		return do_compact(nd, req, reply);
	case BLOBCR_OP_VERIFY:
		return answer_ids(nd, req, reply, answer_verify);
	case BLOBCR_OP_INVENTORY:
		return do_inventory(nd, req, reply);
	case BLOBCR_OP_ROOT_PUT:
		return do_root_put(nd, req);
	case BLOBCR_OP_ROOT_LIST:
		return do_root_list(nd, req, reply);
	case BLOBCR_OP_MANIFEST_GET:
		return do_get(nd, nd->mst, req, reply);
	case BLOBCR_OP_MANIFEST_DELETE:
		return do_delete(nd->mst, req, reply);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- heartbeats to the version manager ---- */

static int heartbeat_once(struct noded *nd, struct blobcr_peer *meta,
			  uint32_t *id)
{
	uint8_t uuid[BLOBCR_UUID_SIZE];
	struct store_stat s;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = store_stat(nd->st, &s);

	if (err)
		return err;
	err = blobcr_enc_init(&e, 512);
	if (err)
		return err;
	blobcr_enc_str(&e, nd->advertise);
	store_uuid(nd->st, uuid);
	blobcr_enc_bytes(&e, uuid, BLOBCR_UUID_SIZE);
	blobcr_enc_str(&e, nd->domain);
	blobcr_enc_u64(&e, nd->incarnation);
	blobcr_enc_u64(&e, s.capacity);
	blobcr_enc_u64(&e, s.used_bytes);
	blobcr_enc_u64(&e, s.chunks);
	err = blobcr_peer_call(meta, BLOBCR_OP_NODE_HEARTBEAT, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		*id = blobcr_dec_u32(&d);
		err = blobcr_dec_end(&d);
	}
	if (msg)
		nn_freemsg(msg);
	return err;
}

/* Tell metad which chunks this node found bad: it drops those locations. */
static int send_bad(struct noded *nd, struct blobcr_peer *meta, uint32_t id)
{
	uint8_t uuid[BLOBCR_UUID_SIZE];
	struct blobcr_enc e;
	struct blobcr_dec d;
	size_t n;
	void *msg;
	int err;

	pthread_mutex_lock(&nd->bad.mu);
	n = nd->bad.n;
	err = n ? blobcr_enc_init(&e, 64 + n * BLOBCR_ID_SIZE) : 0;
	if (n && !err) {
		store_uuid(nd->st, uuid);
		blobcr_enc_u32(&e, id);
		blobcr_enc_bytes(&e, uuid, BLOBCR_UUID_SIZE);
		blobcr_enc_u32(&e, (uint32_t)n);
		blobcr_enc_bytes(&e, nd->bad.ids, n * BLOBCR_ID_SIZE);
	}
	pthread_mutex_unlock(&nd->bad.mu);
	if (!n || err)
		return err;
	err = blobcr_peer_call(meta, BLOBCR_OP_NODE_BAD_CHUNKS, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (msg)
		nn_freemsg(msg);
	if (err)
		return err;
	log_info("reported %zu bad chunks to metad", n);
	/* Only what was sent leaves the queue: more may have come meanwhile. */
	pthread_mutex_lock(&nd->bad.mu);
	memmove(nd->bad.ids, nd->bad.ids + n, (nd->bad.n - n) * BLOBCR_ID_SIZE);
	nd->bad.n -= n;
	pthread_mutex_unlock(&nd->bad.mu);
	return 0;
}

static void *heartbeat_thread(void *p)
{
	struct noded *nd = p;
	struct blobcr_peer meta;
	int last_err = 1;
	uint32_t id = 0;
	int err = blobcr_peer_open(&meta, nd->meta, nd->key, BLOBCR_ROLE_METAD,
				   nd->heartbeat_ms * 2 + 500);

	if (err) {
		log_err("cannot reach metad at %s: %s", nd->meta, strerror(-err));
		return NULL;
	}
	while (!blobcr_stopping(&nd->stop)) {
		err = heartbeat_once(nd, &meta, &id);
		if (err != last_err) {
			if (err == -ENODEV)
				log_err("metad at %s says this node was removed from "
					"the repository: stop it, or wipe %s to join "
					"as a new node", nd->meta, nd->data);
			else if (err && blobcr_auth_error(err))
				log_warn("heartbeat to %s refused: %s", nd->meta,
					 blobcr_auth_detail());
			else if (err)
				log_warn("heartbeat to %s failed: %s", nd->meta,
					 strerror(-err));
			else
				log_info("registered with %s as node %" PRIu32
					 " in failure domain %s", nd->meta, id,
					 nd->domain);
		}
		if (!err)
			fwd_set_self(nd->fwd, id);
		last_err = err;
		if (!err && (err = send_bad(nd, &meta, id)))
			log_warn("report of bad chunks to %s failed: %s",
				 nd->meta, strerror(-err));
		/* Sleep in small steps so that SIGTERM is seen promptly. */
		for (int t = 0; t < nd->heartbeat_ms && !blobcr_stopping(&nd->stop); t += 50)
			usleep(50 * 1000);
	}
	blobcr_peer_close(&meta);
	return NULL;
}

/* Reclaim the space of deleted chunks now and then. */
static void *compact_thread(void *p)
{
	struct noded *nd = p;
	uint64_t next = blobcr_now_ms() + (uint64_t)nd->compact_s * 1000;

	while (!blobcr_stopping(&nd->stop)) {
		int64_t r;

		usleep(100 * 1000);
		if (blobcr_now_ms() < next)
			continue;
		r = store_compact(nd->st, false);
		if (r >= 0)
			r = store_compact(nd->mst, false);
		if (r < 0)
			log_warn("compaction failed: %s", strerror((int)-r));
		next = blobcr_now_ms() + (uint64_t)nd->compact_s * 1000;
	}
	return NULL;
}

/* Sleep until @ms (blobcr_now_ms()) in small steps; Return: false if stopping. */
static bool sleep_until(struct noded *nd, uint64_t ms)
{
	while (!blobcr_stopping(&nd->stop) && blobcr_now_ms() < ms)
		usleep(50 * 1000);
	return !blobcr_stopping(&nd->stop);
}

/*
 * Test hook: stop the scrubber after its @n-th chunk (a bad one dropped
 * from the index but not reported yet if @bad) until the node is killed.
 */
static void scrub_hold(struct noded *nd, uint64_t n, bool bad)
{
	log_info("scrub: paused after %" PRIu64 " chunks%s", n,
		 bad ? ", a bad one dropped, not reported" : "");
	while (!blobcr_stopping(&nd->stop))
		usleep(100 * 1000);
}

/*
 * Read every chunk back, page after page and pass after pass, at most
 * scrub_bps bytes a second, so that rot is found before a read needs the
 * chunk.  A bad chunk is dropped by the store and reported to metad, which
 * then re-replicates it from a good copy.
 */
static void *scrub_thread(void *p)
{
	struct noded *nd = p;
	uint8_t (*ids)[BLOBCR_ID_SIZE] = malloc(SCRUB_PAGE * BLOBCR_ID_SIZE);
	uint8_t after[BLOBCR_ID_SIZE];
	bool has_after = false, more;
	uint64_t next = blobcr_now_ms(), bad = 0, verified = 0;

	while (ids && !blobcr_stopping(&nd->stop)) {
		int n = store_list(nd->st, has_after ? after : NULL, ids,
				   SCRUB_PAGE, &more);

		for (int i = 0; i < n && sleep_until(nd, next); i++) {
			int64_t len = store_get_len(nd->st, ids[i]);
			int r = len < 0 ? 0 : store_verify(nd->st, ids[i]);

			if (++verified == nd->scrub_pause)
				scrub_hold(nd, verified, r == -EUCLEAN);
			if (r == -EUCLEAN) {
				report_bad(nd, ids[i]);
				bad++;
			}
			__atomic_fetch_add(&nd->scrubbed, 1, __ATOMIC_RELAXED);
			next += (uint64_t)(len > 0 ? len : 0) * 1000 / nd->scrub_bps;
			if (next < blobcr_now_ms())
				next = blobcr_now_ms(); /* no burst after a pause */
		}
		if (n > 0) {
			memcpy(after, ids[n - 1], BLOBCR_ID_SIZE);
			has_after = true;
		}
		if (n >= 0 && more)
			continue;
		/* A pass is over (or listing failed): start again from the first. */
		if (n >= 0)
			__atomic_fetch_add(&nd->scrub_passes, 1, __ATOMIC_RELAXED);
		if (bad)
			log_warn("scrub pass: %" PRIu64 " bad chunks found and reported",
				 bad);
		bad = 0;
		has_after = false;
		if (!sleep_until(nd, blobcr_now_ms() + 1000))
			break;
	}
	free(ids);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blobcr-noded --listen ADDR --data DIR [options]\n"
		"A storage node of the dm-blobcr repository.\n\n"
		"  -l, --listen ADDR        nanomsg address to serve (tcp://IP:PORT)\n"
		"  -d, --data DIR           directory of segment files and index\n"
		"  -k, --key FILE           this node's private key, role node\n"
		"                           (default $BLOBCR_KEY); keys.pub beside it\n"
		"                           lists who may talk to the node\n"
		"  -e, --encrypt            encrypt every session's payloads\n"
		"  -m, --meta ADDR          blobcr-metad to heartbeat to\n"
		"  -a, --advertise ADDR     address given to clients (default: --listen)\n"
		"  -c, --capacity BYTES     refuse PUTs past this many bytes (K/M/G)\n"
		"  -s, --segment-size BYTES segment file size (default 64M)\n"
		"      --map-mb N           the index's map to begin with (default 4096);\n"
		"                           it doubles whenever more than half used\n"
		"  -t, --threads N          worker threads (default 4)\n"
		"  -H, --heartbeat-ms N     heartbeat period (default 1000)\n"
		"  -C, --compact-s N        compact segments every N s, 0: never\n"
		"                           (default 60)\n"
		"  -D, --domain NAME        failure domain: replicas of a chunk go to\n"
		"                           distinct domains (default: the host name)\n"
		"  -S, --scrub-mb-s N       re-read and verify every chunk at N MiB/s in\n"
		"                           the background, 0: never (default 4)\n"
		"      --config FILE        settings, one OPTION = VALUE a line\n"
		"                           (blobcr.conf(5); default\n"
		"                           %s/noded.conf): options given here\n"
		"                           override them\n"
		"      --test-scrub-pause N test hook: the scrubber stops after its\n"
		"                           N-th chunk (before reporting it, if bad)\n"
		"                           until the node is killed\n"
		"  -v, --verbose            debug logging\n"
		"  -h, --help               this help\n", blobcr_config_dir);
}

/* The host is the failure domain unless told otherwise. */
static int default_domain(struct noded *nd)
{
	char host[HOST_NAME_MAX + 1] = "";

	if (gethostname(host, sizeof(host)) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	if (!blobcr_valid_name(host, sizeof(nd->domain))) {
		fprintf(stderr, "blobcr-noded: the host name '%s' cannot name a "
			"failure domain: give --domain\n", host);
		return -EINVAL;
	}
	snprintf(nd->domain, sizeof(nd->domain), "%s", host);
	return 0;
}

struct noded_args {
	const char *listen, *data, *key;
	bool encrypt;
	struct store_opts so;
	int threads;
	int verbose;
};

static int parse_args(int argc, char **argv, struct noded *nd,
		      struct noded_args *a)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		{ "encrypt", no_argument, NULL, 'e' },
		{ "advertise", required_argument, NULL, 'a' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "segment-size", required_argument, NULL, 's' },
		{ "map-mb", required_argument, NULL, 'M' },
		{ "threads", required_argument, NULL, 't' },
		{ "heartbeat-ms", required_argument, NULL, 'H' },
		{ "compact-s", required_argument, NULL, 'C' },
		{ "domain", required_argument, NULL, 'D' },
		{ "scrub-mb-s", required_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'F' },
		{ "test-scrub-pause", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct blobcr_conf_env env[] = {
		{ "key", "BLOBCR_KEY" }, { NULL, NULL },
	};
	uint64_t v;
	int c;

	if (blobcr_conf_args("noded", opts, env, &argc, &argv))
		return -EINVAL;
	while ((c = getopt_long(argc, argv, "l:d:m:k:ea:c:s:t:H:C:D:S:vh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'F': break; /* read by blobcr_conf_args() */
		case 'l': a->listen = optarg; break;
		case 'k': a->key = optarg; break;
		case 'e': a->encrypt = true; break;
		case 'd': a->data = optarg; break;
		case 'm': nd->meta = optarg; break;
		case 'a': nd->advertise = optarg; break;
		case 'v': a->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'D':
			if (!blobcr_valid_name(optarg, sizeof(nd->domain))) {
				char why[64];

				snprintf(why, sizeof(why), "1 to %zu of A-Z a-z 0-9 . _ - : +",
					 sizeof(nd->domain) - 1);
				blobcr_conf_bad(opts, c, why);
				return -EINVAL;
			}
			snprintf(nd->domain, sizeof(nd->domain), "%s", optarg);
			break;
		case 'P':
			if (blobcr_parse_u64(optarg, &v) || !v)
				goto bad;
			nd->scrub_pause = v;
			break;
		case 'S':
			if (blobcr_parse_u64(optarg, &v) || v > 1000000)
				goto bad;
			nd->scrub_bps = v << 20;
			break;
		case 'C':
			if (blobcr_parse_u64(optarg, &v) || v > 86400)
				goto bad;
			nd->compact_s = (int)v;
			break;
		case 'M':
			if (blobcr_parse_u64(optarg, &v) || !v || v > (1u << 26))
				goto bad;
			a->so.map_bytes = (size_t)v << 20;
			break;
		case 'c':
		case 's':
		case 't':
		case 'H':
			if (blobcr_parse_u64(optarg, &v) ||
			    (c != 'c' && c != 's' && (v == 0 || v > 1000000)))
				goto bad;
			if (c == 'c')
				a->so.capacity = v;
			else if (c == 's')
				a->so.segment_size = v;
			else if (c == 't')
				a->threads = (int)v;
			else
				nd->heartbeat_ms = (int)v;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!a->listen || !a->data || optind != argc) {
		fprintf(stderr, "blobcr-noded: --listen and --data are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return nd->domain[0] ? 0 : default_domain(nd);
bad:
	blobcr_conf_bad(opts, c, NULL);
	return -EINVAL;
}

/* What a node serves: its handler and role table (fuzz_noded.c too). */
static void server_setup(struct noded *nd)
{
	nd->srv.handler = handle;
	nd->srv.ctx = nd;
	nd->srv.rules = rules;
	nd->srv.nrules = sizeof(rules) / sizeof(rules[0]);
	nd->srv.stop = &nd->stop;
}

/* The background threads, started in this order and joined in reverse. */
struct helper_thread {
	const char *what;
	void *(*fn)(void *);
	bool wanted;
	bool started;
	pthread_t tid;
};

int main(int argc, char **argv)
{
	struct noded nd = { .heartbeat_ms = 1000, .compact_s = 60,
			    .scrub_bps = 4u << 20 };
	struct noded_args a = { .threads = 4 };
	struct helper_thread th[] = {
		{ .what = "heartbeat", .fn = heartbeat_thread },
		{ .what = "compaction", .fn = compact_thread },
		{ .what = "scrubber", .fn = scrub_thread },
	};
	size_t nth = sizeof(th) / sizeof(th[0]);
	char mdir[4096];
	int err = 0;

	if (parse_args(argc, argv, &nd, &a))
		return 2;
	blobcr_log_init("blobcr-noded", a.verbose ? BLOBCR_LOG_DEBUG : BLOBCR_LOG_INFO);
	if (!nd.advertise)
		nd.advertise = a.listen;
	nd.data = a.data;
	nd.incarnation = (uint64_t)blobcr_wall_s() << 32 | (uint32_t)getpid();
	if (nd.meta && !blobcr_addr_valid(nd.advertise)) {
		fprintf(stderr, "blobcr-noded: %s cannot be given to clients: "
			"--advertise tcp://HOST:PORT\n", nd.advertise);
		return 2;
	}
	blobcr_heap_for_big_buffers();
	a.so.dir = a.data;
	nd.bad.ids = calloc(BAD_QUEUE_MAX, BLOBCR_ID_SIZE);
	if (!nd.bad.ids || pthread_mutex_init(&nd.bad.mu, NULL) ||
	    blobcr_signals_init(&nd.stop))
		return 1;
	err = blobcr_key_load(a.key, &nd.key);
	if (!err && blobcr_key_role(nd.key) != BLOBCR_ROLE_NODE) {
		blobcr_auth_set_detail("key '%s' has role %s, a node needs role node",
				       blobcr_key_name(nd.key),
				       blobcr_role_name(blobcr_key_role(nd.key)));
		err = -EKEYREJECTED;
	}
	if (!err)
		err = blobcr_authsrv_new(nd.key, a.encrypt ? BLOBCR_SESS_ENCRYPT : 0,
					 &nd.srv.auth);
	if (!err)
		err = fwd_new(nd.meta, a.key, nd.key, nd.domain, a.encrypt, &nd.fwd);
	if (err) {
		log_err("cannot start: %s", blobcr_auth_detail()[0] ?
			blobcr_auth_detail() : strerror(-err));
		blobcr_authsrv_free(nd.srv.auth);
		blobcr_key_free(nd.key);
		return 1;
	}
	err = store_open(&a.so, &nd.st);
	if (!err) {
		struct store_opts mo = { .dir = mdir, .segment_size = 16u << 20,
					 .map_bytes = a.so.map_bytes };

		snprintf(mdir, sizeof(mdir), "%s/manifests", a.data);
		err = store_open(&mo, &nd.mst);
		if (err)
			store_close(nd.st);
	}
	if (err) {
		log_err("cannot open store in %s: %s", a.data, strerror(-err));
		fwd_free(nd.fwd);
		blobcr_authsrv_free(nd.srv.auth);
		blobcr_key_free(nd.key);
		return 1;
	}
	th[0].wanted = nd.meta != NULL;
	th[1].wanted = nd.compact_s > 0;
	th[2].wanted = nd.scrub_bps > 0;
	for (size_t i = 0; i < nth && !err; i++) {
		if (!th[i].wanted)
			continue;
		err = -pthread_create(&th[i].tid, NULL, th[i].fn, &nd);
		th[i].started = !err;
		if (err)
			log_err("cannot start the %s thread", th[i].what);
	}
	if (!err) {
		nd.srv.addr = a.listen;
		nd.srv.threads = a.threads;
		/* a PUT_FWD for each worker, and one for the others */
		nd.srv.heavy_threads = 1 + a.threads;
		server_setup(&nd);
		nd.srv.ready = blobcr_notify_serving;
		log_info("serving %s from %s, failure domain %s, as key %s%s",
			 a.listen, a.data, nd.domain, blobcr_key_name(nd.key),
			 a.encrypt ? ", encrypted" : "");
		err = blobcr_server_run(&nd.srv);
		if (err)
			log_err("cannot serve %s: %s", a.listen, strerror(-err));
		else
			blobcr_notify_stopping();
	}
	__atomic_store_n(&nd.stop, 1, __ATOMIC_RELAXED);
	for (size_t i = nth; i-- > 0;)
		if (th[i].started)
			pthread_join(th[i].tid, NULL);
	store_close(nd.mst);
	store_close(nd.st);
	fwd_free(nd.fwd);
	free(nd.bad.ids);
	blobcr_authsrv_free(nd.srv.auth);
	blobcr_key_free(nd.key);
	log_info("stopped");
	return err ? 1 : 0;
}
