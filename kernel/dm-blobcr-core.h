/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-blobcr: internals shared by the state (dm-blobcr-state.c) and the
 * channel's file operations (dm-blobcr-channel.c).  The target does not
 * include this file.
 *
 * Lock order, outer first:
 *
 *   blobcr_states_mutex	registry of states, creation and removal of the
 *				character devices (misc_mtx nests inside)
 *   blobcr_state.lock		everything marked "lock" below; a spinlock
 *				never taken from interrupt context (bio
 *				completions reach the state through an llist
 *				and the worker), so plain spin_lock(); never
 *				held across anything that sleeps, and never
 *				over more than BLOBCR_CHUNK extents of a bitmap
 *
 * The file operations run under misc_mtx only in ->open, which takes
 * nothing but blobcr_state.lock.
 */
#ifndef DM_BLOBCR_CORE_H
#define DM_BLOBCR_CORE_H

#include <linux/bio.h>
#include <linux/cache.h>
#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/mempool.h>
#include <linux/miscdevice.h>
#include <linux/rbtree.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <uapi/linux/dm-blobcr.h>

#include "dm-blobcr-state.h"

#define DM_MSG_PREFIX "blobcr"

/* Longest run of extents one FETCH covers. */
#define BLOBCR_MAX_RUN		64

/* Requests a helper reads at most per read() call. */
#define BLOBCR_READ_BATCH	64

/*
 * Extents of a bitmap handled per hold of blobcr_state.lock by every loop
 * whose length a table, a helper or an operator chooses (512 words).
 */
#define BLOBCR_CHUNK		(512 * BITS_PER_LONG)

/* The prefetch message stops queueing at this many queued FETCHes. */
#define BLOBCR_MAX_QUEUED_FETCHES	16384

/*
 * A whole-extent write in flight to an absent extent (kernel only, never
 * queued, hashed or seen by a helper): it sits in blobcr_state.fetches so
 * that other bios on the extent park behind it, like behind a FETCH.
 */
#define BLOBCR_OP_OVERWRITE	0x100

enum blobcr_req_state {
	BLOBCR_REQ_QUEUED,	/* on blobcr_state.queue */
	BLOBCR_REQ_INFLIGHT,	/* on blobcr_file.inflight of its owner */
};

enum blobcr_commit_phase {
	BLOBCR_COMMIT_NONE,
	BLOBCR_COMMIT_DRAIN,	/* new writes held, waiting for old ones */
	BLOBCR_COMMIT_UPLOAD,	/* writes to non-uploaded commit extents held */
	/*
	 * The result is known; commit_end_work clears the bitmaps (merging
	 * on failure) chunk by chunk; writes are held as in UPLOAD until then.
	 */
	BLOBCR_COMMIT_ENDING,
};

struct blobcr_file;

/*
 * A request to the helper, or an overwrite.  Fields without a comment are
 * set at creation and constant after.
 */
struct blobcr_req {
	struct list_head list;		/* queue or owner->inflight; lock */
	struct hlist_node hnode;	/* blobcr_state.req_hash; lock */
	struct rb_node rb;		/* FETCH, OVERWRITE: fetches; lock */
	u64 id;
	u16 op;
	u8 rstate;			/* enum blobcr_req_state; lock */
	bool uploaded_any;		/* COMMIT: an UPLOADED came; lock */
	struct blobcr_file *owner;	/* INFLIGHT: who read it; lock */
	u64 extent;
	u64 nr;				/* grows while QUEUED; lock */
	unsigned long queued_at;	/* jiffies; lock */
	struct bio_list bios;		/* FETCH, OVERWRITE: bios waiting; lock */
	/* OVERWRITE: set by the write's end_io, read by the worker. */
	struct llist_node done;
	int status;
};

/* One open file of the character device. */
struct blobcr_file {
	struct blobcr_state *st;	/* holds a kref */
	struct list_head node;		/* blobcr_state.files; lock */
	struct list_head inflight;	/* requests read, unanswered; lock */
	bool helper;			/* attached; lock */
};

struct blobcr_state {
	/*
	 * Read by every bio's .map; written only at creation, by a mode
	 * change or by a commit.  Kept off the lock's cache line.
	 */
	unsigned int extent_shift;
	u64 nr_extents;
	int mode;			/* BLOBCR_MODE_*; lock, READ_ONCE */
	/*
	 * Bits of @present go from 0 to 1 under @lock and are tested without
	 * it by .map: a present extent's data is in the cache device before
	 * its bit is set (the helper wrote it before replying, or a
	 * whole-extent write completed), so a bio that sees the bit may use
	 * the cache device.
	 */
	unsigned long *present;
	/*
	 * @dirty: bits set under @lock, or without it (atomic set_bit) by
	 * .map between writes_enter() and the write's end; a bit is set only
	 * on a present extent.  The pointer changes only in the commit's
	 * swap, after the drain.
	 */
	unsigned long *dirty;
	/*
	 * enum blobcr_commit_phase; written under @lock (to NONE and DRAIN
	 * with smp_store_release()), read under @lock or by writes_enter()
	 * with smp_load_acquire().
	 */
	int commit_phase;
	/*
	 * Writes remapped and not completed, per CPU (the model is
	 * percpu_rw_semaphore's read_count): only the modular sum means
	 * something.  writes_enter() increments, then (smp_mb()) reads
	 * commit_phase and backs off, on the same CPU, unless NONE; the
	 * commit sets DRAIN, then (smp_mb()) waits on @drain_wq for a zero
	 * sum.  One of the two sees the other.  Under @lock, a write decided
	 * while commit_phase is not DRAIN is counted without the check (the
	 * commit sets DRAIN under @lock).
	 */
	unsigned long __percpu *writes;

	spinlock_t lock ____cacheline_aligned_in_smp;	/* see the lock order */
	struct list_head node;		/* registry; blobcr_states_mutex */
	unsigned int nr_targets;	/* blobcr_states_mutex */
	struct kref kref;		/* targets + open files */

	char name[BLOBCR_CHANNEL_MAX + 1];
	char *misc_name;
	char *misc_nodename;
	struct miscdevice misc;

	struct blobcr_geometry geo;

	bool dead;			/* no table left; lock */
	bool requeue;			/* noflush suspend: park nothing; lock */
	bool req_starved;		/* a bio waits for a free request; lock */
	unsigned long timeout;		/* jiffies, 0: forever; lock */

	unsigned long *commit_set;	/* lock */
	unsigned long *uploaded;	/* lock */
	u64 nr_present;			/* lock */
	atomic64_t nr_dirty;		/* see @dirty */

	struct list_head queue;		/* QUEUED requests, FIFO; lock */
	struct rb_root fetches;		/* FETCH and OVERWRITE by extent; lock */
	struct blobcr_req *last_fetch;	/* newest QUEUED FETCH; lock */
	DECLARE_HASHTABLE(req_hash, 8);	/* helper requests by id; lock */
	u64 next_id;			/* lock */
	unsigned int fetches_queued;	/* lock */
	unsigned int fetches_inflight;	/* lock */
	struct list_head files;		/* open files; lock */
	unsigned int nr_helpers;	/* lock */
	wait_queue_head_t req_wq;	/* readers wait for requests */
	/* The I/O path's reserve; prefetch and commit allocate outside it. */
	mempool_t req_pool;

	struct bio_list deferred;	/* bios for the worker; lock */
	struct bio_list held;		/* writes held by a commit; lock */
	struct llist_head overwrites_done;	/* completed OVERWRITEs */
	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work timeout_work;
	struct work_struct commit_end_work;

	/* Commit. */
	struct blobcr_req *commit_req;	/* lock */
	u64 nr_committing;		/* lock */
	u64 commit_seq;			/* commits started; lock */
	u64 commit_done_seq;		/* commits finished; lock */
	int commit_result;		/* of the last commit ended; lock */
	u64 commit_version;		/* of the last commit ended; lock */
	u64 commit_nr;			/* of the last commit ended; lock */
	u64 nr_committing_last;		/* of commit_seq; lock */
	u64 commits_done;		/* successful; lock */
	u64 last_version;		/* lock */
	wait_queue_head_t commit_wq;	/* commit_done_seq changes */
	wait_queue_head_t drain_wq;	/* the sum of @writes may be zero */
};

/* The requests' slab cache (dm-blobcr-state.c), created at module load. */
extern struct kmem_cache *blobcr_req_cache;

/* dm-blobcr-state.c, for the channel.  All but the last need st->lock. */
struct blobcr_req *blobcr_req_lookup(struct blobcr_state *st, u64 id);
void blobcr_req_take(struct blobcr_state *st, struct blobcr_req *req,
		     struct blobcr_file *f);
void blobcr_req_requeue(struct blobcr_state *st, struct blobcr_req *req);
void blobcr_requeue_file(struct blobcr_state *st, struct blobcr_file *f);
void blobcr_fetch_done(struct blobcr_state *st, struct blobcr_req *req,
		       int status, struct bio_list *failed);
void blobcr_commit_done(struct blobcr_state *st, int status, u64 version);
bool blobcr_fetching(struct blobcr_state *st, u64 extent);
void blobcr_kick(struct blobcr_state *st);
void blobcr_wake_readers(struct blobcr_state *st);

/* dm-blobcr-state.c, for the channel; process context, may sleep. */
void blobcr_uploaded(struct blobcr_state *st, u64 seq, u64 extent, u64 nr);
void blobcr_fail_bios(struct bio_list *bios);
int blobcr_commit(struct blobcr_state *st, struct blobcr_commit *c);
int blobcr_commit_wait(struct blobcr_state *st, struct blobcr_commit *c);
void blobcr_state_release(struct kref *kref);

/* dm-blobcr-channel.c, for the state. */
extern const struct file_operations blobcr_channel_fops;

#endif /* DM_BLOBCR_CORE_H */
