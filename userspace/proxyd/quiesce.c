// SPDX-License-Identifier: GPL-2.0
/*
 * quiesce.c - stop a VM's writes for a snapshot, by its mode, and start
 * them again:
 *   fsfreeze  FIFREEZE/FITHAW of the host mount points of its disks (a job
 *             on the host or in a container over the device);
 *   qmp       QMP "stop"/"cont": QEMU drains and flushes its block I/O;
 *   qga       the guest agent's guest-fsfreeze-freeze/-thaw;
 *   none      nothing: the caller quiesced.
 *
 * The quiesce is bounded: it runs in a thread of its own and the request
 * waits for it at most opts.quiesce_timeout_ms.  Past that the request
 * fails and the thread, whenever the quiesce finishes, undoes it.  Before
 * anything is quiesced the guard process gets a copy of the file
 * descriptors that undo it (guard.c), so that a proxy killed at any point
 * never leaves a VM paused or frozen.
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

/* A stuck QEMU or agent: how long the thread waits before giving up. */
#define WORKER_LIMIT_MS (10 * 60 * 1000)

enum { RUNNING, DONE, ABANDONED };

struct quiesce {
	struct vm *vm; /* referenced */
	enum host_quiesce mode;
	int nfs, fs[VM_MAX_MOUNTS];
	char fs_path[VM_MAX_MOUNTS][256];
	struct jchan ch;
	uint64_t token;
	uint64_t t_start, t_quiesced, t_resumed; /* us */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state, refs, err;
	char msg[256];
};

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void q_put(struct quiesce *q)
{
	int left;

	pthread_mutex_lock(&q->lock);
	left = --q->refs;
	pthread_mutex_unlock(&q->lock);
	if (left)
		return;
	for (int i = 0; i < q->nfs; i++)
		close(q->fs[i]);
	jchan_close(&q->ch);
	vm_put(q->vm);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

void quiesce_free(struct quiesce *q)
{
	if (q)
		q_put(q);
}

static int cmd_id(const struct quiesce *q, const char *what, char *id, size_t len)
{
	return snprintf(id, len, "blobcr-%s-%" PRIu64, what, q->token);
}

/* The quiesce itself; undoes what it did on failure. */
static int do_quiesce(struct quiesce *q, int timeout_ms, char *msg, size_t len)
{
	char id[64];
	size_t failed = 0;
	int err = 0;

	switch (q->mode) {
	case HOST_Q_NONE:
		break;
	case HOST_Q_FSFREEZE:
		err = host_freeze(q->fs, (size_t)q->nfs, &failed);
		if (err)
			snprintf(msg, len, "cannot freeze %s: %s",
				 q->fs_path[failed], strerror(-err));
		break;
	case HOST_Q_QMP:
		cmd_id(q, "stop", id, sizeof(id));
		err = jchan_execute(&q->ch, "stop", id, timeout_ms, msg, len);
		break;
	case HOST_Q_QGA:
		cmd_id(q, "freeze", id, sizeof(id));
		err = jchan_execute(&q->ch, "guest-fsfreeze-freeze", id,
				    timeout_ms, msg, len);
		if (err && err != -ETIMEDOUT) {
			/* It may have frozen some before failing. */
			char m2[128];

			cmd_id(q, "thaw", id, sizeof(id));
			jchan_execute(&q->ch, "guest-fsfreeze-thaw", id,
				      timeout_ms, m2, sizeof(m2));
		}
		break;
	}
	return err;
}

static int do_resume(struct quiesce *q, int timeout_ms, char *msg, size_t len)
{
	char id[64];
	int err = 0;

	switch (q->mode) {
	case HOST_Q_NONE:
		break;
	case HOST_Q_FSFREEZE:
		err = host_thaw(q->fs, (size_t)q->nfs);
		if (err)
			snprintf(msg, len, "cannot thaw the file systems of %s: %s",
				 q->vm->name, strerror(-err));
		break;
	case HOST_Q_QMP:
		cmd_id(q, "cont", id, sizeof(id));
		err = jchan_execute(&q->ch, "cont", id, timeout_ms, msg, len);
		break;
	case HOST_Q_QGA:
		cmd_id(q, "thaw", id, sizeof(id));
		err = jchan_execute(&q->ch, "guest-fsfreeze-thaw", id,
				    timeout_ms, msg, len);
		break;
	}
	return err;
}

static void *quiesce_thread(void *arg)
{
	struct quiesce *q = arg;
	char msg[256] = "";
	int err = do_quiesce(q, WORKER_LIMIT_MS, msg, sizeof(msg));

	pthread_mutex_lock(&q->lock);
	q->t_quiesced = now_us();
	if (q->state == ABANDONED) {
		pthread_mutex_unlock(&q->lock);
		if (!err) {
			err = do_resume(q, WORKER_LIMIT_MS, msg, sizeof(msg));
			if (err)
				log_err("%s: cannot undo the late quiesce: %s",
					q->vm->name, msg);
			else
				log_warn("%s: the late quiesce finished and was undone",
					 q->vm->name);
		}
		guard_release(q->token);
	} else {
		q->state = DONE;
		q->err = err;
		snprintf(q->msg, sizeof(q->msg), "%s", msg);
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
	}
	q_put(q);
	return NULL;
}

/* Open what the mode needs, before anything is quiesced. */
static int prepare(struct quiesce *q, char *msg, size_t len)
{
	const struct host_vm *cfg = &q->vm->cfg;
	int err = 0;

	switch (q->mode) {
	case HOST_Q_NONE:
		return 0;
	case HOST_Q_FSFREEZE:
		for (int i = 0; i < cfg->nmounts; i++) {
			err = -EXDEV;
			for (int d = 0; d < cfg->ndisks && err == -EXDEV; d++)
				err = host_open_mount_on(cfg->disks[d],
							 cfg->mounts[i], &q->fs[i]);
			if (err) {
				snprintf(msg, len, err == -EXDEV ?
					 "%s is not mounted from a disk of %s" :
					 "cannot open %s: %s", cfg->mounts[i],
					 err == -EXDEV ? q->vm->name : strerror(-err));
				return err;
			}
			snprintf(q->fs_path[i], sizeof(q->fs_path[i]), "%s",
				 cfg->mounts[i]);
			q->nfs++;
		}
		return 0;
	case HOST_Q_QMP:
	case HOST_Q_QGA:
		err = jchan_connect(&q->ch, q->mode == HOST_Q_QMP ? cfg->qmp : cfg->qga);
		if (err) {
			snprintf(msg, len, "cannot connect to %s's %s socket %s: %s",
				 q->vm->name, q->mode == HOST_Q_QMP ? "QMP" : "guest agent",
				 q->mode == HOST_Q_QMP ? cfg->qmp : cfg->qga, strerror(-err));
			return err;
		}
		err = q->mode == HOST_Q_QMP ?
			qmp_handshake(&q->ch, opts.quiesce_timeout_ms) :
			qga_sync(&q->ch, opts.quiesce_timeout_ms);
		if (err)
			snprintf(msg, len, "%s of %s does not answer: %s",
				 q->mode == HOST_Q_QMP ? "QMP" : "the guest agent",
				 q->vm->name, strerror(-err));
		return err;
	}
	return -EINVAL;
}

int quiesce_vm(struct vm *vm, struct quiesce **out, char *msg, size_t len)
{
	static uint64_t tokens;
	struct quiesce *q = calloc(1, sizeof(*q));
	struct timespec until;
	pthread_t th;
	int err, nfds;

	if (!q)
		return -ENOMEM;
	vm_get(vm);
	q->vm = vm;
	q->mode = vm->cfg.mode;
	q->ch.fd = -1;
	q->refs = 1;
	q->token = __atomic_add_fetch(&tokens, 1, __ATOMIC_RELAXED);
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	err = prepare(q, msg, len);
	if (err)
		goto out_free;
	nfds = q->mode == HOST_Q_FSFREEZE ? q->nfs : q->ch.fd >= 0;
	if (q->mode != HOST_Q_NONE) {
		err = guard_hold(q->token, q->mode, vm->name,
				 q->mode == HOST_Q_FSFREEZE ? q->fs : &q->ch.fd, nfds);
		if (err) {
			snprintf(msg, len, "the resume guard is not there: %s",
				 strerror(-err));
			goto out_free;
		}
	}
	q->t_start = now_us();
	q->refs++;
	err = -pthread_create(&th, NULL, quiesce_thread, q);
	if (err) {
		q->refs--;
		snprintf(msg, len, "cannot start a thread: %s", strerror(-err));
		goto out_release;
	}
	pthread_detach(th);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += opts.quiesce_timeout_ms / 1000;
	until.tv_nsec += (long)(opts.quiesce_timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&q->lock);
	while (q->state == RUNNING &&
	       pthread_cond_timedwait(&q->cond, &q->lock, &until) != ETIMEDOUT)
		;
	if (q->state == RUNNING) {
		q->state = ABANDONED;
		pthread_mutex_unlock(&q->lock);
		snprintf(msg, len, "the %s quiesce of %s did not finish in %d ms: undone, nothing committed",
			 host_quiesce_name(q->mode), vm->name, opts.quiesce_timeout_ms);
		q_put(q);
		return -ETIMEDOUT;
	}
	pthread_mutex_unlock(&q->lock);
	err = q->err;
	if (err) {
		snprintf(msg, len, "%s", q->msg);
		goto out_release;
	}
	log_info("%s: quiesced (%s) in %.1f ms", vm->name, host_quiesce_name(q->mode),
		 (q->t_quiesced - q->t_start) / 1e3);
	*out = q;
	return 0;
out_release:
	if (q->mode != HOST_Q_NONE)
		guard_release(q->token);
out_free:
	q_put(q);
	return err;
}

int resume_vm(struct quiesce *q, char *msg, size_t len)
{
	int err;

	if (opts.test_hold) {
		char hold[512];

		snprintf(hold, sizeof(hold), "%s/proxy/%s.hold", opts.run_dir,
			 q->vm->name);
		/* After the cut: what a test that kills us waits for. */
		if (!access(hold, F_OK))
			log_info("%s: cut, held quiesced while %s exists",
				 q->vm->name, hold);
		while (!access(hold, F_OK))
			usleep(100000);
	}
	err = do_resume(q, opts.quiesce_timeout_ms, msg, len);
	q->t_resumed = now_us();
	/* Not undone: the guard keeps its copy, in case we die trying again. */
	if (!err && q->mode != HOST_Q_NONE)
		guard_release(q->token);
	return err;
}

void quiesce_times(const struct quiesce *q, uint64_t *paused_us,
		   uint64_t *frozen_us)
{
	uint64_t window = q->t_resumed - q->t_start;

	*paused_us = q->mode == HOST_Q_QMP ? window : 0;
	*frozen_us = q->mode == HOST_Q_FSFREEZE || q->mode == HOST_Q_QGA ? window : 0;
}
