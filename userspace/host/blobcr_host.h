/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_host.h - what a compute host does to its own deployments, shared
 * by blobcrctl (commit, status) and blobcr-proxyd: find a deployment's
 * channel, check that a mount point is on its device, freeze and thaw file
 * systems, take a snapshot (BLOBCR_IOC_COMMIT with NOWAIT) and wait for its
 * version, hand a label to blobcrd.
 *
 * Every function returns 0 or a negative errno and prints nothing.
 */
#ifndef BLOBCR_HOST_H
#define BLOBCR_HOST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/dm-blobcr.h>

/* Where deployments keep their helper's pid file, log, arguments, label. */
#define BLOBCR_RUN_DIR "/run/blobcr"

/**
 * host_open_channel() - open the channel of device-mapper device @dm_name
 * (O_RDWR, close-on-exec) into *@fd.  -ENOENT: no such device; -ENODEV:
 * no device-mapper on this host;
 * -EMEDIUMTYPE: not a blobcr device; -EINVAL: its table cannot be parsed.
 */
int host_open_channel(const char *dm_name, int *fd);

/** host_dm_devno() - the device number of device-mapper device @dm_name. */
int host_dm_devno(const char *dm_name, dev_t *dev);

/**
 * host_open_mount_on() - open directory @mnt (O_RDONLY, close-on-exec)
 * into *@fd for FIFREEZE, refusing with -EXDEV a directory whose file
 * system is not the one on /dev/mapper/@dm_name: freezing that other file
 * system would leave the snapshot unquiesced.
 */
int host_open_mount_on(const char *dm_name, const char *mnt, int *fd);

/**
 * host_freeze() - FIFREEZE the file systems open at @fds[0..@n), in order.
 * On a failure the ones already frozen are thawed again and the errno of
 * the one that failed is returned with its index in *@failed.
 */
int host_freeze(const int *fds, size_t n, size_t *failed);

/**
 * host_thaw() - FITHAW @fds[0..@n) in reverse order.  Return: 0, or the
 * first error (every file system is tried).
 */
int host_thaw(const int *fds, size_t n);

/**
 * host_commit_nowait() - BLOBCR_IOC_COMMIT with BLOBCR_COMMIT_F_NOWAIT on
 * channel @fd: the dirty set becomes the commit set and writes go on.
 * *@cm (zeroed here) receives the commit's id, size and write pause.
 */
int host_commit_nowait(int fd, struct blobcr_commit *cm);

/**
 * host_commit_wait() - wait (BLOBCR_IOC_COMMIT_WAIT) on channel @fd for the
 * commit @commit_id to be published; its version goes to *@version.
 */
int host_commit_wait(int fd, uint64_t commit_id, uint64_t *version);

/** host_info() - BLOBCR_IOC_GET_INFO of channel @fd. */
int host_info(int fd, struct blobcr_info *in);

/**
 * host_set_label() - hand @label to the blobcrd of @dm_name for its next
 * publish (BLOBCR_RUN_DIR/DMNAME.label, replaced atomically); NULL removes
 * it.  One commit runs at a time per device, so the label is that one's.
 */
int host_set_label(const char *dm_name, const char *label);

/**
 * host_commit_image() - the image the commits of @dm_name go to, as
 * deploy recorded it (blobcrd's --commit-to, without the @VERSION).
 */
int host_commit_image(const char *dm_name, char *image, size_t len);

/**
 * host_helper_arg() - the value of option @opt ("--meta", "--key") in the
 * command line the helper of @dm_name was started with: the repository
 * its versions are published at, and the key it publishes with.
 * Return: 0, -ENOENT (no deployment, or no such option), or -errno.
 */
int host_helper_arg(const char *dm_name, const char *opt, char *val, size_t len);

/**
 * host_block_signals() - hold the signals that would kill or stop this
 * process while it has something frozen or paused (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT and the terminal's stop signals); the old mask goes to *@old.
 */
void host_block_signals(sigset_t *old);

/* ---- VM files (vmfile.c): what the proxy knows of a VM ---- */

#define HOST_VM_DIR BLOBCR_RUN_DIR "/vm"	/* NAME.vm, NAME.qmp, NAME.qga */
#define HOST_PROXY_DIR BLOBCR_RUN_DIR "/proxy"	/* NAME.sock: the VM's channel */
#define HOST_VM_NAME_MAX 64
#define HOST_VM_MAX_DISKS 16
#define HOST_VM_MAX_MOUNTS 16

enum host_quiesce { HOST_Q_NONE, HOST_Q_FSFREEZE, HOST_Q_QMP, HOST_Q_QGA };

/* A VM file, RUN_DIR/vm/NAME.vm: "key value" lines (checkpoint-restart.rst). */
struct host_vm {
	int ndisks, nmounts;
	char disks[HOST_VM_MAX_DISKS][HOST_VM_NAME_MAX]; /* dm device names */
	char mounts[HOST_VM_MAX_MOUNTS][256]; /* fsfreeze: host mount points */
	enum host_quiesce mode;
	char qmp[108], qga[108]; /* QEMU's QMP and guest agent sockets */
	char job[HOST_VM_NAME_MAX]; /* the job it belongs to, "": none */
	uint32_t cid; /* AF_VSOCK CID, 0: none */
	uid_t uid; /* who besides root may use its socket; -1: nobody */
};

/** host_quiesce_name() - "none", "fsfreeze", "qmp" or "qga". */
const char *host_quiesce_name(enum host_quiesce m);

/** host_quiesce_parse() - the mode named @s, or -EINVAL. */
int host_quiesce_parse(const char *s);

/** host_vm_name_ok() - whether @s can name a VM (and its files). */
int host_vm_name_ok(const char *s);

/**
 * host_vm_parse() - read the VM file @path into *@vm; on -EINVAL @err
 * says which line is wrong or what is missing.
 */
int host_vm_parse(const char *path, struct host_vm *vm, char *err, size_t len);

/** host_vm_write() - write *@vm to @path, atomically (a rename). */
int host_vm_write(const char *path, const struct host_vm *vm);

#endif /* BLOBCR_HOST_H */
