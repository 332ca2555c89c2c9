// SPDX-License-Identifier: GPL-2.0
/*
 * store.c - segment files plus an LMDB index; see store.h for the contract.
 *
 * Lock order: seg_rw (segment files may not vanish) before mu (active
 * segment, sizes, fd cache).  LMDB's own writer lock comes last.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lmdb.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "store.h"

#define REC_MAGIC 0x42435253u /* "BCRS" */
#define REC_HDR 48
#define IDX_VAL 20

struct seg_fd {
	uint32_t seg;
	int fd;
};

struct store {
	char dir[4096];
	MDB_env *env;
	/* Read-held by every index transaction, write-held to grow the map. */
	pthread_rwlock_t txn_rw;
	MDB_dbi idx; /* chunk id -> seg, off, len, crc */
	MDB_dbi segs; /* seg id -> live bytes */
	MDB_dbi meta; /* "uuid" -> the store's identity */
	MDB_dbi roots; /* root name -> seq u64, chunk id */
	MDB_dbi root_ids; /* chunk id -> root name */
	uint8_t uuid[BLOBCR_UUID_SIZE];
	uint64_t capacity;
	uint64_t segment_size;
	size_t map_bytes; /* the index's map to begin with */

	pthread_rwlock_t seg_rw; /* write-held only to unlink a segment */
	pthread_mutex_t mu;
	uint32_t active; /* under mu: segment new records go to */
	uint64_t active_size; /* under mu */
	uint64_t used; /* under mu: bytes of all segment files */
	uint32_t next_seg; /* under mu */
	struct seg_fd *fds; /* under mu */
	size_t nfds; /* under mu */
	pthread_mutex_t compact_mu; /* one compaction at a time */
	/* group commit: puts wait here for one sync + one index commit */
	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cv;
	struct pending *queue; /* under gc_mu: written, not yet durable */
	bool leader; /* under gc_mu: a put is syncing for the others */
	uint64_t corrupt; /* atomic */
};

struct loc {
	uint32_t seg;
	uint64_t off;
	uint32_t len;
	uint32_t crc;
};

/* A put whose record is written and waits to become durable. */
struct pending {
	const uint8_t *id;
	struct loc l;
	int fd;
	int result;
	bool done;
	struct pending *next;
};

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, v >> 32);
	be32_put(p + 4, (uint32_t)v);
}

static uint64_t be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static void loc_encode(const struct loc *l, uint8_t v[IDX_VAL])
{
	be32_put(v, l->seg);
	be64_put(v + 4, l->off);
	be32_put(v + 12, l->len);
	be32_put(v + 16, l->crc);
}

static int loc_decode(const MDB_val *v, struct loc *l)
{
	const uint8_t *p = v->mv_data;

	if (v->mv_size != IDX_VAL)
		return -EUCLEAN;
	l->seg = be32_get(p);
	l->off = be64_get(p + 4);
	l->len = be32_get(p + 12);
	l->crc = be32_get(p + 16);
	return 0;
}

/* A write found a map full: the next write transaction grows it. */
static bool map_full_seen;

static int mdb_to_errno(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL) {
		__atomic_store_n(&map_full_seen, true, __ATOMIC_RELAXED);
		return -ENOSPC;
	}
	return rc > 0 ? -rc : -EIO;
}

/*
 * Double the index's map if it is more than half used, or a map was found
 * full, and no transaction is open (else a later write does it).
 */
static void idx_room(struct store *st)
{
	MDB_envinfo ei;
	MDB_stat ms;
	size_t used;

	if (mdb_env_info(st->env, &ei) || mdb_env_stat(st->env, &ms))
		return;
	used = (ei.me_last_pgno + 1) * (size_t)ms.ms_psize;
	if (used * 2 <= ei.me_mapsize &&
	    !__atomic_load_n(&map_full_seen, __ATOMIC_RELAXED))
		return;
	if (pthread_rwlock_trywrlock(&st->txn_rw))
		return;
	if (!mdb_env_set_mapsize(st->env, ei.me_mapsize * 2)) {
		__atomic_store_n(&map_full_seen, false, __ATOMIC_RELAXED);
		log_info("index map of %s grown to %zu MiB (%zu MiB used)",
			 st->dir, ei.me_mapsize * 2 >> 20, used >> 20);
	}
	pthread_rwlock_unlock(&st->txn_rw);
}

/* Every index transaction: idx_begin(), then idx_commit() or idx_abort(). */
static int idx_begin(struct store *st, unsigned int flags, MDB_txn **txn)
{
	int rc;

	if (!(flags & MDB_RDONLY))
		idx_room(st);
	pthread_rwlock_rdlock(&st->txn_rw);
	rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc)
		pthread_rwlock_unlock(&st->txn_rw);
	return rc;
}

static int idx_commit(struct store *st, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	if (rc == MDB_MAP_FULL)
		__atomic_store_n(&map_full_seen, true, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&st->txn_rw);
	return rc;
}

static void idx_abort(struct store *st, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->txn_rw);
}

static uint32_t rec_hdr_crc(const uint8_t *h)
{
	return blobcr_crc32c(blobcr_crc32c(0, h, 12), h + 16, REC_HDR - 16);
}

static void rec_hdr_build(uint8_t h[REC_HDR], const uint8_t *id, uint32_t len,
			  uint32_t crc)
{
	be32_put(h, REC_MAGIC);
	be32_put(h + 4, len);
	be32_put(h + 8, crc);
	memcpy(h + 16, id, BLOBCR_ID_SIZE);
	be32_put(h + 12, rec_hdr_crc(h));
}

static void seg_path(const struct store *st, uint32_t seg, char *out, size_t n)
{
	snprintf(out, n, "%s/seg-%08" PRIu32 ".dat", st->dir, seg);
}

/*
 * Create segment file @path.  Its name is synced into the store directory
 * before any record in it can be acknowledged: a record whose data and
 * index entry are durable must not lose its file to a crash.
 * Return: the fd, or -errno.
 */
static int seg_create(const struct store *st, const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int err;

	if (fd < 0)
		return -errno;
	err = blobcr_sync_dir(st->dir);
	if (err) {
		close(fd);
		unlink(path);
		return err;
	}
	return fd;
}

/* Return an open fd for @seg, opening it once.  Caller holds mu. */
static int seg_fd_locked(struct store *st, uint32_t seg)
{
	char path[4200];
	struct seg_fd *n;
	int fd;

	for (size_t i = 0; i < st->nfds; i++)
		if (st->fds[i].seg == seg)
			return st->fds[i].fd;
	seg_path(st, seg, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = seg_create(st, path);
	else if (fd < 0)
		fd = -errno;
	if (fd < 0)
		return fd;
	n = realloc(st->fds, (st->nfds + 1) * sizeof(*n));
	if (!n) {
		close(fd);
		return -ENOMEM;
	}
	st->fds = n;
	st->fds[st->nfds].seg = seg;
	st->fds[st->nfds].fd = fd;
	st->nfds++;
	return fd;
}

static int seg_fd(struct store *st, uint32_t seg)
{
	int fd;

	pthread_mutex_lock(&st->mu);
	fd = seg_fd_locked(st, seg);
	pthread_mutex_unlock(&st->mu);
	return fd;
}

static void seg_fd_forget_locked(struct store *st, uint32_t seg)
{
	for (size_t i = 0; i < st->nfds; i++) {
		if (st->fds[i].seg == seg) {
			close(st->fds[i].fd);
			st->fds[i] = st->fds[--st->nfds];
			return;
		}
	}
}

/* Add @delta (may be negative) to the live bytes of @seg, in @txn. */
static int seg_live_add(MDB_txn *txn, MDB_dbi dbi, uint32_t seg, int64_t delta)
{
	uint8_t k[4], v[8];
	MDB_val key = { 4, k }, val;
	uint64_t live = 0;
	int rc;

	be32_put(k, seg);
	rc = mdb_get(txn, dbi, &key, &val);
	if (rc == 0 && val.mv_size == 8)
		live = be64_get(val.mv_data);
	else if (rc && rc != MDB_NOTFOUND)
		return mdb_to_errno(rc);
	live = (int64_t)live + delta < 0 ? 0 : (uint64_t)((int64_t)live + delta);
	be64_put(v, live);
	val.mv_size = 8;
	val.mv_data = v;
	rc = mdb_put(txn, dbi, &key, &val, 0);
	return rc ? mdb_to_errno(rc) : 0;
}

/* A read transaction and a cursor on the index; nothing open on failure. */
static int index_cursor(struct store *st, MDB_txn **txn, MDB_cursor **cur)
{
	int rc = idx_begin(st, MDB_RDONLY, txn);

	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_cursor_open(*txn, st->idx, cur);
	if (rc)
		idx_abort(st, *txn);
	return mdb_to_errno(rc);
}

static int index_lookup(struct store *st, const uint8_t *id, struct loc *l)
{
	MDB_val key = { BLOBCR_ID_SIZE, (void *)id }, val;
	MDB_txn *txn;
	int rc, err;

	rc = idx_begin(st, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_get(txn, st->idx, &key, &val);
	err = rc ? mdb_to_errno(rc) : loc_decode(&val, l);
	idx_abort(st, txn);
	return err;
}

static int root_forget(struct store *st, MDB_txn *txn, const uint8_t *id);

/* ---- open ---- */

/* Find the segment files, their total size and the next free number. */
static int scan_segments(struct store *st)
{
	DIR *d = opendir(st->dir);
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[4200];
		unsigned int seg;
		struct stat sb;
		char tail;

		if (sscanf(de->d_name, "seg-%8u.da%c", &seg, &tail) != 2 ||
		    tail != 't')
			continue;
		seg_path(st, seg, path, sizeof(path));
		if (stat(path, &sb) == 0)
			st->used += (uint64_t)sb.st_size;
		if (seg >= st->next_seg)
			st->next_seg = seg + 1;
	}
	closedir(d);
	return 0;
}

/* The store's identity, made once, in the transaction that opens it. */
static int load_uuid(struct store *st, MDB_txn *txn)
{
	MDB_val key = { 4, "uuid" }, val;
	int rc = mdb_get(txn, st->meta, &key, &val);

	if (rc == 0 && val.mv_size == BLOBCR_UUID_SIZE) {
		memcpy(st->uuid, val.mv_data, BLOBCR_UUID_SIZE);
		return 0;
	}
	if (rc && rc != MDB_NOTFOUND)
		return mdb_to_errno(rc);
	if (getrandom(st->uuid, BLOBCR_UUID_SIZE, 0) != BLOBCR_UUID_SIZE)
		return -EIO;
	val.mv_size = BLOBCR_UUID_SIZE;
	val.mv_data = st->uuid;
	return mdb_to_errno(mdb_put(txn, st->meta, &key, &val, 0));
}

static int open_env(struct store *st)
{
	char path[4200];
	MDB_txn *txn;
	int rc;

	snprintf(path, sizeof(path), "%s/index", st->dir);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	rc = mdb_env_create(&st->env);
	if (rc)
		return mdb_to_errno(rc);
	if ((rc = mdb_env_set_maxdbs(st->env, 8)) ||
	    (rc = mdb_env_set_mapsize(st->env, st->map_bytes)) ||
	    (rc = mdb_env_open(st->env, path, MDB_NOTLS, 0644)))
		return mdb_to_errno(rc);
	rc = idx_begin(st, 0, &txn);
	if (rc)
		return mdb_to_errno(rc);
	if ((rc = mdb_dbi_open(txn, "index", MDB_CREATE, &st->idx)) ||
	    (rc = mdb_dbi_open(txn, "segments", MDB_CREATE, &st->segs)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta)) ||
	    (rc = mdb_dbi_open(txn, "roots", MDB_CREATE, &st->roots)) ||
	    (rc = mdb_dbi_open(txn, "root_ids", MDB_CREATE, &st->root_ids))) {
		idx_abort(st, txn);
		return mdb_to_errno(rc);
	}
	rc = load_uuid(st, txn);
	if (rc) {
		idx_abort(st, txn);
		return rc;
	}
	rc = idx_commit(st, txn);
	return rc ? mdb_to_errno(rc) : 0;
}

int store_open(const struct store_opts *o, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));
	int err;

	if (!st)
		return -ENOMEM;
	snprintf(st->dir, sizeof(st->dir), "%s", o->dir);
	st->capacity = o->capacity;
	st->segment_size = o->segment_size ? o->segment_size : 64u << 20;
	st->map_bytes = o->map_bytes ? o->map_bytes : (size_t)4 << 30;
	st->next_seg = 1;
	pthread_rwlock_init(&st->txn_rw, NULL);
	pthread_rwlock_init(&st->seg_rw, NULL);
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->compact_mu, NULL);
	pthread_mutex_init(&st->gc_mu, NULL);
	pthread_cond_init(&st->gc_cv, NULL);
	if (mkdir(o->dir, 0755) && errno != EEXIST) {
		err = -errno;
		goto out_free;
	}
	err = open_env(st);
	if (err)
		goto out_close_env;
	err = scan_segments(st);
	if (err)
		goto out_close_env;
	/* Never append behind a tail a crash may have torn: start afresh. */
	st->active = st->next_seg++;
	*out = st;
	return 0;

out_close_env:
	if (st->env)
		mdb_env_close(st->env);
out_free:
	free(st);
	return err;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nfds; i++)
		close(st->fds[i].fd);
	free(st->fds);
	mdb_env_close(st->env);
	free(st);
}

/* ---- put ---- */

/* Reserve @n bytes at the end of the active segment. */
static int reserve(struct store *st, uint64_t n, uint32_t *seg, uint64_t *off,
		   int *fd)
{
	int err = 0;

	pthread_mutex_lock(&st->mu);
	if (st->capacity && st->used + n > st->capacity) {
		err = -ENOSPC;
		goto out;
	}
	if (st->active_size && st->active_size + n > st->segment_size) {
		st->active = st->next_seg++;
		st->active_size = 0;
	}
	*fd = seg_fd_locked(st, st->active);
	if (*fd < 0) {
		err = *fd;
		goto out;
	}
	*seg = st->active;
	*off = st->active_size;
	st->active_size += n;
	st->used += n;
out:
	pthread_mutex_unlock(&st->mu);
	return err;
}

/* Index every put of @batch in one transaction (LMDB syncs on commit). */
static int index_batch(struct store *st, struct pending *batch)
{
	MDB_txn *txn;
	int rc, err = 0;

	rc = idx_begin(st, 0, &txn);
	if (rc)
		return mdb_to_errno(rc);
	for (struct pending *p = batch; p && !err; p = p->next) {
		MDB_val key = { BLOBCR_ID_SIZE, (void *)p->id }, val;
		uint8_t v[IDX_VAL];

		if (p->result)
			continue;
		loc_encode(&p->l, v);
		val.mv_size = IDX_VAL;
		val.mv_data = v;
		rc = mdb_put(txn, st->idx, &key, &val, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST)
			continue; /* another put of the same chunk got there first */
		err = rc ? mdb_to_errno(rc) :
			   seg_live_add(txn, st->segs, p->l.seg,
					REC_HDR + p->l.len);
	}
	if (err) {
		idx_abort(st, txn);
		return err;
	}
	return mdb_to_errno(idx_commit(st, txn));
}

/* Make @batch durable: sync each segment written once, then index. */
static void commit_batch(struct store *st, struct pending *batch)
{
	int err = 0;

	for (struct pending *p = batch; p; p = p->next) {
		bool synced = false;

		for (struct pending *q = batch; q != p && !synced; q = q->next)
			synced = q->fd == p->fd;
		if (!synced && fdatasync(p->fd))
			err = -errno;
	}
	if (!err)
		err = index_batch(st, batch);
	for (struct pending *p = batch; p; p = p->next)
		if (!p->result)
			p->result = err;
}

/*
 * Wait until @me is durable.  The first waiter becomes the leader and
 * commits everything queued, again and again, while the others sleep: one
 * fdatasync and one index commit serve every put that arrived meanwhile.
 */
static int group_commit(struct store *st, struct pending *me)
{
	pthread_mutex_lock(&st->gc_mu);
	me->next = st->queue;
	st->queue = me;
	while (!me->done) {
		struct pending *batch;

		if (st->leader) {
			pthread_cond_wait(&st->gc_cv, &st->gc_mu);
			continue;
		}
		st->leader = true;
		while ((batch = st->queue)) {
			st->queue = NULL;
			pthread_mutex_unlock(&st->gc_mu);
			commit_batch(st, batch);
			pthread_mutex_lock(&st->gc_mu);
			for (struct pending *p = batch, *n; p; p = n) {
				n = p->next;
				p->done = true;
			}
			pthread_cond_broadcast(&st->gc_cv);
		}
		st->leader = false;
	}
	pthread_mutex_unlock(&st->gc_mu);
	return me->result;
}

static int write_record(int fd, uint64_t off, const uint8_t *id,
			const void *data, uint32_t len, uint32_t crc)
{
	uint8_t h[REC_HDR];
	struct iovec iov[2] = { { h, REC_HDR }, { (void *)data, len } };
	ssize_t n;

	rec_hdr_build(h, id, len, crc);
	n = pwritev(fd, iov, 2, (off_t)off);
	if (n < 0)
		return -errno;
	if ((size_t)n != REC_HDR + (size_t)len)
		return -ENOSPC; /* a short write: the disk filled up */
	return 0;
}

int store_put(struct store *st, const uint8_t id[BLOBCR_ID_SIZE],
	      const void *data, uint32_t len)
{
	uint8_t real[BLOBCR_ID_SIZE];
	struct pending me = { .id = id, .l = { .len = len } };
	int err;

	if (len == 0 || len > BLOBCR_MAX_EXTENT)
		return -EINVAL;
	err = blobcr_chunk_id(data, len, real);
	if (err)
		return err;
	if (memcmp(real, id, BLOBCR_ID_SIZE))
		return -EINVAL;
	err = store_has(st, id);
	if (err)
		return err < 0 ? err : 0; /* already durable */
	me.l.crc = blobcr_crc32c(0, data, len);
	/* Held until indexed: compaction may not drop the segment meanwhile. */
	pthread_rwlock_rdlock(&st->seg_rw);
	err = reserve(st, REC_HDR + (uint64_t)len, &me.l.seg, &me.l.off, &me.fd);
	if (!err)
		err = write_record(me.fd, me.l.off, id, data, len, me.l.crc);
	if (!err)
		err = group_commit(st, &me);
	pthread_rwlock_unlock(&st->seg_rw);
	return err;
}

/* ---- get, has, delete ---- */

int64_t store_get_len(struct store *st, const uint8_t id[BLOBCR_ID_SIZE])
{
	struct loc l;
	int err = index_lookup(st, id, &l);

	return err ? err : (int64_t)l.len;
}

static int64_t read_record(struct store *st, const uint8_t *id,
			   const struct loc *l, void *buf, uint32_t cap)
{
	uint8_t h[REC_HDR];
	struct iovec iov[2] = { { h, REC_HDR }, { buf, l->len } };
	ssize_t n;
	int fd;

	if (l->len > cap)
		return -EOVERFLOW;
	fd = seg_fd(st, l->seg);
	if (fd < 0)
		return fd;
	n = preadv(fd, iov, 2, (off_t)l->off);
	if (n < 0)
		return -errno;
	if ((size_t)n != REC_HDR + l->len || be32_get(h) != REC_MAGIC ||
	    be32_get(h + 12) != rec_hdr_crc(h) || be32_get(h + 4) != l->len ||
	    memcmp(h + 16, id, BLOBCR_ID_SIZE) ||
	    blobcr_crc32c(0, buf, l->len) != l->crc)
		return -EUCLEAN;
	return l->len;
}

/* A corrupt copy: counted, logged, forgotten so that a repair stores a good one. */
static void drop_corrupt(struct store *st, const uint8_t *id,
			 const struct loc *l)
{
	char hex[65];

	__atomic_fetch_add(&st->corrupt, 1, __ATOMIC_RELAXED);
	blobcr_id_hex(id, hex);
	log_err("chunk %s is corrupt in segment %" PRIu32 " at %" PRIu64
		": not served, dropped from the index", hex, l->seg, l->off);
	if (store_delete(st, id, 1) < 0)
		log_err("could not drop corrupt chunk %s", hex);
}

int64_t store_get(struct store *st, const uint8_t id[BLOBCR_ID_SIZE],
		  void *buf, uint32_t cap, uint32_t *crc)
{
	struct loc l;
	int64_t n;

	pthread_rwlock_rdlock(&st->seg_rw);
	n = index_lookup(st, id, &l);
	if (!n)
		n = read_record(st, id, &l, buf, cap);
	pthread_rwlock_unlock(&st->seg_rw);
	if (n >= 0 && crc)
		*crc = l.crc;
	if (n == -EUCLEAN)
		drop_corrupt(st, id, &l);
	return n;
}

int store_verify(struct store *st, const uint8_t id[BLOBCR_ID_SIZE])
{
	uint8_t *buf = malloc(BLOBCR_MAX_EXTENT), real[BLOBCR_ID_SIZE];
	struct loc l;
	int64_t n;

	if (!buf)
		return -ENOMEM;
	pthread_rwlock_rdlock(&st->seg_rw);
	n = index_lookup(st, id, &l);
	if (!n)
		n = read_record(st, id, &l, buf, BLOBCR_MAX_EXTENT);
	pthread_rwlock_unlock(&st->seg_rw);
	/* The CRC matched; the id is the stronger check of the same bytes. */
	if (n >= 0 && (blobcr_chunk_id(buf, (size_t)n, real) ||
		       memcmp(real, id, BLOBCR_ID_SIZE)))
		n = -EUCLEAN;
	free(buf);
	if (n == -EUCLEAN)
		drop_corrupt(st, id, &l);
	return n < 0 ? (int)n : 0;
}

int store_has(struct store *st, const uint8_t id[BLOBCR_ID_SIZE])
{
	struct loc l;
	int err = index_lookup(st, id, &l);

	return err == -ENOENT ? 0 : err ? err : 1;
}

/* Forget @id in @txn.  Return: 1 deleted, 0 absent, -errno. */
static int delete_one(struct store *st, MDB_txn *txn, const uint8_t *id)
{
	MDB_val key = { BLOBCR_ID_SIZE, (void *)id }, val;
	struct loc l;
	int rc = mdb_get(txn, st->idx, &key, &val), err;

	if (rc == MDB_NOTFOUND)
		return 0;
	err = rc ? mdb_to_errno(rc) : loc_decode(&val, &l);
	if (!err)
		err = mdb_to_errno(mdb_del(txn, st->idx, &key, NULL));
	if (!err)
		err = seg_live_add(txn, st->segs, l.seg, -(int64_t)(REC_HDR + l.len));
	if (!err)
		err = root_forget(st, txn, id);
	return err ? err : 1;
}

int store_delete(struct store *st, const uint8_t *ids, size_t n)
{
	MDB_txn *txn;
	int64_t deleted = 0;
	int rc = idx_begin(st, 0, &txn);

	if (rc)
		return mdb_to_errno(rc);
	for (size_t i = 0; i < n; i++) {
		int r = delete_one(st, txn, ids + i * BLOBCR_ID_SIZE);

		if (r < 0) {
			idx_abort(st, txn);
			return r;
		}
		deleted += r;
	}
	rc = idx_commit(st, txn);
	return rc ? mdb_to_errno(rc) : (int)deleted;
}

/* ---- roots ---- */

/* Chunk @id is going: so is the root it is, if it still is one. */
static int root_forget(struct store *st, MDB_txn *txn, const uint8_t *id)
{
	MDB_val ik = { BLOBCR_ID_SIZE, (void *)id }, name, rv;
	int rc = mdb_get(txn, st->root_ids, &ik, &name);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (!rc)
		rc = mdb_get(txn, st->roots, &name, &rv);
	if (!rc && rv.mv_size == 8 + BLOBCR_ID_SIZE &&
	    !memcmp((uint8_t *)rv.mv_data + 8, id, BLOBCR_ID_SIZE))
		rc = mdb_del(txn, st->roots, &name, NULL);
	if (!rc || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, st->root_ids, &ik, NULL);
	return rc == MDB_NOTFOUND ? 0 : mdb_to_errno(rc);
}

int store_put_root(struct store *st, const char *name, uint64_t seq,
		   const uint8_t id[BLOBCR_ID_SIZE], const void *data,
		   uint32_t len)
{
	size_t nl = strnlen(name, STORE_ROOT_MAX);
	MDB_val k = { nl, (void *)name }, v, ik = { BLOBCR_ID_SIZE, (void *)id };
	uint8_t vb[8 + BLOBCR_ID_SIZE];
	MDB_txn *txn;
	int rc, err;

	if (nl >= STORE_ROOT_MAX)
		return -EINVAL;
	err = store_put(st, id, data, len);
	if (err || !nl)
		return err;
	rc = idx_begin(st, 0, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_get(txn, st->roots, &k, &v);
	if (!rc && v.mv_size == 8 + BLOBCR_ID_SIZE && be64_get(v.mv_data) >= seq) {
		idx_abort(st, txn);
		return 0; /* a newer root already (or this one again) */
	}
	be64_put(vb, seq);
	memcpy(vb + 8, id, BLOBCR_ID_SIZE);
	v.mv_size = sizeof(vb);
	v.mv_data = vb;
	rc = mdb_put(txn, st->roots, &k, &v, 0);
	if (!rc)
		rc = mdb_put(txn, st->root_ids, &ik, &k, 0);
	if (rc) {
		idx_abort(st, txn);
		return mdb_to_errno(rc);
	}
	return mdb_to_errno(idx_commit(st, txn));
}

int store_list_roots(struct store *st, const char *after,
		     struct store_root *out, int max, bool *more)
{
	MDB_val k = { after ? strlen(after) : 0, (void *)after }, v;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, n = 0;

	*more = false;
	rc = idx_begin(st, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_cursor_open(txn, st->roots, &cur);
	if (rc) {
		idx_abort(st, txn);
		return mdb_to_errno(rc);
	}
	rc = mdb_cursor_get(cur, &k, &v, after ? MDB_SET_RANGE : MDB_FIRST);
	if (!rc && after && k.mv_size == strlen(after) &&
	    !memcmp(k.mv_data, after, k.mv_size))
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size >= STORE_ROOT_MAX || v.mv_size != 8 + BLOBCR_ID_SIZE)
			continue;
		if (n == max) {
			*more = true;
			break;
		}
		memcpy(out[n].name, k.mv_data, k.mv_size);
		out[n].name[k.mv_size] = 0;
		out[n].seq = be64_get(v.mv_data);
		memcpy(out[n].id, (uint8_t *)v.mv_data + 8, BLOBCR_ID_SIZE);
		n++;
	}
	mdb_cursor_close(cur);
	idx_abort(st, txn);
	return rc && rc != MDB_NOTFOUND ? mdb_to_errno(rc) : n;
}

/* ---- compaction ---- */

struct moved {
	uint8_t id[BLOBCR_ID_SIZE];
	struct loc from, to;
};

/* Collect the index entries that live in segment @seg. */
static int collect_live(struct store *st, uint32_t seg, struct moved **out,
			size_t *n)
{
	struct moved *v = NULL;
	size_t cnt = 0, cap = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val key, val;
	int rc, err = index_cursor(st, &txn, &cur);

	if (err)
		return err;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct loc l;

		if (key.mv_size != BLOBCR_ID_SIZE || loc_decode(&val, &l) ||
		    l.seg != seg)
			continue;
		if (cnt == cap) {
			struct moved *nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		memcpy(v[cnt].id, key.mv_data, BLOBCR_ID_SIZE);
		v[cnt].from = l;
		cnt++;
	}
	mdb_cursor_close(cur);
	idx_abort(st, txn);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* Copy each live record of a segment to the active segment, then sync. */
static int copy_live(struct store *st, struct moved *v, size_t n)
{
	uint8_t *buf = malloc(BLOBCR_MAX_EXTENT);
	int fd = -1, prev_fd = -1, err = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		int64_t len = read_record(st, v[i].id, &v[i].from, buf,
					  BLOBCR_MAX_EXTENT);

		v[i].to.len = 0; /* not moved */
		if (len < 0) {
			log_warn("compaction: skipping unreadable record: %s",
				 strerror((int)-len));
			continue;
		}
		v[i].to = v[i].from;
		err = reserve(st, REC_HDR + (uint64_t)len, &v[i].to.seg,
			      &v[i].to.off, &fd);
		if (!err)
			err = write_record(fd, v[i].to.off, v[i].id, buf,
					   (uint32_t)len, v[i].from.crc);
		/* A roll-over to a new segment: sync the one left behind. */
		if (!err && prev_fd >= 0 && fd != prev_fd && fdatasync(prev_fd))
			err = -errno;
		prev_fd = fd;
	}
	if (!err && fd >= 0 && fdatasync(fd))
		err = -errno;
	free(buf);
	return err;
}

/* Repoint the moved entries that still point at their old place. */
static int repoint(struct store *st, const struct moved *v, size_t n)
{
	MDB_txn *txn;
	int rc, err = 0;

	rc = idx_begin(st, 0, &txn);
	if (rc)
		return mdb_to_errno(rc);
	for (size_t i = 0; i < n && !err; i++) {
		MDB_val key = { BLOBCR_ID_SIZE, (void *)v[i].id }, val;
		uint8_t nv[IDX_VAL];
		struct loc cur;
		int64_t sz = REC_HDR + (int64_t)v[i].from.len;

		if (!v[i].to.len)
			continue;
		rc = mdb_get(txn, st->idx, &key, &val);
		if (rc || loc_decode(&val, &cur) || cur.seg != v[i].from.seg ||
		    cur.off != v[i].from.off)
			continue; /* deleted meanwhile: the copy is dead */
		loc_encode(&v[i].to, nv);
		val.mv_size = IDX_VAL;
		val.mv_data = nv;
		err = mdb_to_errno(mdb_put(txn, st->idx, &key, &val, 0));
		if (!err)
			err = seg_live_add(txn, st->segs, v[i].from.seg, -sz);
		if (!err)
			err = seg_live_add(txn, st->segs, v[i].to.seg, sz);
	}
	if (err) {
		idx_abort(st, txn);
		return err;
	}
	rc = idx_commit(st, txn);
	return rc ? mdb_to_errno(rc) : 0;
}

static int seg_forget(struct store *st, uint32_t seg)
{
	uint8_t k[4];
	MDB_val key = { 4, k };
	MDB_txn *txn;
	int rc;

	be32_put(k, seg);
	rc = idx_begin(st, 0, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_del(txn, st->segs, &key, NULL);
	if (rc && rc != MDB_NOTFOUND) {
		idx_abort(st, txn);
		return mdb_to_errno(rc);
	}
	rc = idx_commit(st, txn);
	return rc ? mdb_to_errno(rc) : 0;
}

/* Live bytes of @seg per the index; UINT64_MAX when unknown (keep it). */
static uint64_t seg_live(struct store *st, uint32_t seg)
{
	uint8_t k[4];
	MDB_val key = { 4, k }, val;
	uint64_t live = 0;
	MDB_txn *txn;

	be32_put(k, seg);
	if (idx_begin(st, MDB_RDONLY, &txn))
		return UINT64_MAX;
	if (!mdb_get(txn, st->segs, &key, &val) && val.mv_size == 8)
		live = be64_get(val.mv_data);
	idx_abort(st, txn);
	return live;
}

/* Unlink segment @seg once nothing points into it; Return: bytes freed. */
static int64_t drop_segment(struct store *st, uint32_t seg)
{
	char path[4200];
	struct stat sb;
	int64_t freed = 0;

	seg_path(st, seg, path, sizeof(path));
	pthread_rwlock_wrlock(&st->seg_rw);
	/* No put is between write and index now: is the segment still dead? */
	if (seg_live(st, seg) > 0) {
		pthread_rwlock_unlock(&st->seg_rw);
		return 0;
	}
	pthread_mutex_lock(&st->mu);
	if (seg == st->active) {
		st->active = st->next_seg++;
		st->active_size = 0;
	}
	if (stat(path, &sb) == 0 && unlink(path) == 0) {
		freed = sb.st_size;
		st->used -= (uint64_t)sb.st_size < st->used ?
				    (uint64_t)sb.st_size : st->used;
	}
	seg_fd_forget_locked(st, seg);
	pthread_mutex_unlock(&st->mu);
	pthread_rwlock_unlock(&st->seg_rw);
	return seg_forget(st, seg) ?: freed;
}

static int64_t compact_segment(struct store *st, uint32_t seg)
{
	struct moved *v = NULL;
	size_t n = 0;
	int err;

	err = collect_live(st, seg, &v, &n);
	if (!err)
		err = copy_live(st, v, n);
	if (!err)
		err = repoint(st, v, n);
	free(v);
	if (err)
		return err;
	return drop_segment(st, seg);
}

/*
 * Segments worth compacting: closed and at most half live, or (@all)
 * closed with any dead byte.
 */
static int pick_segments(struct store *st, bool all, uint32_t **out,
			 size_t *n)
{
	uint32_t *v = NULL;
	size_t cnt = 0;
	uint32_t active, next;
	int err = 0;

	pthread_mutex_lock(&st->mu);
	active = st->active;
	next = st->next_seg;
	pthread_mutex_unlock(&st->mu);
	v = calloc(next, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t seg = 1; seg < next; seg++) {
		char path[4200];
		uint8_t k[4];
		MDB_val key = { 4, k }, val;
		struct stat sb;
		uint64_t live = 0;
		MDB_txn *txn;

		if (seg == active)
			continue;
		seg_path(st, seg, path, sizeof(path));
		if (stat(path, &sb))
			continue;
		be32_put(k, seg);
		if (idx_begin(st, MDB_RDONLY, &txn)) {
			err = -EIO;
			break;
		}
		if (!mdb_get(txn, st->segs, &key, &val) && val.mv_size == 8)
			live = be64_get(val.mv_data);
		idx_abort(st, txn);
		if (all ? live < (uint64_t)sb.st_size :
			  live * 2 <= (uint64_t)sb.st_size)
			v[cnt++] = seg;
	}
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * A mostly dead active segment (@all: one with any dead byte) is closed
 * so that it can be compacted.
 */
static void roll_if_dead(struct store *st, bool all)
{
	uint8_t k[4];
	MDB_val key = { 4, k }, val;
	uint64_t live = 0;
	MDB_txn *txn;

	pthread_mutex_lock(&st->mu);
	be32_put(k, st->active);
	if (st->active_size && !idx_begin(st, MDB_RDONLY, &txn)) {
		if (!mdb_get(txn, st->segs, &key, &val) && val.mv_size == 8)
			live = be64_get(val.mv_data);
		idx_abort(st, txn);
		if (all ? live < st->active_size : live * 2 <= st->active_size) {
			st->active = st->next_seg++;
			st->active_size = 0;
		}
	}
	pthread_mutex_unlock(&st->mu);
}

int64_t store_compact(struct store *st, bool all)
{
	uint32_t *segs;
	size_t n;
	int64_t total = 0;
	int err;

	pthread_mutex_lock(&st->compact_mu);
	roll_if_dead(st, all);
	err = pick_segments(st, all, &segs, &n);
	if (!err) {
		for (size_t i = 0; !err && i < n; i++) {
			int64_t r = compact_segment(st, segs[i]);

			if (r < 0)
				err = (int)r;
			else
				total += r;
		}
		free(segs);
	}
	pthread_mutex_unlock(&st->compact_mu);
	if (total)
		log_info("compaction reclaimed %" PRId64 " bytes", total);
	return err ? err : total;
}

int store_stat(struct store *st, struct store_stat *out)
{
	MDB_stat ms;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = idx_begin(st, MDB_RDONLY, &txn);
	if (rc)
		return mdb_to_errno(rc);
	rc = mdb_stat(txn, st->idx, &ms);
	if (!rc)
		out->chunks = ms.ms_entries;
	if (!rc)
		rc = mdb_stat(txn, st->roots, &ms);
	if (!rc)
		out->roots = ms.ms_entries;
	if (!rc)
		rc = mdb_cursor_open(txn, st->segs, &cur);
	if (!rc) {
		while (!mdb_cursor_get(cur, &key, &val, MDB_NEXT))
			if (val.mv_size == 8)
				out->live_bytes += be64_get(val.mv_data);
		mdb_cursor_close(cur);
	}
	idx_abort(st, txn);
	if (rc)
		return mdb_to_errno(rc);
	pthread_mutex_lock(&st->mu);
	out->used_bytes = st->used;
	out->segments = st->nfds;
	pthread_mutex_unlock(&st->mu);
	out->capacity = st->capacity;
	out->corrupt = __atomic_load_n(&st->corrupt, __ATOMIC_RELAXED);
	return 0;
}

void store_uuid(const struct store *st, uint8_t out[BLOBCR_UUID_SIZE])
{
	memcpy(out, st->uuid, BLOBCR_UUID_SIZE);
}

int store_list(struct store *st, const uint8_t *after,
	       uint8_t (*ids)[BLOBCR_ID_SIZE], int max, bool *more)
{
	MDB_val key = { BLOBCR_ID_SIZE, (void *)after }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, n = 0;

	*more = false;
	rc = index_cursor(st, &txn, &cur);
	if (rc)
		return rc;
	rc = mdb_cursor_get(cur, &key, &val, after ? MDB_SET_RANGE : MDB_FIRST);
	if (!rc && after && !memcmp(key.mv_data, after, BLOBCR_ID_SIZE))
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	for (; !rc; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != BLOBCR_ID_SIZE)
			continue;
		if (n == max) {
			*more = true;
			break;
		}
		memcpy(ids[n++], key.mv_data, BLOBCR_ID_SIZE);
	}
	mdb_cursor_close(cur);
	idx_abort(st, txn);
	return rc && rc != MDB_NOTFOUND ? mdb_to_errno(rc) : n;
}
