// SPDX-License-Identifier: GPL-2.0
/*
 * checkpoint.c - one checkpoint of a VM: quiesce it, take the commit set of
 * every one of its disks in that same pause (one cut across its disks),
 * resume it, and wait for the versions in a thread of the checkpoint's
 * own, so that the VM goes on while blobcrd uploads.
 *
 * One checkpoint of a VM at a time, from its start to its versions (the
 * target takes one commit at a time): vm->busy; a commit under way that
 * this proxy did not start (a proxy that died, blobcrctl commit) is waited
 * for too.  Checkpoints of different VMs share nothing.
 *
 * A request the guest sends again after a reconnection (serve.c's HELLO)
 * carries the frame id of the first: the checkpoint that one started
 * answers it, so that it is not taken twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "proxyd.h"

/* How long a checkpoint waits for a commit under way that is not its own. */
#define FOREIGN_COMMIT_WAIT_MS (10 * 60 * 1000)

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static struct ckpt *slot(struct vm *vm, uint64_t id)
{
	return &vm->recent[id % VM_RECENT];
}

struct publish {
	struct vm *vm; /* referenced */
	uint64_t id, t0;
	struct ckpt c; /* the commits to wait for */
};

/* Record @c as the state of its checkpoint (under vm->lock) and wake waiters. */
static void record(struct vm *vm, const struct ckpt *c, bool done)
{
	pthread_mutex_lock(&vm->lock);
	*slot(vm, c->id) = *c;
	if (done)
		vm->busy = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void close_disks(struct ckpt *c)
{
	for (int i = 0; i < c->ndisks; i++)
		if (c->disks[i].fd >= 0) {
			close(c->disks[i].fd);
			c->disks[i].fd = -1;
		}
}

static void clear_labels(struct vm *vm)
{
	for (int i = 0; i < vm->cfg.ndisks; i++)
		host_set_label(vm->cfg.disks[i], NULL);
}

static void *publish_thread(void *arg)
{
	struct publish *p = arg;
	struct ckpt *c = &p->c;
	struct vm *vm = p->vm;

	for (int i = 0; i < c->ndisks; i++) {
		int err;

		if (c->disks[i].fd < 0)
			continue;
		err = host_commit_wait(c->disks[i].fd, c->disks[i].commit_id,
				       &c->disks[i].version);
		if (err && c->state >= 0) {
			c->state = -1;
			c->err = -EIO;
			snprintf(c->msg, sizeof(c->msg),
				 "the upload of %s's snapshot failed: %s (see its blobcrd log)",
				 vm->cfg.disks[i], strerror(-err));
		}
	}
	close_disks(c);
	clear_labels(vm);
	c->published_us = now_us() - p->t0;
	if (c->state >= 0) {
		c->state = PROXY_STATE_DURABLE;
		log_info("%s: checkpoint %" PRIu64 " durable after %.1f ms",
			 vm->name, c->id, c->published_us / 1e3);
	} else {
		log_err("%s: checkpoint %" PRIu64 " failed: %s", vm->name, c->id,
			c->msg);
	}
	record(vm, c, true);
	vm_put(vm);
	free(p);
	return NULL;
}

/*
 * Wait (bounded) until the disk open at @fd has no commit under way: one
 * that a proxy killed after its cut, or blobcrctl commit, started.
 */
static int wait_foreign_commit(struct vm *vm, const char *dm, int fd,
			       struct blobcr_info *in)
{
	uint64_t until = blobcr_now_ms() + FOREIGN_COMMIT_WAIT_MS;
	int err = 0;

	if (in->nr_committing)
		log_info("%s: waiting for the commit under way on %s", vm->name, dm);
	while (!err && in->nr_committing) {
		if (blobcr_now_ms() >= until)
			return -EBUSY;
		usleep(100000);
		err = host_info(fd, in);
	}
	return err;
}

/* Open every disk's channel, learn its image, set its label. */
static int open_disks(struct vm *vm, const char *label, struct ckpt *c)
{
	for (int i = 0; i < vm->cfg.ndisks; i++) {
		const char *dm = vm->cfg.disks[i];
		struct blobcr_info in;
		int err;

		c->disks[i].fd = -1;
		c->ndisks = i + 1;
		snprintf(c->disks[i].device, sizeof(c->disks[i].device), "%s", dm);
		err = host_open_channel(dm, &c->disks[i].fd);
		if (!err)
			err = host_info(c->disks[i].fd, &in);
		if (!err)
			err = wait_foreign_commit(vm, dm, c->disks[i].fd, &in);
		if (err) {
			snprintf(c->msg, sizeof(c->msg), "disk %s: %s", dm,
				 err == -EBUSY ? "a commit under way did not finish in 10 minutes" :
				 err == -ENOENT ? "no such device" : strerror(-err));
			return err;
		}
		c->disks[i].bytes = (uint64_t)in.extent_sectors * 512; /* for now */
		if (host_commit_image(dm, c->disks[i].image, sizeof(c->disks[i].image)))
			snprintf(c->disks[i].image, sizeof(c->disks[i].image), "%s", dm);
		err = host_set_label(dm, label);
		if (err) {
			snprintf(c->msg, sizeof(c->msg), "disk %s: cannot hand the label to blobcrd: %s",
				 dm, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* The recent checkpoint that request @req_id started, under vm->lock. */
static const struct ckpt *find_request(struct vm *vm, uint64_t req_id)
{
	for (int i = 0; req_id && i < VM_RECENT; i++)
		if (vm->recent[i].id && vm->recent[i].req_id == req_id)
			return &vm->recent[i];
	return NULL;
}

int ckpt_run(struct vm *vm, uint64_t req_id, uint32_t flags, const char *label,
	     struct ckpt *out)
{
	struct ckpt c = { .state = 0, .req_id = req_id };
	const struct ckpt *again;
	struct publish *p;
	struct quiesce *q = NULL;
	uint64_t t0 = now_us();
	pthread_t th;
	char rmsg[200];
	int err, committed = 0;

	pthread_mutex_lock(&vm->lock);
	while (!(again = find_request(vm, req_id)) && vm->busy)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (again) {
		c.id = again->id;
		pthread_mutex_unlock(&vm->lock);
		log_info("%s: the request of checkpoint %" PRIu64 " came again",
			 vm->name, c.id);
		return ckpt_wait(vm, c.id, !(flags & PROXY_CKPT_CUT), out);
	}
	vm->busy = true;
	c.id = vm->next_id++;
	*slot(vm, c.id) = c; /* running: for the request sent again meanwhile */
	pthread_mutex_unlock(&vm->lock);

	p = calloc(1, sizeof(*p));
	if (!p) {
		err = -ENOMEM;
		snprintf(c.msg, sizeof(c.msg), "out of memory");
		goto out_fail;
	}
	err = open_disks(vm, label, &c);
	if (!err)
		err = quiesce_vm(vm, &q, c.msg, sizeof(c.msg));
	if (err)
		goto out_fail;
	for (int i = 0; i < c.ndisks; i++) {
		struct blobcr_commit cm;
		uint64_t extent_bytes = c.disks[i].bytes;

		err = host_commit_nowait(c.disks[i].fd, &cm);
		if (err) {
			/* The cut is no longer one: stop here, and say so. */
			snprintf(c.msg, sizeof(c.msg), "the snapshot of %s failed: %s%s",
				 vm->cfg.disks[i], strerror(-err), i ?
				 " (the disks before it were committed)" : "");
			break;
		}
		committed++;
		c.disks[i].commit_id = cm.commit_id;
		c.disks[i].extents = cm.nr_extents;
		c.disks[i].bytes = cm.nr_extents * extent_bytes;
		if (cm.pause_ns / 1000 > c.held_us)
			c.held_us = cm.pause_ns / 1000;
	}
	if (resume_vm(q, rmsg, sizeof(rmsg))) {
		log_err("%s: cannot resume it: %s", vm->name, rmsg);
		if (!err) {
			err = -EIO;
			snprintf(c.msg, sizeof(c.msg), "cannot resume the VM: %s", rmsg);
		}
	}
	quiesce_times(q, &c.paused_us, &c.frozen_us);
	quiesce_free(q);
	for (int i = committed; i < c.ndisks; i++)
		if (c.disks[i].fd >= 0) {
			close(c.disks[i].fd);
			c.disks[i].fd = -1;
		}
	if (!committed)
		goto out_fail;
	if (err) {
		c.state = -1;
		c.err = err;
	} else {
		c.state = PROXY_STATE_CUT;
	}
	log_info("%s: checkpoint %" PRIu64 " cut: writes held %.3f ms, paused %.1f ms, frozen %.1f ms",
		 vm->name, c.id, c.held_us / 1e3, c.paused_us / 1e3,
		 c.frozen_us / 1e3);
	record(vm, &c, false);
	vm_get(vm);
	*p = (struct publish){ .vm = vm, .id = c.id, .t0 = t0, .c = c };
	if (pthread_create(&th, NULL, publish_thread, p))
		publish_thread(p); /* wait here instead: the versions are the point */
	else
		pthread_detach(th);
	if (!err && (flags & PROXY_CKPT_CUT)) {
		*out = c;
		return 0;
	}
	return ckpt_wait(vm, c.id, true, out);

out_fail:
	free(p);
	close_disks(&c);
	clear_labels(vm);
	c.state = -1;
	c.err = err;
	log_warn("%s: checkpoint %" PRIu64 " failed: %s", vm->name, c.id, c.msg);
	record(vm, &c, true);
	*out = c;
	return err;
}

int ckpt_wait(struct vm *vm, uint64_t id, bool durable, struct ckpt *out)
{
	struct ckpt *s;
	int err;

	pthread_mutex_lock(&vm->lock);
	s = slot(vm, id);
	while (s->id == id && (s->state == 0 ||
			       (durable && s->state == PROXY_STATE_CUT)))
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (s->id != id) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(out->msg, sizeof(out->msg),
			 "%s has no checkpoint %" PRIu64 " (too old, or the proxy restarted)",
			 vm->name, id);
		return -ENOENT;
	}
	*out = *s;
	err = s->state < 0 ? s->err : 0;
	pthread_mutex_unlock(&vm->lock);
	return err;
}
