// SPDX-License-Identifier: GPL-2.0
/*
 * metaload - one host's load on the version manager, for bench/scale:
 *   metaload META IMAGE FILE ROUNDS GOFILE lookup|commit
 * Waits until GOFILE exists (at most 10 minutes), then ROUNDS times:
 *   lookup  a lookup of every extent of IMAGE's latest version (what a
 *           restart asks first; one request per 4096 extents);
 *   commit  a commit of one changed extent whose content is already
 *           stored (extent 0 set to the content of extent 1 of FILE, then
 *           back): metad answers its image info, its chunk locate (the
 *           chunk is known on R nodes, so nothing is uploaded) and its
 *           publish, a durable LMDB commit.
 * FILE is what IMAGE was imported from.  Prints one line:
 *   START END ROUNDS LOOKUP_REQUESTS PUBLISHES
 * with START and END in seconds of the real-time clock, so that the lines
 * of hosts run at once can be put on one time axis.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blobcr.h"

#define GO_WAIT_MS (600 * 1000)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int wait_go(const char *path)
{
	struct timespec tick = { 0, 5 * 1000 * 1000 };

	for (int ms = 0; ms < GO_WAIT_MS; ms += 5) {
		if (!access(path, F_OK))
			return 0;
		nanosleep(&tick, NULL);
	}
	return -ETIMEDOUT;
}

/* a commit of extent 0, set to a chunk already stored */
static int commit_one(struct blobcr_client *c, const char *image,
		      const void *content)
{
	struct blobcr_changeset *cm;
	uint32_t version;
	int err = blobcr_commit_begin(c, image, &cm);

	if (err)
		return err;
	err = blobcr_commit_extent(cm, 0, content);
	if (!err)
		err = blobcr_commit_publish(cm, "metaload", &version);
	blobcr_commit_free(cm);
	return err;
}

int main(int argc, char **argv)
{
	struct blobcr_image_info info;
	struct blobcr_extent_loc *locs = NULL;
	struct blobcr_client *c;
	uint64_t *exts = NULL;
	char *content = NULL;
	double t0, t1;
	long rounds, lookups = 0, publishes = 0;
	size_t n = 0;
	int fd, r, err, lookup;

	if (argc != 7 || (rounds = atol(argv[4])) <= 0 ||
	    (strcmp(argv[6], "lookup") && strcmp(argv[6], "commit"))) {
		fprintf(stderr, "Usage: metaload META IMAGE FILE ROUNDS GOFILE lookup|commit\n");
		return 2;
	}
	lookup = !strcmp(argv[6], "lookup");
	err = blobcr_connect(argv[1], NULL, &c);
	if (!err)
		err = blobcr_image_info(c, argv[2], &info);
	if (err) {
		fprintf(stderr, "metaload: %s: %s\n", argv[2], blobcr_strerror(err));
		return 1;
	}
	n = info.size / info.extent_size;
	exts = calloc(n, sizeof(*exts));
	locs = calloc(n, sizeof(*locs));
	content = malloc(2 * (size_t)info.extent_size);
	fd = open(argv[3], O_RDONLY);
	if (n < 2 || !exts || !locs || !content || fd < 0 ||
	    pread(fd, content, 2 * (size_t)info.extent_size, 0) !=
		    2 * (ssize_t)info.extent_size) {
		fprintf(stderr, "metaload: %s: cannot read two extents\n", argv[3]);
		return 1;
	}
	close(fd);
	for (size_t i = 0; i < n; i++)
		exts[i] = i;
	err = wait_go(argv[5]);
	t0 = now_s();
	for (r = 0; r < rounds && !err; r++) {
		if (lookup)
			err = blobcr_lookup(c, argv[2], 0, exts, n, locs);
		else
			err = commit_one(c, argv[2], content +
					 (size_t)((r + 1) % 2) * info.extent_size);
	}
	t1 = now_s();
	if (err) {
		fprintf(stderr, "metaload: %s %d: %s\n", argv[6], r, blobcr_strerror(err));
		return 1;
	}
	/* blobcr_lookup() asks 4096 extents per request */
	if (lookup)
		lookups = rounds * (long)((n + 4095) / 4096);
	else
		publishes = rounds;
	printf("%.3f %.3f %ld %ld %ld\n", t0, t1, rounds, lookups, publishes);
	free(content);
	free(locs);
	free(exts);
	blobcr_close(c);
	return 0;
}
