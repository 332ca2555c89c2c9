// SPDX-License-Identifier: GPL-2.0
/*
 * repobench - times the version manager's batched operations:
 *   repobench META IMAGE lookup [N]   a lookup of N extents of IMAGE
 *   repobench META IMAGE publish [N]  a publish of N changed extents
 *   repobench META IMAGE commit FILE [ROUNDS]
 *                                     FILE committed as a new version of
 *                                     IMAGE, its uploads in line and
 *                                     overlapped with the next batch's
 *                                     reading and hashing
 * N is 4096 by default, at most 4096; N=1 gives the fixed cost of one
 * request (a round trip, and for a publish the durable commit and the
 * manifest on R nodes).  Prints the median and the minimum of 21 runs in
 * milliseconds.  The commits: ROUNDS (default 5) of one of each, the
 * order alternating; each extent read from FILE gets the round, the way
 * and its number in its first bytes, so that every commit uploads all of
 * it; prints each way's median and the median of the rounds' ratios.
 * The publish remaps extent i of IMAGE to the chunk of extent i+1: every
 * entry names a chunk the nodes hold, so metad does all its checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"

#define N 4096
#define RUNS 21

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int publish(struct blobcr_peer *p, const char *image, uint32_t base,
		   const struct blobcr_extent_loc *locs, int n)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 256 + n * 50);

	if (err)
		return err;
	blobcr_enc_str(&e, image);
	blobcr_enc_u32(&e, base);
	blobcr_enc_str(&e, "bench");
	blobcr_enc_str(&e, "bench-writer"); /* a domain holding no node */
	blobcr_enc_u64(&e, 0); /* no commit session: nothing to spare */
	blobcr_enc_u32(&e, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		const struct blobcr_extent_loc *l = &locs[(i + 1) % N];

		blobcr_enc_u64(&e, (uint64_t)i);
		blobcr_enc_u8(&e, l->kind);
		if (l->kind != BLOBCR_EXT_DATA)
			continue;
		blobcr_enc_bytes(&e, l->id, BLOBCR_ID_SIZE);
		blobcr_enc_u8(&e, l->nreplicas);
		for (int k = 0; k < l->nreplicas; k++)
			blobcr_enc_u32(&e, l->replicas[k]);
	}
	err = blobcr_peer_call(p, BLOBCR_OP_PUBLISH, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/* Commit FILE (@fd, @size bytes) as a new version of @image, stamped. */
static int commit_file(struct blobcr_client *c, const char *image, int fd,
		       uint64_t size, uint32_t es, bool overlap, uint64_t stamp,
		       double *ms)
{
	struct blobcr_changeset *cm;
	uint8_t *buf = malloc(es);
	uint32_t version;
	double t0 = now_ms();
	int err = buf ? blobcr_commit_begin(c, image, &cm) : -ENOMEM;

	if (err) {
		free(buf);
		return err;
	}
	if (overlap)
		blobcr_commit_overlap(cm);
	for (uint64_t e = 0; !err && e * es < size; e++) {
		ssize_t n = pread(fd, buf, es, (off_t)(e * es));
		uint64_t mark[2] = { stamp, e };

		if (n < (ssize_t)sizeof(mark)) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		memset(buf + n, 0, es - (size_t)n);
		memcpy(buf, mark, sizeof(mark));
		err = blobcr_commit_extent(cm, e, buf);
	}
	if (!err)
		err = blobcr_commit_publish(cm, "bench", &version);
	*ms = now_ms() - t0;
	blobcr_commit_free(cm);
	free(buf);
	return err;
}

/* repobench META IMAGE commit FILE [ROUNDS] */
static int bench_commit(struct blobcr_client *c, const char *image,
			const struct blobcr_image_info *info, const char *file,
			int rounds)
{
	double t[2][64], ratio[64];
	int fd = open(file, O_RDONLY), err = 0;
	off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);

	if (size <= 0 || (uint64_t)size > info->size || rounds < 1 || rounds > 64) {
		fprintf(stderr, "repobench: %s: not a file of 1 byte to the image's size, or bad ROUNDS\n",
			file);
		return -EINVAL;
	}
	for (int r = 0; r < rounds && !err; r++) {
		for (int k = 0; k < 2 && !err; k++) {
			int way = (r + k) % 2; /* 0: in line, 1: overlapped */

			err = commit_file(c, image, fd, (uint64_t)size,
					  info->extent_size, way,
					  ((uint64_t)getpid() << 32) | (uint64_t)(r * 2 + way),
					  &t[way][r]);
		}
		ratio[r] = t[1][r] / t[0][r];
	}
	close(fd);
	if (err)
		return err;
	qsort(t[0], rounds, sizeof(double), cmp_double);
	qsort(t[1], rounds, sizeof(double), cmp_double);
	qsort(ratio, rounds, sizeof(double), cmp_double);
	printf("commit of %.0f MiB, %d rounds: in line median %.0f ms, overlapped median %.0f ms, ratio %.2f (rounds %.2f to %.2f)\n",
	       size / 1048576.0, rounds, t[0][rounds / 2], t[1][rounds / 2],
	       ratio[rounds / 2], ratio[0], ratio[rounds - 1]);
	return 0;
}

int main(int argc, char **argv)
{
	static struct blobcr_extent_loc locs[N];
	static uint64_t exts[N];
	struct blobcr_image_info info;
	struct blobcr_client *c;
	struct blobcr_key *key = NULL;
	struct blobcr_peer peer;
	double t[RUNS];
	int err, n = argc == 5 ? atoi(argv[4]) : N;

	bool commit = argc >= 5 && !strcmp(argv[3], "commit");

	if (commit)
		n = argc == 6 ? atoi(argv[5]) : 5;
	if ((argc != 4 && argc != 5 && !(commit && argc == 6)) || n < 1 ||
	    n > N) {
		fprintf(stderr, "Usage: repobench META IMAGE lookup|publish [N]\n"
			"       repobench META IMAGE commit FILE [ROUNDS]\n");
		return 2;
	}
	err = blobcr_connect(argv[1], NULL, &c);
	if (!err)
		err = blobcr_image_info(c, argv[2], &info);
	if (err) {
		fprintf(stderr, "repobench: %s\n", blobcr_strerror(err));
		return 1;
	}
	if (commit) {
		err = bench_commit(c, argv[2], &info, argv[4], n);
		if (err)
			fprintf(stderr, "repobench: commit: %s\n", blobcr_strerror(err));
		blobcr_close(c);
		return err ? 1 : 0;
	}
	for (int i = 0; i < N; i++)
		exts[i] = (uint64_t)i;
	/* The publishes go on a connection of their own, with our key. */
	err = blobcr_key_load(NULL, &key);
	if (!err)
		err = blobcr_peer_open(&peer, argv[1], key, BLOBCR_ROLE_METAD, 30000);
	for (int r = 0; r < RUNS && !err; r++) {
		double t0 = now_ms();

		if (!strcmp(argv[3], "lookup")) {
			err = blobcr_lookup(c, argv[2], 0, exts, (size_t)n, locs);
		} else {
			if (!r)
				err = blobcr_lookup(c, argv[2], 0, exts, N, locs);
			t0 = now_ms();
			if (!err)
				err = publish(&peer, argv[2], info.latest + (uint32_t)r,
					      locs, n);
		}
		t[r] = now_ms() - t0;
	}
	if (err) {
		fprintf(stderr, "repobench: %s: %s\n", argv[3], blobcr_strerror(err));
		return 1;
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_double);
	printf("%s of %d extents: median %.2f ms, min %.2f ms\n", argv[3], n,
	       t[RUNS / 2], t[0]);
	blobcr_peer_close(&peer);
	blobcr_key_free(key);
	blobcr_close(c);
	return 0;
}
