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
 *   blobcr_state.lock		everything marked "lock" below; a spinlock,
 *				taken with interrupts off, never held across
 *				anything that sleeps
 *
 * The file operations run under misc_mtx only in ->open, which takes
 * nothing but blobcr_state.lock.
 */
#ifndef DM_BLOBCR_CORE_H
#define DM_BLOBCR_CORE_H

#include <linux/bio.h>
#include <linux/hashtable.h>
#include <linux/kref.h>
#include <linux/list.h>
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

enum blobcr_req_state {
	BLOBCR_REQ_QUEUED,	/* on blobcr_state.queue */
	BLOBCR_REQ_INFLIGHT,	/* on blobcr_file.inflight of its owner */
};

enum blobcr_commit_phase {
	BLOBCR_COMMIT_NONE,
	BLOBCR_COMMIT_DRAIN,	/* new writes held, waiting for old ones */
	BLOBCR_COMMIT_UPLOAD,	/* writes to non-uploaded commit extents held */
};

struct blobcr_file;

/*
 * A request to the helper.  Fields without a comment are set at creation
 * and constant after.
 */
struct blobcr_req {
	struct list_head list;		/* queue or owner->inflight; lock */
	struct hlist_node hnode;	/* blobcr_state.req_hash; lock */
	struct rb_node rb;		/* blobcr_state.fetches (FETCH); lock */
	u64 id;
	u16 op;
	u8 rstate;			/* enum blobcr_req_state; lock */
	bool uploaded_any;		/* COMMIT: an UPLOADED came; lock */
	struct blobcr_file *owner;	/* INFLIGHT: who read it; lock */
	u64 extent;
	u64 nr;				/* grows while QUEUED; lock */
	unsigned long queued_at;	/* jiffies; lock */
	struct bio_list bios;		/* FETCH: bios waiting; lock */
};

/* One open file of the character device. */
struct blobcr_file {
	struct blobcr_state *st;	/* holds a kref */
	struct list_head node;		/* blobcr_state.files; lock */
	struct list_head inflight;	/* requests read, unanswered; lock */
	bool helper;			/* attached; lock */
};

struct blobcr_state {
	struct list_head node;		/* registry; blobcr_states_mutex */
	unsigned int nr_targets;	/* blobcr_states_mutex */
	struct kref kref;		/* targets + open files */

	char name[BLOBCR_CHANNEL_MAX + 1];
	char *misc_name;
	char *misc_nodename;
	struct miscdevice misc;

	struct blobcr_geometry geo;
	u64 nr_extents;
	unsigned int extent_shift;

	spinlock_t lock;		/* see the lock order above */
	bool dead;			/* no table left; lock */
	int mode;			/* BLOBCR_MODE_*; lock, READ_ONCE */
	bool requeue;			/* noflush suspend: park nothing; lock */
	unsigned long timeout;		/* jiffies, 0: forever; lock */

	/*
	 * Bits of @present go from 0 to 1 under @lock and are tested without
	 * it on the read fast path: a present extent's data is in the cache
	 * device before its bit is set (the helper wrote it before replying,
	 * or a whole-extent write was started first), so a reader that sees
	 * the bit may read the cache device.
	 */
	unsigned long *present;
	/*
	 * @dirty: bits set under @lock, or without it by the write fast path
	 * (atomic set_bit) while commit_phase is NONE; the pointer changes
	 * only in the commit's swap, after the drain.
	 */
	unsigned long *dirty;
	unsigned long *commit_set;	/* lock */
	unsigned long *uploaded;	/* lock */
	u64 nr_present;			/* lock */
	atomic64_t nr_dirty;		/* see @dirty */

	struct list_head queue;		/* QUEUED requests, FIFO; lock */
	struct rb_root fetches;		/* FETCH requests by extent; lock */
	struct blobcr_req *last_fetch;	/* newest QUEUED FETCH; lock */
	DECLARE_HASHTABLE(req_hash, 8);	/* all requests by id; lock */
	u64 next_id;			/* lock */
	unsigned int fetches_queued;	/* lock */
	unsigned int fetches_inflight;	/* lock */
	struct list_head files;		/* open files; lock */
	unsigned int nr_helpers;	/* lock */
	wait_queue_head_t req_wq;	/* readers wait for requests */
	mempool_t req_pool;

	struct bio_list deferred;	/* bios for the worker; lock */
	struct bio_list held;		/* writes held by a commit; lock */
	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work timeout_work;

	/* Commit. */
	/*
	 * enum blobcr_commit_phase; written under @lock with
	 * smp_store_release(), read under @lock or by the write fast path with
	 * smp_load_acquire().
	 */
	int commit_phase;
	struct blobcr_req *commit_req;	/* lock */
	u64 nr_committing;		/* lock */
	u64 commit_seq;			/* commits started; lock */
	u64 commit_done_seq;		/* commits finished; lock */
	int commit_result;		/* of commit_done_seq; lock */
	u64 commit_version;		/* of commit_done_seq; lock */
	u64 commit_nr;			/* of commit_done_seq; lock */
	u64 nr_committing_last;		/* of commit_seq; lock */
	u64 commits_done;		/* successful; lock */
	u64 last_version;		/* lock */
	wait_queue_head_t commit_wq;	/* commit_done_seq changes */
	/*
	 * Writes remapped and not completed.  The write fast path increments
	 * it, then (smp_mb__after_atomic()) reads commit_phase and backs off
	 * unless NONE; the commit sets DRAIN, then (smp_mb()) waits on
	 * @drain_wq for zero.  One of the two sees the other.
	 */
	atomic_t inflight_writes;
	wait_queue_head_t drain_wq;
};

/* dm-blobcr-state.c, for the channel. */
struct blobcr_req *blobcr_req_lookup(struct blobcr_state *st, u64 id);
void blobcr_req_unqueue(struct blobcr_state *st, struct blobcr_req *req);
void blobcr_requeue_file(struct blobcr_state *st, struct blobcr_file *f);
void blobcr_fetch_done(struct blobcr_state *st, struct blobcr_req *req,
		       int status, struct bio_list *failed);
void blobcr_commit_done(struct blobcr_state *st, int status, u64 version);
void blobcr_uploaded(struct blobcr_state *st, u64 extent, u64 nr);
bool blobcr_fetching(struct blobcr_state *st, u64 extent);
void blobcr_kick(struct blobcr_state *st);
void blobcr_fail_bios(struct bio_list *bios);
int blobcr_commit(struct blobcr_state *st, struct blobcr_commit *c);
int blobcr_commit_wait(struct blobcr_state *st, struct blobcr_commit *c);
void blobcr_state_release(struct kref *kref);

/* dm-blobcr-channel.c, for the state. */
extern const struct file_operations blobcr_channel_fops;

#endif /* DM_BLOBCR_CORE_H */
