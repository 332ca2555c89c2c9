// SPDX-License-Identifier: GPL-2.0
/*
 * leasetool - holds a lease on a version as blobcrd does, for a test.
 *
 * Usage: leasetool META HOLDER IMAGE@VERSION TTL_MS
 * Takes the lease, prints "held" once it has it, renews it every TTL_MS/3
 * until SIGTERM or SIGINT, then releases it.  Killed with -9, it leaves the
 * lease to lapse.  Exit status 0, or 1 (the error on stderr).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct blobcr_client *c;
	char image[BLOBCR_NAME_MAX];
	char *at = argc == 5 ? strrchr(argv[3], '@') : NULL;
	uint32_t ver, ttl;
	int err;

	if (!at || at == argv[3] || (size_t)(at - argv[3]) >= sizeof(image)) {
		fprintf(stderr, "Usage: leasetool META HOLDER IMAGE@VERSION TTL_MS\n");
		return 2;
	}
	memcpy(image, argv[3], (size_t)(at - argv[3]));
	image[at - argv[3]] = 0;
	ver = (uint32_t)strtoul(at + 1, NULL, 10);
	ttl = (uint32_t)strtoul(argv[4], NULL, 10);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	err = blobcr_connect(argv[1], NULL, &c);
	if (!err)
		err = blobcr_lease(c, argv[2], image, ver, ttl);
	if (err) {
		fprintf(stderr, "leasetool: %s\n", blobcr_strerror(err));
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	while (!stop && !err) {
		usleep(ttl / 3 * 1000);
		if (!stop)
			err = blobcr_lease(c, argv[2], image, ver, ttl);
	}
	if (!err)
		err = blobcr_lease(c, argv[2], image, ver, 0);
	if (err)
		fprintf(stderr, "leasetool: %s\n", blobcr_strerror(err));
	blobcr_close(c);
	return err ? 1 : 0;
}
