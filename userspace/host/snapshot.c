// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot.c - the steps of a snapshot on this host: freeze file systems,
 * take the commit set of each device (BLOBCR_IOC_COMMIT with NOWAIT), thaw,
 * wait for the versions.  blobcrctl commit and blobcr-proxyd put them
 * together; the quiescing of a VM around them is the proxy's.
 */
#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include "blobcr_host.h"

int host_freeze(const int *fds, size_t n, size_t *failed)
{
	for (size_t i = 0; i < n; i++) {
		if (ioctl(fds[i], FIFREEZE, 0) < 0) {
			int err = -errno;

			host_thaw(fds, i);
			*failed = i;
			return err;
		}
	}
	return 0;
}

int host_thaw(const int *fds, size_t n)
{
	int err = 0;

	while (n--)
		if (ioctl(fds[n], FITHAW, 0) < 0 && !err)
			err = -errno;
	return err;
}

int host_commit_nowait(int fd, struct blobcr_commit *cm)
{
	*cm = (struct blobcr_commit){ .flags = BLOBCR_COMMIT_F_NOWAIT };
	return ioctl(fd, BLOBCR_IOC_COMMIT, cm) < 0 ? -errno : 0;
}

int host_commit_wait(int fd, uint64_t commit_id, uint64_t *version)
{
	struct blobcr_commit w = { .commit_id = commit_id };

	if (ioctl(fd, BLOBCR_IOC_COMMIT_WAIT, &w) < 0)
		return -errno;
	*version = w.version;
	return 0;
}

int host_info(int fd, struct blobcr_info *in)
{
	*in = (struct blobcr_info){ 0 };
	return ioctl(fd, BLOBCR_IOC_GET_INFO, in) < 0 ? -errno : 0;
}

void host_block_signals(sigset_t *old)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP,
				    SIGTTIN, SIGTTOU };
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}
