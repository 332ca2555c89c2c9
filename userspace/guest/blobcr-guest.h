/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr-guest.h - ask the host for a checkpoint of this VM's disks.
 *
 * An application saves its state into files, and calls blobcr_checkpoint():
 * the library syncs the file systems and sends the request on this VM's
 * channel to the host's checkpointing proxy (blobcr-proxyd), which quiesces
 * the VM, snapshots every one of its disks in the same pause, resumes it,
 * and answers with one version per disk once they are published.  The
 * channel is what identifies the VM: a request can only checkpoint the
 * disks of the VM (or host job) whose channel it arrives on.
 *
 * Channels (the CHANNEL argument of blobcr_guest_open()):
 *   virtio:PATH   a virtio-serial port (default
 *                 /dev/virtio-ports/org.blobcr.checkpoint.0)
 *   vsock:PORT or vsock:CID:PORT   AF_VSOCK to the host (CID 2) or CID
 *   unix:PATH     the deployment's socket, for jobs on the host or in a
 *                 container over the device (/run/blobcr/proxy/NAME.sock)
 * NULL means $BLOBCR_CHANNEL if set, else the default virtio-serial port
 * if it exists, else vsock:2:BLOBCR_GUEST_VSOCK_PORT.
 *
 * Every call opens the channel, sends one request, waits for its answer
 * (up to the handle's timeout) and closes the channel, so that other
 * processes of the VM can use it in between.  Functions return 0 or a
 * negative errno; blobcr_guest_error() says more about the last failure.
 * A handle is not thread-safe: use one per thread.
 *
 * Link with libblobcr-guest.a (static; needs only the C library).  The
 * protocol is documented in Documentation/checkpoint-restart.rst.
 */
#ifndef BLOBCR_GUEST_H
#define BLOBCR_GUEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLOBCR_GUEST_VIRTIO_PORT "/dev/virtio-ports/org.blobcr.checkpoint.0"
#define BLOBCR_GUEST_VSOCK_PORT 7350
#define BLOBCR_GUEST_NAME_MAX 64	/* names, with their NUL */
#define BLOBCR_GUEST_LABEL_MAX 63	/* longest label, without its NUL */
#define BLOBCR_GUEST_MAX_DISKS 16

struct blobcr_guest;

/* One disk's part of a checkpoint. */
struct blobcr_guest_disk {
	char device[BLOBCR_GUEST_NAME_MAX]; /* the host's dm device */
	char image[BLOBCR_GUEST_NAME_MAX]; /* the repository image */
	uint64_t version; /* its new version; 0 until durable */
	uint64_t extents; /* extents in the snapshot */
	uint64_t bytes; /* what it uploads at most (before dedup) */
};

/* The answer to a checkpoint request. */
struct blobcr_guest_checkpoint {
	uint64_t id; /* names it for blobcr_guest_wait() */
	int durable; /* every version is published */
	double held_ms; /* longest write hold of the target's swap */
	double paused_ms; /* the VM stopped (QMP stop to cont), or 0 */
	double frozen_ms; /* its file systems frozen (freeze to thaw), or 0 */
	double published_ms; /* request received to all versions published */
	unsigned int ndisks;
	struct blobcr_guest_disk disks[BLOBCR_GUEST_MAX_DISKS];
};

/* What the host knows of this VM now. */
struct blobcr_guest_status {
	char vm[BLOBCR_GUEST_NAME_MAX]; /* the VM's name at the proxy */
	char mode[16]; /* quiesce mode: qmp, qga, fsfreeze, none */
	uint64_t dirty_bytes; /* what a checkpoint would upload now */
	unsigned int ndisks;
	struct {
		char device[BLOBCR_GUEST_NAME_MAX];
		char image[BLOBCR_GUEST_NAME_MAX];
		uint64_t last_version; /* last version committed, 0: none */
		uint64_t dirty_bytes; /* written since the last checkpoint */
		uint64_t committing; /* extents of a checkpoint being uploaded */
	} disks[BLOBCR_GUEST_MAX_DISKS];
};

/* blobcr_guest_checkpoint() flags */
#define BLOBCR_GUEST_CUT	(1U << 0) /* answer once the snapshot is cut */
#define BLOBCR_GUEST_NOSYNC	(1U << 1) /* the caller has synced already */

/**
 * blobcr_guest_open() - a handle on channel @channel (see above; NULL for
 * the default) in *@g.  Nothing is connected yet.  -EINVAL: a channel that
 * cannot be parsed; -ENOMEM.
 */
int blobcr_guest_open(const char *channel, struct blobcr_guest **g);

/** blobcr_guest_close() - free the handle. */
void blobcr_guest_close(struct blobcr_guest *g);

/**
 * blobcr_guest_set_timeout() - how long one call may wait, in ms (default
 * 600000, or $BLOBCR_TIMEOUT_MS); a call that times out returns -ETIMEDOUT
 * and the proxy may still complete the request.
 */
void blobcr_guest_set_timeout(struct blobcr_guest *g, int timeout_ms);

/**
 * blobcr_guest_checkpoint() - sync (unless BLOBCR_GUEST_NOSYNC), then ask
 * for a checkpoint of this VM labelled @label (NULL or 1 to 63 printable
 * characters).  Returns once every version is published, or with
 * BLOBCR_GUEST_CUT once the snapshot is cut and the VM resumed (versions
 * 0, durable 0: blobcr_guest_wait() for them).  Errors: -ETIMEDOUT (the
 * quiesce did not finish in the proxy's bound and was undone; nothing
 * committed), -EBUSY, -EIO (a commit or the upload failed), -ECONNRESET
 * (the proxy went away: the checkpoint may have been cut; ask
 * blobcr_guest_status() for the last versions).
 */
int blobcr_guest_checkpoint(struct blobcr_guest *g, const char *label,
			    unsigned int flags,
			    struct blobcr_guest_checkpoint *out);

/**
 * blobcr_guest_wait() - wait until checkpoint @id (from
 * blobcr_guest_checkpoint()) is durable; its versions go to *@out.
 * -ENOENT: the proxy does not know @id (too old, or it restarted).
 */
int blobcr_guest_wait(struct blobcr_guest *g, uint64_t id,
		      struct blobcr_guest_checkpoint *out);

/**
 * blobcr_guest_status() - the VM's disks, last versions and what a
 * checkpoint would upload now, in *@out.
 */
int blobcr_guest_status(struct blobcr_guest *g, struct blobcr_guest_status *out);

/**
 * blobcr_guest_cost() - the bytes a checkpoint would upload now (at most:
 * extents written since the last checkpoint; the repository stores
 * identical extents once), in *@bytes.  Cheap: no quiesce, and no sync:
 * it counts what has reached the disks, so what this VM's page cache
 * still holds counts once written back (sync(2) first to count it).
 */
int blobcr_guest_cost(struct blobcr_guest *g, uint64_t *bytes);

/* One version of a checkpoint group. */
struct blobcr_guest_member {
	const char *image;
	uint64_t version;
};

/**
 * blobcr_guest_group() - publish the checkpoint group @name, the @n
 * versions @m (one global checkpoint of a job: one per disk of each of
 * its VMs), at the repository, in one transaction that checks that they
 * all exist.  The proxy publishes only groups JOB.N of the job this VM
 * belongs to (-EPERM otherwise); -EEXIST: the group exists; -ENOENT: a
 * version does not exist (nothing is published).  With @n 0, nothing is
 * published and @name is ignored: @out receives the name the job's next
 * group takes, JOB.N with N above every existing one.  On success @out
 * (@len bytes) holds the group's name.  blobcr_mpi_checkpoint() (in
 * blobcr-mpi.h) does all of it for an MPI job.
 */
int blobcr_guest_group(struct blobcr_guest *g, const char *name, unsigned int n,
		       const struct blobcr_guest_member *m, char *out, size_t len);

/**
 * blobcr_guest_error() - what went wrong in the last failed call: the
 * proxy's message, or the library's; "" after a success.
 */
const char *blobcr_guest_error(const struct blobcr_guest *g);

#ifdef __cplusplus
}
#endif

#endif /* BLOBCR_GUEST_H */
