// SPDX-License-Identifier: GPL-2.0
/*
 * pausebench - the paper's checkpoint of a VM under QEMU, for
 * bench/proxy/run: quiesce the VM (QMP "stop", or the guest agent's
 * guest-fsfreeze-freeze), take the commit set of each of its dm-blobcr
 * disks, wait until every version is published, and only then resume it
 * ("cont", guest-fsfreeze-thaw): the VM stays suspended for the whole
 * upload.  The window is timed as blobcr-proxyd times its own: from just
 * before the quiesce command is sent (the socket already connected and
 * greeted) to the resume command's answer.
 *
 * Usage: pausebench qmp|qga SOCKET DMNAME...
 * Prints: window_ms=W upload_ms=U extents=N versions=V1,V2,...
 *
 * It reuses the proxy's QMP/agent client (userspace/proxyd/qmp.c) and the
 * host's snapshot steps (libblobcr-host), so both sides talk to QEMU and
 * to the target with the same code.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blobcr_host.h"
#include "proxyd.h"

#define TIMEOUT_MS (30 * 60 * 1000)
#define MAX_DISKS 16

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "pausebench: %s: %s\n", what, strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	int qga = argc > 1 && !strcmp(argv[1], "qga");
	int fd[MAX_DISKS], n = argc - 3, err, failed = 0;
	uint64_t commit[MAX_DISKS], version[MAX_DISKS], extents = 0;
	uint64_t t0, t_cut, t_published, t1;
	struct jchan c = { .fd = -1 };
	char msg[256];

	if (argc < 4 || n > MAX_DISKS || (!qga && strcmp(argv[1], "qmp"))) {
		fprintf(stderr, "usage: pausebench qmp|qga SOCKET DMNAME...\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		err = host_open_channel(argv[3 + i], &fd[i]);
		if (err)
			return die(argv[3 + i], err);
	}
	err = jchan_connect(&c, argv[2]);
	if (!err)
		err = qga ? qga_sync(&c, TIMEOUT_MS) : qmp_handshake(&c, TIMEOUT_MS);
	if (err)
		return die(argv[2], err);

	t0 = now_us();
	err = jchan_execute(&c, qga ? "guest-fsfreeze-freeze" : "stop",
			    "bench-quiesce", TIMEOUT_MS, msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "pausebench: %s\n", msg);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct blobcr_commit cm;

		err = host_commit_nowait(fd[i], &cm);
		if (err) {
			failed = die(argv[3 + i], err);
			n = i;
			break;
		}
		commit[i] = cm.commit_id;
		extents += cm.nr_extents;
	}
	t_cut = now_us();
	for (int i = 0; i < n; i++) {
		err = host_commit_wait(fd[i], commit[i], &version[i]);
		if (err)
			failed = die(argv[3 + i], err);
	}
	t_published = now_us();
	err = jchan_execute(&c, qga ? "guest-fsfreeze-thaw" : "cont",
			    "bench-resume", TIMEOUT_MS, msg, sizeof(msg));
	t1 = now_us();
	if (err) {
		fprintf(stderr, "pausebench: cannot resume the VM: %s\n", msg);
		return 1;
	}
	if (failed)
		return 1;
	printf("window_ms=%.1f upload_ms=%.1f extents=%" PRIu64 " versions=",
	       (t1 - t0) / 1e3, (t_published - t_cut) / 1e3, extents);
	for (int i = 0; i < n; i++)
		printf("%s%" PRIu64, i ? "," : "", version[i]);
	printf("\n");
	return 0;
}
