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
 * (O_RDWR, close-on-exec) into *@fd.  -ENOENT: no such device;
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
 * host_block_signals() - hold the signals that would kill or stop this
 * process while it has something frozen or paused (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT and the terminal's stop signals); the old mask goes to *@old.
 */
void host_block_signals(sigset_t *old);

#endif /* BLOBCR_HOST_H */
