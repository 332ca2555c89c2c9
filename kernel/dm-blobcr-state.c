// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-blobcr: per-device state.  Present, dirty and commit bitmaps, the
 * requests to the helper, the parked bios and the worker that resubmits
 * them, the commit.  Lock order and lock comments: dm-blobcr-core.h.
 */

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "dm-blobcr-core.h"

static DEFINE_MUTEX(blobcr_states_mutex);
static LIST_HEAD(blobcr_states);	/* blobcr_states_mutex */

struct kmem_cache *blobcr_req_cache;

/* ---- Helpers, all called with st->lock held. ---- */

static u64 bio_extent(struct blobcr_state *st, struct bio *bio)
{
	return bio->bi_iter.bi_sector >> st->extent_shift;
}

/* Sectors of @extent (the last one may be short). */
static sector_t extent_len(struct blobcr_state *st, u64 extent)
{
	sector_t start = (sector_t)extent << st->extent_shift;

	return min_t(sector_t, st->geo.extent_sectors,
		     st->geo.dev_sectors - start);
}

static bool bio_covers_extent(struct blobcr_state *st, struct bio *bio,
			      u64 extent)
{
	sector_t start = (sector_t)extent << st->extent_shift;

	return bio->bi_iter.bi_sector == start &&
	       bio_sectors(bio) == extent_len(st, extent);
}

static struct blobcr_req *fetch_find(struct blobcr_state *st, u64 extent)
{
	struct rb_node *n = st->fetches.rb_node;

	lockdep_assert_held(&st->lock);
	while (n) {
		struct blobcr_req *req = rb_entry(n, struct blobcr_req, rb);

		if (extent < req->extent)
			n = n->rb_left;
		else if (extent >= req->extent + req->nr)
			n = n->rb_right;
		else
			return req;
	}
	return NULL;
}

bool blobcr_fetching(struct blobcr_state *st, u64 extent)
{
	return fetch_find(st, extent);
}

static void fetch_insert(struct blobcr_state *st, struct blobcr_req *req)
{
	struct rb_node **link = &st->fetches.rb_node, *parent = NULL;

	lockdep_assert_held(&st->lock);
	while (*link) {
		struct blobcr_req *r = rb_entry(*link, struct blobcr_req, rb);

		parent = *link;
		if (req->extent < r->extent)
			link = &parent->rb_left;
		else
			link = &parent->rb_right;
	}
	rb_link_node(&req->rb, parent, link);
	rb_insert_color(&req->rb, &st->fetches);
}

struct blobcr_req *blobcr_req_lookup(struct blobcr_state *st, u64 id)
{
	struct blobcr_req *req;

	lockdep_assert_held(&st->lock);
	hash_for_each_possible(st->req_hash, req, hnode, id)
		if (req->id == id)
			return req;
	return NULL;
}

static void arm_timeout(struct blobcr_state *st)
{
	unsigned long t = READ_ONCE(st->timeout);

	if (t)
		queue_delayed_work(st->wq, &st->timeout_work, t);
}

void blobcr_kick(struct blobcr_state *st)
{
	queue_work(st->wq, &st->worker);
}

/* Requests were queued: wake the readers and arm the timeout. */
void blobcr_wake_readers(struct blobcr_state *st)
{
	wake_up_interruptible(&st->req_wq);
	arm_timeout(st);
}

/* Give a request back (to the reserve); a bio may be waiting for one. */
static void req_free(struct blobcr_state *st, struct blobcr_req *req)
{
	lockdep_assert_held(&st->lock);
	mempool_free(req, &st->req_pool);
	if (st->req_starved)
		blobcr_kick(st);
}

/* Initialise @req and put it at the tail of the queue. */
static void req_queue(struct blobcr_state *st, struct blobcr_req *req,
		      u16 op, u64 extent, u64 nr)
{
	lockdep_assert_held(&st->lock);
	memset(req, 0, sizeof(*req));
	req->id = ++st->next_id;
	req->op = op;
	req->extent = extent;
	req->nr = nr;
	req->rstate = BLOBCR_REQ_QUEUED;
	req->queued_at = jiffies;
	bio_list_init(&req->bios);
	hash_add(st->req_hash, &req->hnode, req->id);
	list_add_tail(&req->list, &st->queue);
	if (op == BLOBCR_OP_FETCH) {
		fetch_insert(st, req);
		st->fetches_queued++;
		st->last_fetch = req;
	}
}

/* Take a QUEUED request off the queue (to hand it out or to end it). */
static void req_unqueue(struct blobcr_state *st, struct blobcr_req *req)
{
	lockdep_assert_held(&st->lock);
	list_del_init(&req->list);
	if (req->op == BLOBCR_OP_FETCH)
		st->fetches_queued--;
	if (st->last_fetch == req)
		st->last_fetch = NULL;
}

/* Hand the QUEUED request @req to the file @f (a read). */
void blobcr_req_take(struct blobcr_state *st, struct blobcr_req *req,
		     struct blobcr_file *f)
{
	lockdep_assert_held(&st->lock);
	req_unqueue(st, req);
	req->rstate = BLOBCR_REQ_INFLIGHT;
	req->owner = f;
	list_add_tail(&req->list, &f->inflight);
	if (req->op == BLOBCR_OP_FETCH)
		st->fetches_inflight++;
}

/*
 * Put the INFLIGHT request @req back at the head of the queue, for the
 * next reader, with a fresh timeout.  The caller wakes the readers.
 */
void blobcr_req_requeue(struct blobcr_state *st, struct blobcr_req *req)
{
	lockdep_assert_held(&st->lock);
	req->rstate = BLOBCR_REQ_QUEUED;
	req->owner = NULL;
	req->queued_at = jiffies;
	list_move(&req->list, &st->queue);
	if (req->op == BLOBCR_OP_FETCH) {
		st->fetches_inflight--;
		st->fetches_queued++;
	}
}

/* Forget a request that is off every list but the hash and the tree. */
static void req_forget(struct blobcr_state *st, struct blobcr_req *req)
{
	lockdep_assert_held(&st->lock);
	hash_del(&req->hnode);
	if (req->op == BLOBCR_OP_FETCH)
		rb_erase(&req->rb, &st->fetches);
}

/* End a request in whatever state it is, without completing it. */
static void req_detach(struct blobcr_state *st, struct blobcr_req *req)
{
	lockdep_assert_held(&st->lock);
	if (req->rstate == BLOBCR_REQ_QUEUED) {
		req_unqueue(st, req);
	} else {
		list_del_init(&req->list);
		if (req->op == BLOBCR_OP_FETCH)
			st->fetches_inflight--;
	}
	req_forget(st, req);
}

void blobcr_fail_bios(struct bio_list *bios)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios)))
		bio_io_error(bio);
}

/* Writes to this extent must wait for the commit (barrier or upload). */
static bool write_held(struct blobcr_state *st, u64 extent)
{
	lockdep_assert_held(&st->lock);
	if (st->commit_phase == BLOBCR_COMMIT_DRAIN)
		return true;
	return st->commit_phase != BLOBCR_COMMIT_NONE &&
	       test_bit(extent, st->commit_set) &&
	       !test_bit(extent, st->uploaded);
}

/* Count @bio (once) as a write under way; commit_phase is not DRAIN. */
static void count_write(struct blobcr_state *st, struct bio *bio)
{
	struct blobcr_bio *pb = dm_per_bio_data(bio, sizeof(*pb));

	lockdep_assert_held(&st->lock);
	if (!(pb->flags & BLOBCR_BIO_COUNTED)) {
		pb->flags |= BLOBCR_BIO_COUNTED;
		/* The commit sets DRAIN under st->lock: it will see this. */
		this_cpu_inc(*st->writes);
	}
}

/* Mark @extent dirty and count @bio as a write under way. */
static void account_write(struct blobcr_state *st, struct bio *bio,
			  u64 extent)
{
	lockdep_assert_held(&st->lock);
	if (!test_and_set_bit(extent, st->dirty))
		atomic64_inc(&st->nr_dirty);
	count_write(st, bio);
}

/* Release every held write to the worker. */
static void release_held(struct blobcr_state *st)
{
	lockdep_assert_held(&st->lock);
	if (bio_list_empty(&st->held))
		return;
	bio_list_merge(&st->deferred, &st->held);
	bio_list_init(&st->held);
	blobcr_kick(st);
}

/* ---- Counting writes under way (see blobcr_state.writes). ---- */

/*
 * Count a write unless a commit runs.  Back-offs decrement on the CPU that
 * incremented, so a commit's sum never sees half of one.
 */
static bool writes_enter(struct blobcr_state *st)
{
	bool ok;

	if (READ_ONCE(st->commit_phase) != BLOBCR_COMMIT_NONE)
		return false;
	preempt_disable();
	__this_cpu_inc(*st->writes);
	/* Pairs with smp_mb() in blobcr_commit(): one sees the other. */
	smp_mb();
	/* Acquire: pairs with the release that ended the last commit. */
	ok = smp_load_acquire(&st->commit_phase) == BLOBCR_COMMIT_NONE;
	if (!ok)
		__this_cpu_dec(*st->writes);
	preempt_enable();
	if (!ok && wq_has_sleeper(&st->drain_wq))
		wake_up(&st->drain_wq);
	return ok;
}

/* A counted write ended (any CPU, any context). */
static void writes_exit(struct blobcr_state *st)
{
	/*
	 * Its dirty bits are visible before the count drops: pairs with
	 * smp_rmb() after the drain in blobcr_commit().
	 */
	smp_wmb();
	this_cpu_dec(*st->writes);
	/*
	 * wq_has_sleeper() has the barrier that pairs with wait_event() in
	 * blobcr_commit(); it spares the waitqueue lock when nobody drains.
	 */
	if (wq_has_sleeper(&st->drain_wq))
		wake_up(&st->drain_wq);
}

/* The modular sum of the per-CPU counts is zero: no write under way. */
static bool writes_drained(struct blobcr_state *st)
{
	unsigned long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(*per_cpu_ptr(st->writes, cpu));
	return !sum;
}

/* ---- Fast path and worker. ---- */

/*
 * The first extent of [@first, @last] that is not present, or @last + 1
 * (no lock: present bits only get set).
 */
static u64 first_absent(struct blobcr_state *st, u64 first, u64 last)
{
	return find_next_zero_bit(st->present, last + 1, first);
}

static bool range_writable(struct blobcr_state *st, u64 first, u64 last)
{
	u64 e;

	lockdep_assert_held(&st->lock);
	for (e = first; e <= last; e++)
		if (!test_bit(e, st->present) || write_held(st, e))
			return false;
	return true;
}

/*
 * Lock-free write path when no commit runs: count the write, then mark
 * the extents of its present prefix [@first, @end) dirty.
 */
static void write_fast(struct blobcr_state *st, struct bio *bio, u64 first,
		       u64 end)
{
	struct blobcr_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	unsigned long *dirty = READ_ONCE(st->dirty);
	u64 e;

	for (e = first; e < end; e++)
		if (!test_bit(e, dirty) && !test_and_set_bit(e, dirty))
			atomic64_inc(&st->nr_dirty);
	pb->flags |= BLOBCR_BIO_COUNTED;
}

/*
 * Bios may span extents (no max_io_len: a 1 MiB bio on present extents
 * stays one bio).  The fast path takes the present prefix of a bio and
 * leaves the rest to device-mapper, which maps it again; a bio starting on
 * an absent extent is cut at the end of that extent and parked, so that
 * the worker only ever sees bios within one extent.
 */
int blobcr_state_map(struct blobcr_state *st, struct bio *bio)
{
	sector_t sector = bio->bi_iter.bi_sector;
	u64 first = sector >> st->extent_shift;
	u64 last = (bio_end_sector(bio) - 1) >> st->extent_shift;
	int mode = READ_ONCE(st->mode);
	bool fast = false;
	u64 end, e;

	if (mode == BLOBCR_MODE_FAIL)
		return DM_MAPIO_KILL;
	/* An empty flush carries no data and concerns no extent. */
	if (!bio_sectors(bio))
		return DM_MAPIO_REMAPPED;

	if (!op_is_write(bio_op(bio))) {
		end = first_absent(st, first, last);
		if (end > first)
			goto remap_prefix;
	} else {
		if (mode == BLOBCR_MODE_RO)
			return DM_MAPIO_KILL;
		if (writes_enter(st)) {
			end = first_absent(st, first, last);
			if (end > first) {
				write_fast(st, bio, first, end);
				goto remap_prefix;
			}
			writes_exit(st);
		} else {
			/* A commit runs: decide under the lock. */
			spin_lock(&st->lock);
			if (range_writable(st, first, last)) {
				for (e = first; e <= last; e++)
					account_write(st, bio, e);
				fast = true;
			}
			spin_unlock(&st->lock);
			if (fast)
				return DM_MAPIO_REMAPPED;
		}
	}

	if (READ_ONCE(st->requeue))
		return DM_MAPIO_REQUEUE;

	if (last != first)
		dm_accept_partial_bio(bio, ((first + 1) << st->extent_shift) -
				      sector);

	spin_lock(&st->lock);
	bio_list_add(&st->deferred, bio);
	spin_unlock(&st->lock);
	blobcr_kick(st);
	return DM_MAPIO_SUBMITTED;

remap_prefix:
	if (end <= last)
		dm_accept_partial_bio(bio, (end << st->extent_shift) - sector);
	return DM_MAPIO_REMAPPED;
}

void blobcr_state_end_io(struct blobcr_state *st, struct bio *bio,
			 blk_status_t status)
{
	struct blobcr_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	struct blobcr_req *req = pb->overwrite;

	if (req) {
		/*
		 * The worker marks the extent present (on success), then
		 * drops the count: a commit's drain waits for that.
		 */
		pb->overwrite = NULL;
		pb->flags &= ~BLOBCR_BIO_COUNTED;
		req->status = blk_status_to_errno(status);
		llist_add(&req->done, &st->overwrites_done);
		blobcr_kick(st);
	} else if (pb->flags & BLOBCR_BIO_COUNTED) {
		pb->flags &= ~BLOBCR_BIO_COUNTED;
		writes_exit(st);
	}
}

enum {
	PB_SUBMIT,
	PB_FAIL,
	PB_PARKED,
	PB_NEED_REQ,
	PB_REQUEUE,
};

/*
 * A write replaces the whole absent extent: nothing to fetch.  The extent
 * stays absent while the write is in flight, other bios on it park behind
 * the record @req, and only a successful write makes it present and dirty
 * (see overwrites_complete()).
 */
static void start_overwrite(struct blobcr_state *st, struct bio *bio,
			    struct blobcr_req *req, u64 extent)
{
	struct blobcr_bio *pb = dm_per_bio_data(bio, sizeof(*pb));

	lockdep_assert_held(&st->lock);
	memset(req, 0, sizeof(*req));
	req->op = BLOBCR_OP_OVERWRITE;
	req->extent = extent;
	req->nr = 1;
	bio_list_init(&req->bios);
	fetch_insert(st, req);
	pb->overwrite = req;
	count_write(st, bio);
}

/* Decide what to do with one parked bio. */
static int process_bio(struct blobcr_state *st, struct bio *bio,
		       struct blobcr_req **spare, bool *queued)
{
	u64 extent = bio_extent(st, bio);
	bool write = op_is_write(bio_op(bio));
	struct blobcr_req *req;

	lockdep_assert_held(&st->lock);
	if (st->dead || st->mode == BLOBCR_MODE_FAIL ||
	    (write && st->mode == BLOBCR_MODE_RO))
		return PB_FAIL;
	if (st->requeue)
		return PB_REQUEUE;

	if (test_bit(extent, st->present)) {
		if (write) {
			if (write_held(st, extent)) {
				bio_list_add(&st->held, bio);
				return PB_PARKED;
			}
			account_write(st, bio, extent);
		}
		return PB_SUBMIT;
	}

	req = fetch_find(st, extent);
	if (req) {
		bio_list_add(&req->bios, bio);
		return PB_PARKED;
	}

	if (write && bio_covers_extent(st, bio, extent)) {
		if (write_held(st, extent)) {
			bio_list_add(&st->held, bio);
			return PB_PARKED;
		}
		if (!*spare)
			return PB_NEED_REQ;
		start_overwrite(st, bio, *spare, extent);
		*spare = NULL;
		return PB_SUBMIT;
	}

	req = st->last_fetch;
	if (req && req->extent + req->nr == extent && req->nr < BLOBCR_MAX_RUN) {
		req->nr++;
		bio_list_add(&req->bios, bio);
		return PB_PARKED;
	}

	if (!*spare)
		return PB_NEED_REQ;
	req = *spare;
	*spare = NULL;
	req_queue(st, req, BLOBCR_OP_FETCH, extent, 1);
	bio_list_add(&req->bios, bio);
	*queued = true;
	return PB_PARKED;
}

/* Whole-extent writes that ended: mark their extents, wake what waits. */
static void overwrites_complete(struct blobcr_state *st, struct bio_list *bios)
{
	struct llist_node *done = llist_del_all(&st->overwrites_done);
	struct blobcr_req *req, *tmp;

	llist_for_each_entry_safe(req, tmp, done, done) {
		spin_lock(&st->lock);
		if (!req->status) {
			__set_bit(req->extent, st->present);
			st->nr_present++;
			if (!test_and_set_bit(req->extent, st->dirty))
				atomic64_inc(&st->nr_dirty);
		} else {
			DMERR_LIMIT("%s: write of extent %llu failed: %d; it stays absent",
				    st->name, req->extent, req->status);
		}
		rb_erase(&req->rb, &st->fetches);
		bio_list_merge(bios, &req->bios);
		req_free(st, req);
		spin_unlock(&st->lock);
		/* The extent is marked: a commit may take it now. */
		writes_exit(st);
	}
}

/*
 * The worker never sleeps: a bio that needs a request when the reserve is
 * empty waits on st->deferred until one is freed (req_free() kicks), so
 * that writes it has counted are submitted, and a commit's drain, a
 * suspend or a removal never wait for a helper through it.
 */
static void blobcr_worker(struct work_struct *work)
{
	struct blobcr_state *st = container_of(work, struct blobcr_state,
					       worker);
	struct bio_list bios = BIO_EMPTY_LIST;
	struct bio_list submit = BIO_EMPTY_LIST;
	struct bio_list failed = BIO_EMPTY_LIST;
	struct bio_list starved = BIO_EMPTY_LIST;
	struct blobcr_req *spare = NULL;
	struct blk_plug plug;
	bool queued = false, no_req = false;
	struct bio *bio;

	overwrites_complete(st, &bios);
	spin_lock(&st->lock);
	bio_list_merge(&bios, &st->deferred);
	bio_list_init(&st->deferred);
	st->req_starved = false;
	spin_unlock(&st->lock);

	while ((bio = bio_list_pop(&bios))) {
		int r;

		spin_lock(&st->lock);
		r = process_bio(st, bio, &spare, &queued);
		if (r == PB_NEED_REQ && !no_req) {
			/* Set first: a request freed from now on kicks. */
			st->req_starved = true;
			spin_unlock(&st->lock);
			spare = mempool_alloc(&st->req_pool, GFP_NOWAIT);
			spin_lock(&st->lock);
			if (spare)
				r = process_bio(st, bio, &spare, &queued);
			else
				no_req = true;
		}
		if (r == PB_NEED_REQ)
			bio_list_add(&starved, bio);
		spin_unlock(&st->lock);

		if (r == PB_SUBMIT) {
			bio_list_add(&submit, bio);
		} else if (r == PB_FAIL) {
			bio_list_add(&failed, bio);
		} else if (r == PB_REQUEUE) {
			bio->bi_status = BLK_STS_DM_REQUEUE;
			bio_endio(bio);
		}
	}
	spin_lock(&st->lock);
	if (spare)
		req_free(st, spare);
	/* req_starved is still set: the next request freed kicks. */
	bio_list_merge_head(&st->deferred, &starved);
	if (queued)
		blobcr_wake_readers(st);
	spin_unlock(&st->lock);

	blobcr_fail_bios(&failed);
	blk_start_plug(&plug);
	while ((bio = bio_list_pop(&submit)))
		submit_bio_noacct(bio);
	blk_finish_plug(&plug);
}

/* ---- Request completion, called by the channel with st->lock held. ---- */

void blobcr_fetch_done(struct blobcr_state *st, struct blobcr_req *req,
		       int status, struct bio_list *failed)
{
	u64 e;

	lockdep_assert_held(&st->lock);
	req_detach(st, req);
	if (status) {
		bio_list_merge(failed, &req->bios);
	} else {
		/* At most BLOBCR_MAX_RUN extents. */
		for (e = req->extent; e < req->extent + req->nr; e++)
			if (!__test_and_set_bit(e, st->present))
				st->nr_present++;
		if (!bio_list_empty(&req->bios)) {
			bio_list_merge(&st->deferred, &req->bios);
			blobcr_kick(st);
		}
	}
	req_free(st, req);
}

/*
 * End the commit in progress: record its result and leave the bitmaps to
 * commit_end_work, which makes the commit's end visible once they are
 * clear (on failure, the commit set merged back into the dirty set).
 */
void blobcr_commit_done(struct blobcr_state *st, int status, u64 version)
{
	struct blobcr_req *req = st->commit_req;

	lockdep_assert_held(&st->lock);
	if (WARN_ON_ONCE(st->commit_phase != BLOBCR_COMMIT_UPLOAD))
		return;
	if (req) {
		req_detach(st, req);
		req_free(st, req);
		st->commit_req = NULL;
	}
	if (!status) {
		st->commits_done++;
		st->last_version = version;
	}
	st->commit_result = status;
	st->commit_version = status ? 0 : version;
	st->commit_nr = st->nr_committing_last;
	WRITE_ONCE(st->commit_phase, BLOBCR_COMMIT_ENDING);
	queue_work(st->wq, &st->commit_end_work);
}

/* OR the bits of @src in [@start, @end) into @dst, word by word. */
static void bitmap_or_range(unsigned long *dst, const unsigned long *src,
			    u64 start, u64 end)
{
	u64 w, first = BIT_WORD(start), last = BIT_WORD(end - 1);

	for (w = first; w <= last; w++) {
		unsigned long m = ~0UL;

		if (w == first)
			m &= BITMAP_FIRST_WORD_MASK(start);
		if (w == last)
			m &= BITMAP_LAST_WORD_MASK(end);
		dst[w] |= src[w] & m;
	}
}

/* Clear the commit's bitmaps, a chunk per lock hold; on failure merge. */
static void blobcr_commit_end(struct work_struct *work)
{
	struct blobcr_state *st = container_of(work, struct blobcr_state,
					       commit_end_work);
	u64 words = BITS_TO_LONGS(st->nr_extents), w, i, end;
	bool failed;

	spin_lock(&st->lock);
	failed = st->commit_result;
	spin_unlock(&st->lock);

	for (w = 0; w < words; w = end) {
		end = min(words, w + BIT_WORD(BLOBCR_CHUNK));
		spin_lock(&st->lock);
		for (i = w; i < end; i++) {
			/* No fast-path writer: commit_phase is ENDING. */
			if (failed) {
				unsigned long add = st->commit_set[i] &
						    ~st->dirty[i];

				atomic64_add(hweight_long(add), &st->nr_dirty);
				st->dirty[i] |= add;
			}
			st->commit_set[i] = 0;
			st->uploaded[i] = 0;
		}
		spin_unlock(&st->lock);
		cond_resched();
	}

	spin_lock(&st->lock);
	st->nr_committing = 0;
	st->commit_done_seq = st->commit_seq;
	/* Release: pairs with smp_load_acquire() in writes_enter(). */
	smp_store_release(&st->commit_phase, BLOBCR_COMMIT_NONE);
	release_held(st);
	spin_unlock(&st->lock);
	wake_up_all(&st->commit_wq);
}

/*
 * UPLOADED [@extent, @extent + @nr) for commit @seq: writes to these
 * extents of the commit set may go on.  A chunk per lock hold; stops if
 * the commit ended meanwhile.
 */
void blobcr_uploaded(struct blobcr_state *st, u64 seq, u64 extent, u64 nr)
{
	u64 e, end = extent + nr, next;

	for (e = extent; e < end; e = next) {
		next = min(end, round_down(e, BLOBCR_CHUNK) + BLOBCR_CHUNK);
		spin_lock(&st->lock);
		if (st->commit_phase != BLOBCR_COMMIT_UPLOAD ||
		    st->commit_seq != seq) {
			spin_unlock(&st->lock);
			return;
		}
		bitmap_or_range(st->uploaded, st->commit_set, e, next);
		if (next == end)
			release_held(st);
		spin_unlock(&st->lock);
		cond_resched();
	}
}

/*
 * The file @f stops being a helper (closed or dropped): hand its requests
 * to the next one.  A COMMIT is handed on only if no part of it was
 * declared uploaded (writes may have changed those extents since);
 * otherwise the commit fails and its extents are dirty again.
 */
void blobcr_requeue_file(struct blobcr_state *st, struct blobcr_file *f)
{
	struct blobcr_req *req, *tmp;
	bool requeued = false;

	lockdep_assert_held(&st->lock);
	list_for_each_entry_safe_reverse(req, tmp, &f->inflight, list) {
		if (req->op == BLOBCR_OP_COMMIT && req->uploaded_any) {
			blobcr_commit_done(st, -EIO, 0);
			continue;
		}
		blobcr_req_requeue(st, req);
		requeued = true;
	}
	if (requeued)
		blobcr_wake_readers(st);
}

/* ---- Timeouts: a request nobody has read for st->timeout fails. ---- */

static void blobcr_timeout_work(struct work_struct *work)
{
	struct blobcr_state *st = container_of(to_delayed_work(work),
					       struct blobcr_state,
					       timeout_work);
	struct bio_list failed = BIO_EMPTY_LIST;
	struct blobcr_req *req, *tmp;
	unsigned long next = 0, now = jiffies;
	bool again = false;

	spin_lock(&st->lock);
	if (st->dead || !st->timeout) {
		spin_unlock(&st->lock);
		return;
	}
	/* At most BLOBCR_MAX_QUEUED_FETCHES plus the parked bios' own. */
	list_for_each_entry_safe(req, tmp, &st->queue, list) {
		unsigned long deadline = req->queued_at + st->timeout;

		if (time_before(now, deadline)) {
			if (!again || time_before(deadline, next))
				next = deadline;
			again = true;
			continue;
		}
		if (req->op == BLOBCR_OP_FETCH) {
			DMERR_LIMIT("%s: no helper read fetch of extent %llu in time",
				    st->name, req->extent);
			blobcr_fetch_done(st, req, -ETIMEDOUT, &failed);
		} else {
			DMERR_LIMIT("%s: no helper read commit in time", st->name);
			blobcr_commit_done(st, -ETIMEDOUT, 0);
		}
	}
	if (again)
		queue_delayed_work(st->wq, &st->timeout_work,
				   next - now + 1);
	spin_unlock(&st->lock);
	blobcr_fail_bios(&failed);
}

/* ---- Commit. ---- */

int blobcr_commit(struct blobcr_state *st, struct blobcr_commit *c)
{
	struct blobcr_req *req;
	unsigned long *tmp;
	u64 seq, t0;
	long r;

	/* Outside the I/O path's reserve. */
	req = kmem_cache_alloc(blobcr_req_cache, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	t0 = ktime_get_ns();

	spin_lock(&st->lock);
	if (st->dead || st->mode != BLOBCR_MODE_RW) {
		r = st->dead ? -ENODEV : -EROFS;
		goto out_free;
	}
	if (st->commit_phase != BLOBCR_COMMIT_NONE) {
		r = -EBUSY;
		goto out_free;
	}
	/* Release: pairs with smp_load_acquire() in writes_enter(). */
	smp_store_release(&st->commit_phase, BLOBCR_COMMIT_DRAIN);
	seq = ++st->commit_seq;
	spin_unlock(&st->lock);
	/* Pairs with smp_mb() in writes_enter(). */
	smp_mb();

	/*
	 * No write starts now (write_held()); wait for those under way.  The
	 * wait is bounded by the cache device's latency, not by dirty data.
	 * Pairs with wq_has_sleeper() in writes_exit().
	 */
	r = wait_event_killable(st->drain_wq, writes_drained(st));
	/* Pairs with smp_wmb() in writes_exit(). */
	smp_rmb();

	spin_lock(&st->lock);
	if (r || st->dead) {
		/* Release: pairs with smp_load_acquire() in writes_enter(). */
		smp_store_release(&st->commit_phase, BLOBCR_COMMIT_NONE);
		r = r ? -EINTR : -ENODEV;
		st->commit_done_seq = seq;
		st->commit_result = r;
		st->commit_version = 0;
		st->commit_nr = 0;
		release_held(st);
		spin_unlock(&st->lock);
		wake_up_all(&st->commit_wq);	/* COMMIT_WAIT on this id */
		mempool_free(req, &st->req_pool);
		return r;
	}
	/*
	 * The atomic step: commit_set and uploaded are empty here, and no
	 * fast-path write holds the old dirty pointer (all drained).
	 */
	tmp = st->dirty;
	WRITE_ONCE(st->dirty, st->commit_set);
	st->commit_set = tmp;
	st->nr_committing = atomic64_xchg(&st->nr_dirty, 0);
	st->nr_committing_last = st->nr_committing;
	/* No release needed: writes_enter() backs off on any non-NONE. */
	WRITE_ONCE(st->commit_phase, BLOBCR_COMMIT_UPLOAD);
	req_queue(st, req, BLOBCR_OP_COMMIT, 0, st->nr_committing);
	st->commit_req = req;
	c->nr_extents = st->nr_committing;
	release_held(st);
	blobcr_wake_readers(st);
	spin_unlock(&st->lock);
	c->pause_ns = ktime_get_ns() - t0;
	c->commit_id = seq;

	if (c->flags & BLOBCR_COMMIT_F_NOWAIT)
		return 0;
	return blobcr_commit_wait(st, c);

out_free:
	spin_unlock(&st->lock);
	mempool_free(req, &st->req_pool);
	return r;
}

int blobcr_commit_wait(struct blobcr_state *st, struct blobcr_commit *c)
{
	u64 seq = c->commit_id;
	int r;

	spin_lock(&st->lock);
	r = !seq || seq > st->commit_seq ? -EINVAL : 0;
	spin_unlock(&st->lock);
	if (r)
		return r;

	r = wait_event_killable(st->commit_wq,
				READ_ONCE(st->commit_done_seq) >= seq ||
				READ_ONCE(st->dead));
	if (r)
		return -EINTR;	/* the commit goes on; status shows the end */

	spin_lock(&st->lock);
	if (st->commit_done_seq == seq) {
		r = st->commit_result;
		c->version = st->commit_version;
		c->nr_extents = st->commit_nr;
	} else {
		/* A later commit ended too: this one's result is gone. */
		r = st->dead ? -ENODEV : -ESTALE;
	}
	spin_unlock(&st->lock);
	return r;
}

/* ---- Target-facing interface. ---- */

/* The first extent after @extent that a FETCH or OVERWRITE covers, or @end. */
static u64 next_record(struct blobcr_state *st, u64 extent, u64 end)
{
	struct rb_node *n = st->fetches.rb_node;

	lockdep_assert_held(&st->lock);
	while (n) {
		struct blobcr_req *req = rb_entry(n, struct blobcr_req, rb);

		if (req->extent > extent) {
			end = min(end, req->extent);
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return end;
}

void blobcr_state_set_all_present(struct blobcr_state *st)
{
	u64 e, next, start, stop;
	struct blobcr_req *req;

	for (e = 0; e < st->nr_extents; e = next) {
		next = min(st->nr_extents, e + BLOBCR_CHUNK);
		spin_lock(&st->lock);
		/* Each run of absent extents of [e, next) no record covers. */
		for (start = e; start < next; start = stop) {
			start = find_next_zero_bit(st->present, next, start);
			if (start >= next)
				break;
			req = fetch_find(st, start);
			if (req) {
				stop = req->extent + req->nr;
				continue;
			}
			stop = next_record(st, start, next);
			stop = find_next_bit(st->present, stop, start);
			bitmap_set(st->present, start, stop - start);
			st->nr_present += stop - start;
		}
		spin_unlock(&st->lock);
		cond_resched();
	}
}

void blobcr_state_set_timeout(struct blobcr_state *st, unsigned int ms)
{
	spin_lock(&st->lock);
	WRITE_ONCE(st->timeout, ms ? max(msecs_to_jiffies(ms), 1UL) : 0);
	spin_unlock(&st->lock);
	/* Re-evaluate the queue now: the work re-arms for the next deadline. */
	mod_delayed_work(st->wq, &st->timeout_work, 0);
}

void blobcr_state_requeue(struct blobcr_state *st, bool on)
{
	struct bio_list bios = BIO_EMPTY_LIST;
	struct blobcr_req *req;
	struct rb_node *n;
	struct bio *bio;

	spin_lock(&st->lock);
	WRITE_ONCE(st->requeue, on);
	spin_unlock(&st->lock);
	if (!on)
		return;

	/* The worker requeues what it holds; then take what is parked. */
	flush_work(&st->worker);
	spin_lock(&st->lock);
	bio_list_merge(&bios, &st->deferred);
	bio_list_init(&st->deferred);
	bio_list_merge(&bios, &st->held);
	bio_list_init(&st->held);
	/* Bounded by the parked bios: every record holds at least one. */
	for (n = rb_first(&st->fetches); n; n = rb_next(n)) {
		req = rb_entry(n, struct blobcr_req, rb);
		bio_list_merge(&bios, &req->bios);
		bio_list_init(&req->bios);
	}
	spin_unlock(&st->lock);

	while ((bio = bio_list_pop(&bios))) {
		bio->bi_status = BLK_STS_DM_REQUEUE;
		bio_endio(bio);
	}
}

void blobcr_state_flush(struct blobcr_state *st)
{
	flush_workqueue(st->wq);
}

static const char *mode_name(int mode)
{
	switch (mode) {
	case BLOBCR_MODE_RW:
		return "rw";
	case BLOBCR_MODE_RO:
		return "ro";
	default:
		return "fail";
	}
}

unsigned int blobcr_state_status(struct blobcr_state *st, char *result,
				 unsigned int maxlen)
{
	unsigned int sz = 0;

	spin_lock(&st->lock);
	DMEMIT("%llu/%llu %llu %llu %u %llu %llu %u %s",
	       st->nr_present, st->nr_extents, atomic64_read(&st->nr_dirty),
	       st->nr_committing, st->fetches_queued + st->fetches_inflight,
	       st->commits_done, st->last_version, st->nr_helpers,
	       mode_name(st->mode));
	spin_unlock(&st->lock);
	return sz;
}

static int parse_u64(const char *s, u64 *v)
{
	unsigned long long x;
	char dummy;

	if (sscanf(s, "%llu%c", &x, &dummy) != 1)
		return -EINVAL;
	*v = x;
	return 0;
}

/*
 * Queue FETCHes for the absent extents of [@start, @start + @count) that no
 * request covers, a chunk per lock hold.  Requests come from the slab, not
 * from the I/O path's reserve.  Stops with -EBUSY once
 * BLOBCR_MAX_QUEUED_FETCHES are queued.
 */
static int blobcr_prefetch(struct blobcr_state *st, u64 start, u64 count)
{
	struct blobcr_req *req, *spare = NULL;
	u64 e = start, end = start + count, next;
	bool queued = false;
	int r = 0;

	while (e < end && !r) {
		if (!spare) {
			spare = kmem_cache_alloc(blobcr_req_cache, GFP_KERNEL);
			if (!spare)
				return -ENOMEM;
		}
		next = min(end, e + BLOBCR_CHUNK);
		spin_lock(&st->lock);
		while (e < next) {
			e = find_next_zero_bit(st->present, next, e);
			if (e >= next)
				break;
			req = fetch_find(st, e);
			if (req) {
				e = req->extent + req->nr;
				continue;
			}
			req = st->last_fetch;
			if (req && req->extent + req->nr == e &&
			    req->nr < BLOBCR_MAX_RUN) {
				req->nr++;
				e++;
				continue;
			}
			if (st->fetches_queued >= BLOBCR_MAX_QUEUED_FETCHES) {
				DMWARN_LIMIT("%s: prefetch stopped at extent %llu: queue full",
					     st->name, e);
				r = -EBUSY;
				break;
			}
			if (!spare)
				break;
			req_queue(st, spare, BLOBCR_OP_FETCH, e, 1);
			spare = NULL;
			queued = true;
			e++;
		}
		if (queued)
			blobcr_wake_readers(st);
		queued = false;
		spin_unlock(&st->lock);
		if (fatal_signal_pending(current))
			r = -EINTR;
		cond_resched();
	}
	if (spare)
		kmem_cache_free(blobcr_req_cache, spare);
	return r;
}

static void drop_helpers(struct blobcr_state *st)
{
	struct blobcr_file *f;

	spin_lock(&st->lock);
	list_for_each_entry(f, &st->files, node) {
		if (!f->helper)
			continue;
		f->helper = false;
		st->nr_helpers--;
		blobcr_requeue_file(st, f);
	}
	spin_unlock(&st->lock);
	wake_up_interruptible(&st->req_wq);
}

int blobcr_state_message(struct blobcr_state *st, unsigned int argc,
			 char **argv, char *result, unsigned int maxlen,
			 bool *mode_changed)
{
	unsigned int sz = 0;
	u64 a, b;

	if (!strcasecmp(argv[0], "prefetch")) {
		if (argc != 3 || parse_u64(argv[1], &a) ||
		    parse_u64(argv[2], &b) || !b || a >= st->nr_extents ||
		    b > st->nr_extents - a) {
			DMWARN("%s: usage: prefetch <first_extent> <count>",
			       st->name);
			return -EINVAL;
		}
		return blobcr_prefetch(st, a, b);
	}
	if (!strcasecmp(argv[0], "drop_helper")) {
		if (argc != 1)
			return -EINVAL;
		drop_helpers(st);
		return 0;
	}
	if (!strcasecmp(argv[0], "mode")) {
		int mode;

		if (argc != 2)
			return -EINVAL;
		if (!strcasecmp(argv[1], "rw"))
			mode = BLOBCR_MODE_RW;
		else if (!strcasecmp(argv[1], "ro"))
			mode = BLOBCR_MODE_RO;
		else if (!strcasecmp(argv[1], "fail"))
			mode = BLOBCR_MODE_FAIL;
		else
			return -EINVAL;
		spin_lock(&st->lock);
		*mode_changed = st->mode != mode;
		WRITE_ONCE(st->mode, mode);
		spin_unlock(&st->lock);
		/* Parked bios see the new mode. */
		blobcr_kick(st);
		return 0;
	}
	if (!strcasecmp(argv[0], "dirty")) {
		if (argc != 1)
			return -EINVAL;
		spin_lock(&st->lock);
		DMEMIT("%lld %lld", atomic64_read(&st->nr_dirty),
		       atomic64_read(&st->nr_dirty) << st->extent_shift);
		spin_unlock(&st->lock);
		return 1;	/* a result for device-mapper to pass on */
	}
	return -EOPNOTSUPP;
}

/* ---- Life cycle. ---- */

void blobcr_state_release(struct kref *kref)
{
	struct blobcr_state *st = container_of(kref, struct blobcr_state,
					       kref);

	/*
	 * A commit or the worker may have armed the timeout after
	 * state_kill() cancelled it, and destroy_workqueue() does not wait
	 * for pending timers.
	 */
	cancel_delayed_work_sync(&st->timeout_work);
	destroy_workqueue(st->wq);
	mempool_exit(&st->req_pool);
	free_percpu(st->writes);
	kvfree(st->present);
	kvfree(st->dirty);
	kvfree(st->commit_set);
	kvfree(st->uploaded);
	kfree(st->misc_name);
	kfree(st->misc_nodename);
	kfree(st);
}

static unsigned long *alloc_bitmap(u64 nbits)
{
	return kvcalloc(BITS_TO_LONGS(nbits), sizeof(unsigned long),
			GFP_KERNEL);
}

static struct blobcr_state *state_create(const char *name,
					 const struct blobcr_geometry *geo,
					 char **error)
{
	struct blobcr_state *st;
	int r;

	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st) {
		*error = "Cannot allocate state";
		return ERR_PTR(-ENOMEM);
	}
	kref_init(&st->kref);
	strscpy(st->name, name, sizeof(st->name));
	st->geo = *geo;
	st->extent_shift = ilog2(geo->extent_sectors);
	st->nr_extents = DIV_ROUND_UP_ULL((u64)geo->dev_sectors,
					  geo->extent_sectors);
	spin_lock_init(&st->lock);
	st->mode = BLOBCR_MODE_RW;
	INIT_LIST_HEAD(&st->queue);
	st->fetches = RB_ROOT;
	hash_init(st->req_hash);
	INIT_LIST_HEAD(&st->files);
	init_waitqueue_head(&st->req_wq);
	init_waitqueue_head(&st->commit_wq);
	init_waitqueue_head(&st->drain_wq);
	atomic64_set(&st->nr_dirty, 0);
	bio_list_init(&st->deferred);
	bio_list_init(&st->held);
	init_llist_head(&st->overwrites_done);
	INIT_WORK(&st->worker, blobcr_worker);
	INIT_DELAYED_WORK(&st->timeout_work, blobcr_timeout_work);
	INIT_WORK(&st->commit_end_work, blobcr_commit_end);

	r = -ENOMEM;
	*error = "Cannot allocate bitmaps";
	st->present = alloc_bitmap(st->nr_extents);
	st->dirty = alloc_bitmap(st->nr_extents);
	st->commit_set = alloc_bitmap(st->nr_extents);
	st->uploaded = alloc_bitmap(st->nr_extents);
	if (!st->present || !st->dirty || !st->commit_set || !st->uploaded)
		goto out_free_bitmaps;

	*error = "Cannot allocate write counters";
	st->writes = alloc_percpu(unsigned long);
	if (!st->writes)
		goto out_free_bitmaps;

	*error = "Cannot allocate request pool";
	r = mempool_init_slab_pool(&st->req_pool, BLOBCR_MAX_RUN,
				   blobcr_req_cache);
	if (r)
		goto out_free_writes;

	*error = "Cannot allocate workqueue";
	r = -ENOMEM;
	st->wq = alloc_workqueue("dm-" DM_MSG_PREFIX, WQ_MEM_RECLAIM, 0);
	if (!st->wq)
		goto out_exit_pool;

	*error = "Cannot allocate device names";
	st->misc_name = kasprintf(GFP_KERNEL, "blobcr-%s", name);
	st->misc_nodename = kasprintf(GFP_KERNEL, "blobcr/%s", name);
	if (!st->misc_name || !st->misc_nodename)
		goto out_free_names;

	st->misc.minor = MISC_DYNAMIC_MINOR;
	st->misc.name = st->misc_name;
	st->misc.nodename = st->misc_nodename;
	st->misc.mode = 0600;
	st->misc.fops = &blobcr_channel_fops;
	*error = "Cannot register the channel device";
	r = misc_register(&st->misc);
	if (r)
		goto out_free_names;

	*error = NULL;
	return st;

out_free_names:
	kfree(st->misc_name);
	kfree(st->misc_nodename);
	destroy_workqueue(st->wq);
out_exit_pool:
	mempool_exit(&st->req_pool);
out_free_writes:
	free_percpu(st->writes);
out_free_bitmaps:
	kvfree(st->present);
	kvfree(st->dirty);
	kvfree(st->commit_set);
	kvfree(st->uploaded);
	kfree(st);
	return ERR_PTR(r);
}

int blobcr_state_get(const char *name, const struct blobcr_geometry *geo,
		     struct blobcr_state **stp, char **error)
{
	struct blobcr_state *st;
	int r = 0;

	if (DIV_ROUND_UP_ULL((u64)geo->dev_sectors, geo->extent_sectors) >
	    BLOBCR_MAX_EXTENTS) {
		*error = "Too many extents: at most 2147483648 (use larger extents)";
		return -EINVAL;
	}

	mutex_lock(&blobcr_states_mutex);
	list_for_each_entry(st, &blobcr_states, node) {
		if (strcmp(st->name, name))
			continue;
		if (st->geo.owner != geo->owner) {
			*error = "Channel in use by another device";
			r = -EBUSY;
			goto out_unlock;
		}
		if (st->geo.cache_dev != geo->cache_dev ||
		    st->geo.dev_sectors != geo->dev_sectors ||
		    st->geo.extent_sectors != geo->extent_sectors) {
			*error = "Channel in use with another geometry";
			r = -EBUSY;
			goto out_unlock;
		}
		st->nr_targets++;
		kref_get(&st->kref);
		*stp = st;
		goto out_unlock;
	}

	st = state_create(name, geo, error);
	if (IS_ERR(st)) {
		r = PTR_ERR(st);
		goto out_unlock;
	}
	st->nr_targets = 1;
	list_add(&st->node, &blobcr_states);
	*stp = st;

out_unlock:
	mutex_unlock(&blobcr_states_mutex);
	return r;
}

/*
 * No table left: fail everything still waiting, detach the helpers.  No
 * bio is in flight (device-mapper suspended the last table), so no
 * overwrite record is left once the first flush has run the worker.
 */
static void state_kill(struct blobcr_state *st)
{
	struct bio_list failed = BIO_EMPTY_LIST;
	struct blobcr_req *req, *tmp;
	struct blobcr_file *f;
	struct rb_node *n;

	flush_workqueue(st->wq);
	spin_lock(&st->lock);
	st->dead = true;
	list_for_each_entry(f, &st->files, node) {
		if (f->helper) {
			f->helper = false;
			st->nr_helpers--;
		}
		list_for_each_entry_safe(req, tmp, &f->inflight, list)
			blobcr_req_requeue(st, req);
	}
	list_for_each_entry_safe(req, tmp, &st->queue, list) {
		if (req->op == BLOBCR_OP_FETCH)
			blobcr_fetch_done(st, req, -ENODEV, &failed);
		else
			blobcr_commit_done(st, -ENODEV, 0);
	}
	/* Nothing can be left in the tree: every FETCH was on a list. */
	n = rb_first(&st->fetches);
	WARN_ON_ONCE(n);
	bio_list_merge(&failed, &st->deferred);
	bio_list_init(&st->deferred);
	bio_list_merge(&failed, &st->held);
	bio_list_init(&st->held);
	spin_unlock(&st->lock);

	blobcr_fail_bios(&failed);
	wake_up_all(&st->req_wq);
	wake_up_all(&st->commit_wq);
	wake_up_all(&st->drain_wq);
	cancel_delayed_work_sync(&st->timeout_work);
	flush_workqueue(st->wq);
}

void blobcr_state_put(struct blobcr_state *st)
{
	mutex_lock(&blobcr_states_mutex);
	if (!--st->nr_targets) {
		list_del(&st->node);
		/* After this no open() can find the state. */
		misc_deregister(&st->misc);
		state_kill(st);
	}
	mutex_unlock(&blobcr_states_mutex);
	kref_put(&st->kref, blobcr_state_release);
}

int blobcr_state_module_init(void)
{
	/* Named, so that tests can aim failslab at it (when not merged). */
	blobcr_req_cache = KMEM_CACHE(blobcr_req, 0);
	return blobcr_req_cache ? 0 : -ENOMEM;
}

void blobcr_state_module_exit(void)
{
	kmem_cache_destroy(blobcr_req_cache);
}
