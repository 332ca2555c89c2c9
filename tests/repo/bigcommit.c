// SPDX-License-Identifier: GPL-2.0
/*
 * bigcommit - a commit of many changed extents, and its check.
 *
 * Usage: bigcommit META IMAGE N [TIMEOUT_MS]
 * Creates IMAGE of N extents of 4 KiB if it does not exist, and commits a
 * new version of it in which every one of its N extents changes: extent i
 * gets one of 16 contents (so that the upload is 16 chunks, whatever N).
 * Then looks all N up in that version, checks each names the chunk of its
 * content, and reads the last one back.  Prints "version=V", the time
 * the publish took ("publish_ms=T": bench/repo/run.sh reads it) and one
 * line per check; exit status 0 when all passed, else 1 (and the error of a
 * failed commit on stderr).  TIMEOUT_MS is the client's request timeout
 * (default 600000; 0: the library's own, as blobcrd has it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blobcr.h"

#define KINDS 16
#define LOOKUP 4096

static int failed;

static void check(const char *what, int ok)
{
	printf("%s: %s\n", ok ? "pass" : "FAIL", what);
	failed += !ok;
}

int main(int argc, char **argv)
{
	static struct blobcr_extent_loc locs[LOOKUP];
	static uint64_t exts[LOOKUP];
	uint8_t ids[KINDS][BLOBCR_ID_SIZE], *data[KINDS], *back;
	struct blobcr_image_info info;
	struct blobcr_changeset *cm = NULL;
	/* A transaction of a million entries on a loaded machine: no hurry. */
	struct blobcr_client_opts opts = { .timeout_ms = 600000 };
	struct blobcr_client *c;
	uint64_t n, wrong = 0;
	uint32_t ver = 0;
	struct timespec t0, t1;
	int err;

	if ((argc != 4 && argc != 5) || !(n = strtoull(argv[3], NULL, 10))) {
		fprintf(stderr, "Usage: bigcommit META IMAGE N [TIMEOUT_MS]\n");
		return 2;
	}
	if (argc == 5)
		opts.timeout_ms = atoi(argv[4]);
	err = blobcr_connect(argv[1], &opts, &c);
	if (!err)
		err = blobcr_image_create(c, argv[2], n * 4096, 4096);
	if (!err || err == -EEXIST)
		err = blobcr_image_info(c, argv[2], &info);
	if (err) {
		fprintf(stderr, "bigcommit: %s\n", blobcr_strerror(err));
		return 1;
	}
	back = malloc(info.extent_size);
	for (int k = 0; k < KINDS; k++) {
		data[k] = malloc(info.extent_size);
		if (!data[k] || !back)
			return 1;
		memset(data[k], 'a' + k, info.extent_size);
		blobcr_chunk_id(data[k], info.extent_size, ids[k]);
	}
	err = blobcr_commit_begin(c, argv[2], &cm);
	for (uint64_t e = 0; !err && e < n; e++)
		err = blobcr_commit_extent(cm, e, data[e % KINDS]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!err)
		err = blobcr_commit_publish(cm, "big", &ver);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	blobcr_commit_free(cm);
	if (err) {
		fprintf(stderr, "bigcommit: commit of %" PRIu64 " extents: %s\n", n,
			blobcr_strerror(err));
		return 1;
	}
	printf("version=%" PRIu32 "\npublish_ms=%.0f\n", ver,
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	for (uint64_t off = 0; !err && off < n; off += LOOKUP) {
		size_t cnt = n - off < LOOKUP ? (size_t)(n - off) : LOOKUP;

		for (size_t i = 0; i < cnt; i++)
			exts[i] = off + i;
		err = blobcr_lookup(c, argv[2], ver, exts, cnt, locs);
		for (size_t i = 0; !err && i < cnt; i++)
			wrong += locs[i].kind != BLOBCR_EXT_DATA ||
				 memcmp(locs[i].id, ids[(off + i) % KINDS],
					BLOBCR_ID_SIZE);
	}
	check("every extent of the version names its chunk", !err && !wrong);
	/* The last extent, read back from the nodes. */
	exts[0] = n - 1;
	err = blobcr_lookup(c, argv[2], ver, exts, 1, locs);
	if (!err) {
		struct blobcr_get g = { .loc = &locs[0], .buf = back,
					.len = info.extent_size };

		err = blobcr_get_chunks(c, &g, 1);
	}
	check("the last extent reads back", !err &&
	      !memcmp(back, data[(n - 1) % KINDS], info.extent_size));
	blobcr_close(c);
	return failed ? 1 : 0;
}
