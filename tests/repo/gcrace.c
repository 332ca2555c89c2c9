// SPDX-License-Identifier: GPL-2.0
/*
 * gcrace - a commit in flight while a gc runs.
 *
 * Usage: gcrace META SOURCE TARGET
 * SOURCE is an image that has been deleted (its chunks are garbage but
 * still on the nodes), whose extent 0 comes on stdin; TARGET an existing
 * image of 32 MiB in 256 KiB extents.  The commit to TARGET reuses those
 * bytes (found by dedup, so not uploaded), then a gc runs, then the commit
 * publishes: the gc must spare that chunk (the commit counts on it) while
 * deleting the source's others, and the commit must publish and read back
 * intact.
 * Prints one line per check; exit status 0 when all passed.
 *
 * Usage: gcrace META --abandon IMAGE
 * A commit that never publishes: 128 extents of random bytes uploaded to
 * IMAGE (an image of 32 MiB in 256 KiB extents), then the process exits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "blobcr.h"

static int failed;

static void check(const char *what, int ok)
{
	printf("%s: %s\n", ok ? "pass" : "FAIL", what);
	failed += !ok;
}

/*
 * Commit @data as extents 0 to 127 of @image (32 MiB of 256 KiB extents):
 * the 128th fills the commit's batch, which makes it look the chunk up
 * (and, as the chunk is still on the nodes, not upload it) before the gc
 * that @gc_between asks for.
 */
static int commit_batch(struct blobcr_client *c, const char *image,
			const void *data, struct blobcr_gc_stats *st,
			uint32_t *ver)
{
	struct blobcr_changeset *cm = NULL;
	int err = blobcr_commit_begin(c, image, &cm);

	for (uint64_t e = 0; !err && e < 128; e++)
		err = blobcr_commit_extent(cm, e, data);
	if (!err)
		err = blobcr_gc(c, st);
	if (!err)
		err = blobcr_commit_publish(cm, "gcrace", ver);
	if (cm)
		blobcr_commit_free(cm);
	return err;
}

/* Upload 128 random extents to @image and leave without publishing. */
static int abandon(struct blobcr_client *c, const char *image)
{
	struct blobcr_changeset *cm = NULL;
	static uint8_t data[262144];
	int err = blobcr_commit_begin(c, image, &cm);

	for (uint64_t e = 0; !err && e < 128; e++) {
		for (size_t off = 0; off < sizeof(data); off += 256)
			if (getrandom(data + off, 256, 0) != 256)
				return -EIO;
		err = blobcr_commit_extent(cm, e, data);
	}
	if (err)
		fprintf(stderr, "gcrace: %s\n", blobcr_strerror(err));
	return err ? 1 : 0; /* no publish, no free: as if killed */
}

int main(int argc, char **argv)
{
	struct blobcr_image_info info;
	struct blobcr_extent_loc loc;
	struct blobcr_get g = { 0 };
	struct blobcr_gc_stats st = { 0 };
	struct blobcr_client *c;
	uint64_t ext = 0;
	uint8_t *data, *back;
	uint32_t ver = 0;
	int err;

	if (argc != 4) {
		fprintf(stderr, "Usage: gcrace META SOURCE TARGET\n"
			"       gcrace META --abandon IMAGE\n");
		return 2;
	}
	err = blobcr_connect(argv[1], NULL, &c);
	if (!err && !strcmp(argv[2], "--abandon"))
		return abandon(c, argv[3]);
	if (!err)
		err = blobcr_image_info(c, argv[3], &info);
	if (err) {
		fprintf(stderr, "gcrace: %s\n", blobcr_strerror(err));
		return 1;
	}
	data = malloc(info.extent_size);
	back = malloc(info.extent_size);
	if (!data || !back)
		return 1;
	/* SOURCE@1 is deleted; its extent 0 comes on stdin. */
	if (fread(data, 1, info.extent_size, stdin) != info.extent_size) {
		fprintf(stderr, "gcrace: give SOURCE's extent 0 on stdin\n");
		return 1;
	}
	err = commit_batch(c, argv[3], data, &st, &ver);
	check("a publish that overlaps a gc succeeds", err == 0);
	printf("# gc: deleted=%llu spared=%llu\n",
	       (unsigned long long)st.chunks_deleted,
	       (unsigned long long)st.spared);
	check("the gc deleted the source's 127 other chunks and spared the "
	      "commit's", st.chunks_deleted == 127 && st.spared == 1);
	err = blobcr_lookup(c, argv[3], ver, &ext, 1, &loc);
	g.loc = &loc;
	g.buf = back;
	g.len = info.extent_size;
	if (!err)
		err = blobcr_get_chunks(c, &g, 1);
	check("its chunk is on the nodes and intact",
	      !err && !memcmp(data, back, info.extent_size));
	blobcr_close(c);
	free(data);
	free(back);
	return failed ? 1 : 0;
}
