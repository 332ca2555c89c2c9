// SPDX-License-Identifier: GPL-2.0
/*
 * grouptool - checkpoint groups too many for blobcrctl's command line.
 *
 * Usage: grouptool META PREFIX GROUPS MEMBERS IMAGE@VERSION
 * Publishes GROUPS groups named PREFIX0, PREFIX1, ..., each naming
 * IMAGE@VERSION MEMBERS times (a long image name makes a big group).
 * Exit status 0, or 1 (the error on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"

int main(int argc, char **argv)
{
	struct blobcr_client *c;
	char image[BLOBCR_NAME_MAX], name[BLOBCR_NAME_MAX];
	char *at = argc == 6 ? strrchr(argv[5], '@') : NULL;
	const char **images;
	uint32_t *vers;
	long groups, members;
	int err;

	if (!at || at == argv[5] || (size_t)(at - argv[5]) >= sizeof(image) ||
	    (groups = atol(argv[3])) <= 0 || (members = atol(argv[4])) <= 0) {
		fprintf(stderr, "Usage: grouptool META PREFIX GROUPS MEMBERS IMAGE@VERSION\n");
		return 2;
	}
	memcpy(image, argv[5], (size_t)(at - argv[5]));
	image[at - argv[5]] = 0;
	images = calloc((size_t)members, sizeof(*images));
	vers = calloc((size_t)members, sizeof(*vers));
	if (!images || !vers)
		return 1;
	for (long i = 0; i < members; i++) {
		images[i] = image;
		vers[i] = (uint32_t)atol(at + 1);
	}
	err = blobcr_connect(argv[1], NULL, &c);
	for (long g = 0; !err && g < groups; g++) {
		snprintf(name, sizeof(name), "%s%ld", argv[2], g);
		err = blobcr_group_publish(c, name, (size_t)members, images, vers);
	}
	if (err)
		fprintf(stderr, "grouptool: %s\n", blobcr_strerror(err));
	else
		blobcr_close(c);
	free(images);
	free(vers);
	return err ? 1 : 0;
}
