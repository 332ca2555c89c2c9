/* SPDX-License-Identifier: GPL-2.0 */
/*
 * proxyd.h - blobcr-proxyd, the per-host checkpointing proxy.
 *
 * It knows the host's VMs from BLOBCR_RUN_DIR/vm/NAME.vm (written by
 * blobcrctl deploy --vm), owns one socket per VM, BLOBCR_RUN_DIR/proxy/
 * NAME.sock (the VM's QEMU connects its virtio-serial chardev there; a job
 * on the host connects itself), and listens on AF_VSOCK, where the peer's
 * CID names the VM.  A request is served for the VM whose channel it came
 * on, and only for that VM's disks.
 *
 * Threads: the main thread accepts connections and reloads the VM files;
 * each connection has a thread that serves its requests in order; each
 * checkpoint has a thread that waits for its versions.  Locks: the VM table
 * lock (vm_table_lock) is taken before a VM's lock, never the reverse.
 */
#ifndef PROXYD_H
#define PROXYD_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blobcr_host.h"
#include "proxy_wire.h"

#define VM_NAME_MAX HOST_VM_NAME_MAX
#define VM_MAX_DISKS HOST_VM_MAX_DISKS
#define VM_MAX_MOUNTS HOST_VM_MAX_MOUNTS
#define VM_RECENT 16 /* checkpoints a VM remembers for PROXY_OP_WAIT */

/* One checkpoint, from its cut to its versions. */
struct ckpt {
	uint64_t id;
	uint64_t req_id; /* the request's frame id (0: none), for one sent again */
	int state; /* 0 running, PROXY_STATE_CUT, PROXY_STATE_DURABLE, -1 failed */
	int err; /* failed: -errno */
	char msg[256]; /* failed: why */
	uint64_t held_us, paused_us, frozen_us, published_us;
	int ndisks;
	struct {
		char device[VM_NAME_MAX], image[VM_NAME_MAX];
		uint64_t version, extents, bytes, commit_id;
		int fd; /* the disk's channel, until published */
	} disks[VM_MAX_DISKS];
};

struct vm {
	char name[VM_NAME_MAX];
	struct host_vm cfg; /* its .vm file */
	char path[512]; /* its .vm file */
	int64_t mtime_ns; /* of the file, to notice changes */
	int listen_fd; /* BLOBCR_RUN_DIR/proxy/NAME.sock */
	int refs; /* under vm_table_lock */
	bool removed; /* its file is gone or changed */
	bool seen; /* vm_table_reload()'s mark */
	int conns[64]; /* its connections' sockets, under vm_table_lock */
	int nconns;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* busy cleared, a checkpoint's state changed */
	bool busy; /* a checkpoint runs or uploads: one at a time */
	uint64_t next_id;
	struct ckpt recent[VM_RECENT]; /* by id % VM_RECENT */
};

struct proxyd_opts {
	const char *run_dir;
	unsigned int vsock_port; /* 0: no vsock listener */
	int quiesce_timeout_ms;
	bool test_hold; /* stay quiesced while RUN_DIR/proxy/NAME.hold exists */
};

extern struct proxyd_opts opts;

/* vm.c */
extern pthread_mutex_t vm_table_lock;
/* Rescan the VM files: add new ones (and their sockets), drop removed ones. */
void vm_table_reload(void);
/* Poll set of the listening sockets: fills @fds/@vms (referenced), returns n. */
int vm_table_listeners(struct pollfd *fds, struct vm **vms, int max);
struct vm *vm_by_cid(uint32_t cid); /* referenced, or NULL */
/* Its connections, shut down when the VM is dropped or changed. */
int vm_conn_add(struct vm *vm, int fd);
void vm_conn_del(struct vm *vm, int fd);
void vm_get(struct vm *vm);
void vm_put(struct vm *vm);
void vm_table_clear(void);

/* serve.c: serve one connection of @vm (referenced; put when done). */
void serve_start(struct vm *vm, int fd);

/* group.c: a GROUP request of @vm; the reply's payload to @e, errors to @msg. */
int group_serve(struct vm *vm, struct proxy_dec *d, struct proxy_enc *e,
		char *msg, size_t len);

/*
 * checkpoint.c: a checkpoint of @vm for the request whose frame id is
 * @req_id; a request sent again with the id of one of the VM's recent
 * checkpoints (after a reconnection) gets that checkpoint's answer.
 */
int ckpt_run(struct vm *vm, uint64_t req_id, uint32_t flags, const char *label,
	     struct ckpt *out);
/* Wait for checkpoint @id to be durable (@durable) or cut, or failed. */
int ckpt_wait(struct vm *vm, uint64_t id, bool durable, struct ckpt *out);

/* quiesce.c: quiesce a VM by its mode, bounded; resume it. */
struct quiesce;
int quiesce_vm(struct vm *vm, struct quiesce **q, char *msg, size_t len);
int resume_vm(struct quiesce *q, char *msg, size_t len);
/* How long the VM was paused and its file systems frozen, in us. */
void quiesce_times(const struct quiesce *q, uint64_t *paused_us,
		   uint64_t *frozen_us);
void quiesce_free(struct quiesce *q);

/* guard.c */
int guard_start(void);
int guard_hold(uint64_t token, int mode, const char *vm, const int *fds, int nfds);
void guard_release(uint64_t token);
int guard_main(int fd);

/* qmp.c: a JSON line channel to QEMU's QMP monitor or guest agent. */
struct jchan {
	int fd;
	size_t len;
	char buf[16384];
};
int jchan_connect(struct jchan *c, const char *path);
int qmp_handshake(struct jchan *c, int timeout_ms);
int qga_sync(struct jchan *c, int timeout_ms);
/*
 * Send {"execute": @cmd, "id": @id} and wait up to @timeout_ms for the
 * answer carrying @id.  Return: 0, -EREMOTEIO with QEMU's "desc" in @err,
 * -ETIMEDOUT, or a socket error.
 */
int jchan_execute(struct jchan *c, const char *cmd, const char *id,
		  int timeout_ms, char *err, size_t len);
int jchan_send_execute(int fd, const char *cmd, const char *id);
void jchan_close(struct jchan *c);

#endif /* PROXYD_H */
