// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-blobcr: the character device /dev/blobcr/<channel_name>.
 *
 * A helper attaches (BLOBCR_IOC_ATTACH), read()s requests and write()s
 * replies.  Nothing a file hands in is trusted: every reply is checked
 * against the request it names, every range against the device.
 */

#include <linux/capability.h>
#include <linux/device-mapper.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "dm-blobcr-core.h"

#define BLOBCR_FEATURES	(BLOBCR_F_FETCH_RUNS | BLOBCR_F_COMMIT | \
			 BLOBCR_F_UPLOADED | BLOBCR_F_SET_BITMAP)

/* Words of a bitmap copied per step of GET_BITMAP and SET_BITMAP. */
#define BLOBCR_BITMAP_CHUNK	512

static int blobcr_open(struct inode *inode, struct file *file)
{
	/* misc_open() set private_data; misc_mtx keeps @st registered. */
	struct miscdevice *misc = file->private_data;
	struct blobcr_state *st = container_of(misc, struct blobcr_state,
					       misc);
	struct blobcr_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	INIT_LIST_HEAD(&f->inflight);
	f->st = st;
	kref_get(&st->kref);

	spin_lock(&st->lock);
	list_add(&f->node, &st->files);
	spin_unlock(&st->lock);

	file->private_data = f;
	return stream_open(inode, file);
}

static int blobcr_release(struct inode *inode, struct file *file)
{
	struct blobcr_file *f = file->private_data;
	struct blobcr_state *st = f->st;

	spin_lock(&st->lock);
	list_del(&f->node);
	if (f->helper) {
		f->helper = false;
		st->nr_helpers--;
		blobcr_requeue_file(st, f);
	}
	spin_unlock(&st->lock);

	kfree(f);
	kref_put(&st->kref, blobcr_state_release);
	return 0;
}

/* Take the oldest queued request, hand it to @f, fill @out. */
static bool take_request(struct blobcr_state *st, struct blobcr_file *f,
			 struct blobcr_request *out)
{
	struct blobcr_req *req;

	lockdep_assert_held(&st->lock);
	req = list_first_entry_or_null(&st->queue, struct blobcr_req, list);
	if (!req)
		return false;
	blobcr_req_take(st, req, f);

	memset(out, 0, sizeof(*out));
	out->id = req->id;
	out->op = req->op;
	out->extent = req->extent;
	out->nr_extents = req->nr;
	if (req->op == BLOBCR_OP_FETCH && bio_list_empty(&req->bios))
		out->flags = BLOBCR_REQ_F_PREFETCH;
	return true;
}

/* A copy to userspace failed: give the request back if still ours. */
static void untake_request(struct blobcr_state *st, struct blobcr_file *f,
			   u64 id)
{
	struct blobcr_req *req;

	spin_lock(&st->lock);
	req = blobcr_req_lookup(st, id);
	if (req && req->rstate == BLOBCR_REQ_INFLIGHT && req->owner == f) {
		blobcr_req_requeue(st, req);
		blobcr_wake_readers(st);
	}
	spin_unlock(&st->lock);
}

static ssize_t blobcr_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	struct blobcr_file *f = file->private_data;
	struct blobcr_state *st = f->st;
	struct blobcr_request rq;
	size_t done = 0;
	int r;

	if (count < sizeof(rq))
		return -EINVAL;
	count = min_t(size_t, count / sizeof(rq), BLOBCR_READ_BATCH);

	for (;;) {
		spin_lock(&st->lock);
		if (st->dead) {
			r = -ENODEV;
			goto out_unlock;
		}
		if (!f->helper) {
			r = -ENOTCONN;
			goto out_unlock;
		}
		if (take_request(st, f, &rq))
			break;
		spin_unlock(&st->lock);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		r = wait_event_interruptible(st->req_wq,
					     READ_ONCE(st->dead) ||
					     !READ_ONCE(f->helper) ||
					     !list_empty(&st->queue));
		if (r)
			return r;
	}

	for (;;) {
		spin_unlock(&st->lock);
		if (copy_to_user(buf + done * sizeof(rq), &rq, sizeof(rq))) {
			untake_request(st, f, rq.id);
			return done ? done * sizeof(rq) : -EFAULT;
		}
		if (++done == count)
			break;
		spin_lock(&st->lock);
		if (st->dead || !f->helper || !take_request(st, f, &rq))
			goto out_unlock_done;
	}
	return done * sizeof(rq);

out_unlock_done:
	spin_unlock(&st->lock);
	return done * sizeof(rq);
out_unlock:
	spin_unlock(&st->lock);
	return r;
}

/*
 * The helper's COMMIT status reaches the committer only if it is one of
 * these, which mean the same to a committer as to the helper; anything
 * else (a kernel-internal code, or one the ioctl gives its own meaning,
 * such as EBUSY, EINVAL or ESTALE) becomes EIO.
 */
static int commit_status(int status)
{
	switch (status) {
	case 0:
	case -EIO:
	case -ENOMEM:
	case -ENOSPC:
	case -EDQUOT:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EPROTO:
		return status;
	default:
		return -EIO;
	}
}

/* Apply one reply.  Returns 0 or -EINVAL; changes nothing on error. */
static int handle_reply(struct blobcr_state *st, struct blobcr_file *f,
			const struct blobcr_reply *rp)
{
	struct bio_list failed = BIO_EMPTY_LIST;
	struct blobcr_req *req;
	bool uploaded = false;
	unsigned int i;
	int r = -EINVAL;
	u64 seq = 0;

	if (rp->flags || rp->status > 0 || rp->status < -MAX_ERRNO)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(rp->reserved); i++)
		if (rp->reserved[i])
			return -EINVAL;

	spin_lock(&st->lock);
	if (st->dead) {
		r = -ENODEV;
		goto out_unlock;
	}
	req = blobcr_req_lookup(st, rp->id);
	if (!req || req->rstate != BLOBCR_REQ_INFLIGHT || req->owner != f)
		goto out_unlock;

	switch (rp->op) {
	case BLOBCR_OP_FETCH:
		if (req->op != BLOBCR_OP_FETCH || rp->extent != req->extent ||
		    rp->nr_extents != req->nr || rp->version)
			goto out_unlock;
		blobcr_fetch_done(st, req, rp->status, &failed);
		break;
	case BLOBCR_OP_COMMIT:
		if (req->op != BLOBCR_OP_COMMIT || rp->extent ||
		    rp->nr_extents)
			goto out_unlock;
		blobcr_commit_done(st, commit_status(rp->status), rp->version);
		break;
	case BLOBCR_OP_UPLOADED:
		if (req->op != BLOBCR_OP_COMMIT || rp->status || rp->version ||
		    !rp->nr_extents || rp->extent >= st->nr_extents ||
		    rp->nr_extents > st->nr_extents - rp->extent)
			goto out_unlock;
		req->uploaded_any = true;
		uploaded = true;
		seq = st->commit_seq;
		break;
	default:
		goto out_unlock;
	}
	r = 0;

out_unlock:
	spin_unlock(&st->lock);
	/* The range may be the whole device: a chunk per lock hold. */
	if (uploaded)
		blobcr_uploaded(st, seq, rp->extent, rp->nr_extents);
	if (!bio_list_empty(&failed)) {
		DMERR_LIMIT("%s: helper failed a fetch: %d", st->name,
			    rp->status);
		blobcr_fail_bios(&failed);
	}
	return r;
}

static ssize_t blobcr_write(struct file *file, const char __user *buf,
			    size_t count, loff_t *ppos)
{
	struct blobcr_file *f = file->private_data;
	struct blobcr_state *st = f->st;
	struct blobcr_reply rp;
	size_t done;
	int r = 0;

	if (!count || count % sizeof(rp))
		return -EINVAL;
	if (!READ_ONCE(f->helper))
		return -ENOTCONN;

	for (done = 0; done < count; done += sizeof(rp)) {
		if (copy_from_user(&rp, buf + done, sizeof(rp))) {
			r = -EFAULT;
			break;
		}
		r = handle_reply(st, f, &rp);
		if (r)
			break;
	}
	return done ? done : r;
}

static __poll_t blobcr_poll(struct file *file, poll_table *wait)
{
	struct blobcr_file *f = file->private_data;
	struct blobcr_state *st = f->st;
	__poll_t mask = EPOLLOUT | EPOLLWRNORM;

	poll_wait(file, &st->req_wq, wait);
	spin_lock(&st->lock);
	if (st->dead)
		mask |= EPOLLHUP | EPOLLERR;
	else if (f->helper && !list_empty(&st->queue))
		mask |= EPOLLIN | EPOLLRDNORM;
	spin_unlock(&st->lock);
	return mask;
}

static bool all_zero(const __u64 *v, unsigned int n)
{
	while (n--)
		if (v[n])
			return false;
	return true;
}

static long ioc_attach(struct blobcr_state *st, struct blobcr_file *f,
		       struct file *file, void __user *argp)
{
	struct blobcr_attach a;

	if (copy_from_user(&a, argp, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.pad || !all_zero(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	if ((file->f_mode & (FMODE_READ | FMODE_WRITE)) !=
	    (FMODE_READ | FMODE_WRITE))
		return -EBADF;

	spin_lock(&st->lock);
	if (st->dead) {
		spin_unlock(&st->lock);
		return -ENODEV;
	}
	if (!f->helper) {
		f->helper = true;
		st->nr_helpers++;
	}
	spin_unlock(&st->lock);

	a.features = BLOBCR_FEATURES;
	return copy_to_user(argp, &a, sizeof(a)) ? -EFAULT : 0;
}

static long ioc_get_info(struct blobcr_state *st, void __user *argp)
{
	struct blobcr_info info;

	memset(&info, 0, sizeof(info));
	info.features = BLOBCR_FEATURES;
	info.nr_extents = st->nr_extents;
	info.dev_sectors = st->geo.dev_sectors;
	info.extent_sectors = st->geo.extent_sectors;
	info.cache_major = MAJOR(st->geo.cache_dev);
	info.cache_minor = MINOR(st->geo.cache_dev);

	spin_lock(&st->lock);
	info.mode = st->mode;
	info.nr_present = st->nr_present;
	info.nr_dirty = atomic64_read(&st->nr_dirty);
	info.nr_committing = st->nr_committing;
	info.commits_done = st->commits_done;
	info.last_version = st->last_version;
	info.fetches_queued = st->fetches_queued;
	info.fetches_inflight = st->fetches_inflight;
	info.nr_helpers = st->nr_helpers;
	spin_unlock(&st->lock);

	return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
}

static int check_bitmap_arg(struct blobcr_state *st, struct blobcr_bitmap *b,
			    void __user *argp)
{
	if (copy_from_user(b, argp, sizeof(*b)))
		return -EFAULT;
	if (b->which > BLOBCR_BITMAP_COMMIT || b->flags ||
	    !all_zero(b->reserved, ARRAY_SIZE(b->reserved)))
		return -EINVAL;
	if (b->start % 64 || !b->count || b->start >= st->nr_extents ||
	    b->count > st->nr_extents - b->start)
		return -EINVAL;
	return 0;
}

/*
 * Copy extents [@first, @end) of bitmap @which into @buf, 64 per word
 * (@first is a multiple of 64, and @end - @first at most
 * BLOBCR_BITMAP_CHUNK * 64).
 */
static void bitmap_get_chunk(struct blobcr_state *st, u32 which, u64 *buf,
			     u64 first, u64 end)
{
	unsigned long *map;

	spin_lock(&st->lock);
	if (which == BLOBCR_BITMAP_PRESENT)
		map = st->present;
	else if (which == BLOBCR_BITMAP_DIRTY)
		map = st->dirty;
	else
		map = st->commit_set;
	bitmap_to_arr64(buf, map + BIT_WORD(first), end - first);
	spin_unlock(&st->lock);
}

/*
 * Set the bits of @bits (extents [@first, @end), as above, in the kernel's
 * layout) in bitmap @which; bits are only ever added.  Dirty needs the
 * extent present and is set a word at a time, atomically (the write fast
 * path sets bits without the lock); present skips extents being fetched or
 * overwritten.
 */
static void bitmap_set_chunk(struct blobcr_state *st, u32 which,
			     const unsigned long *bits, u64 first, u64 end)
{
	u64 w, base = BIT_WORD(first), words = BITS_TO_LONGS(end - first);
	unsigned long add, old;
	unsigned int b;

	spin_lock(&st->lock);
	for (w = 0; w < words; w++) {
		if (which == BLOBCR_BITMAP_DIRTY) {
			add = bits[w] & st->present[base + w];
			old = set_mask_bits(&st->dirty[base + w], 0, add);
			atomic64_add(hweight_long(add & ~old), &st->nr_dirty);
			continue;
		}
		add = bits[w] & ~st->present[base + w];
		for_each_set_bit(b, &add, BITS_PER_LONG) {
			u64 e = (base + w) * BITS_PER_LONG + b;

			if (blobcr_fetching(st, e))
				continue;
			__set_bit(e, st->present);
			st->nr_present++;
		}
	}
	spin_unlock(&st->lock);
}

/* GET_BITMAP and SET_BITMAP: BLOBCR_BITMAP_CHUNK words at a time. */
static long ioc_bitmap(struct blobcr_state *st, void __user *argp, bool set)
{
	struct blobcr_bitmap b;
	unsigned long *bits = NULL;
	u64 __user *uaddr;
	u64 w, words, *buf;
	int r;

	r = check_bitmap_arg(st, &b, argp);
	if (r)
		return r;
	if (set && b.which == BLOBCR_BITMAP_COMMIT)
		return -EINVAL;
	buf = kmalloc_array(BLOBCR_BITMAP_CHUNK, sizeof(u64), GFP_KERNEL);
	if (set)
		bits = bitmap_alloc(BLOBCR_BITMAP_CHUNK * 64, GFP_KERNEL);
	if (!buf || (set && !bits)) {
		r = -ENOMEM;
		goto out_free;
	}
	uaddr = u64_to_user_ptr(b.addr);
	words = DIV_ROUND_UP(b.count, 64);

	for (w = 0; w < words; w += BLOBCR_BITMAP_CHUNK) {
		unsigned int n = min_t(u64, BLOBCR_BITMAP_CHUNK, words - w);
		size_t len = n * sizeof(u64);
		u64 first = b.start + w * 64;
		u64 end = min(b.start + b.count, first + (u64)n * 64);

		if (set) {
			if (copy_from_user(buf, uaddr + w, len)) {
				r = -EFAULT;
				break;
			}
			bitmap_from_arr64(bits, buf, end - first);
			bitmap_set_chunk(st, b.which, bits, first, end);
		} else {
			bitmap_get_chunk(st, b.which, buf, first, end);
			if (copy_to_user(uaddr + w, buf, len)) {
				r = -EFAULT;
				break;
			}
		}
		/* The bitmap may have 2^31 bits: give the CPU back. */
		cond_resched();
	}
	/* Bios parked in the worker's list see the new bits. */
	if (set)
		blobcr_kick(st);
out_free:
	bitmap_free(bits);
	kfree(buf);
	return r;
}

static long ioc_commit(struct blobcr_state *st, struct file *file,
		       void __user *argp, bool wait)
{
	struct blobcr_commit c;
	int r;

	if (!(file->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&c, argp, sizeof(c)))
		return -EFAULT;
	if ((c.flags & ~BLOBCR_COMMIT_F_NOWAIT) || c.pad || c.version ||
	    c.nr_extents || c.pause_ns ||
	    !all_zero(c.reserved, ARRAY_SIZE(c.reserved)))
		return -EINVAL;
	if (wait) {
		if (c.flags || !c.commit_id)
			return -EINVAL;
		r = blobcr_commit_wait(st, &c);
	} else {
		if (c.commit_id)
			return -EINVAL;
		r = blobcr_commit(st, &c);
	}
	if (copy_to_user(argp, &c, sizeof(c)))
		return r ? r : -EFAULT;
	return r;
}

static long blobcr_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	struct blobcr_file *f = file->private_data;
	struct blobcr_state *st = f->st;
	void __user *argp = (void __user *)arg;

	if (READ_ONCE(st->dead))
		return -ENODEV;

	switch (cmd) {
	case BLOBCR_IOC_ATTACH:
	case BLOBCR_IOC_SET_BITMAP:
	case BLOBCR_IOC_COMMIT:
	case BLOBCR_IOC_COMMIT_WAIT:
		/* They change the device or serve it: as ublk's control path. */
		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		break;
	}

	switch (cmd) {
	case BLOBCR_IOC_ATTACH:
		return ioc_attach(st, f, file, argp);
	case BLOBCR_IOC_GET_INFO:
		return ioc_get_info(st, argp);
	case BLOBCR_IOC_GET_BITMAP:
		return ioc_bitmap(st, argp, false);
	case BLOBCR_IOC_SET_BITMAP:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		return ioc_bitmap(st, argp, true);
	case BLOBCR_IOC_COMMIT:
		return ioc_commit(st, file, argp, false);
	case BLOBCR_IOC_COMMIT_WAIT:
		return ioc_commit(st, file, argp, true);
	default:
		return -ENOTTY;
	}
}

const struct file_operations blobcr_channel_fops = {
	.owner = THIS_MODULE,
	.open = blobcr_open,
	.release = blobcr_release,
	.read = blobcr_read,
	.write = blobcr_write,
	.poll = blobcr_poll,
	.unlocked_ioctl = blobcr_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
