// SPDX-License-Identifier: GPL-2.0
/*
 * preempt DIR MB...: bench/mpi/preempt's job.  For each MB, every rank
 * overwrites DIR/dirty with MB MiB of fresh pseudo-random bytes (left in
 * the page cache, not synced: what a preemption notice finds dirty) and
 * the ranks meet at a barrier; then the notice arrives at rank 0, which
 * takes the time and passes it on to every rank (MPI_Bcast), and the job
 * checkpoints globally (blobcr_mpi_checkpoint(): sync, one checkpoint per
 * VM, the versions uploaded, one group published).  Rank 0 prints
 * "res MB ms GROUP" per size: the time from the notice to the group
 * published.  One rank per VM; DIR is on the VM's checkpointed disk.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "blobcr-mpi.h"

#define CHUNK (1 << 20)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* MB MiB of xorshift64 output over @path, in place (no fsync). */
static void dirty(const char *path, long mb, uint64_t seed)
{
	static uint64_t buf[CHUNK / 8];
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	long i;
	size_t j;

	if (fd < 0) {
		perror(path);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	for (i = 0; i < mb; i++) {
		for (j = 0; j < CHUNK / 8; j++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			buf[j] = seed;
		}
		if (pwrite(fd, buf, CHUNK, (off_t)i * CHUNK) != CHUNK) {
			perror(path);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
	}
	close(fd);
}

int main(int argc, char **argv)
{
	char group[BLOBCR_MPI_GROUP_MAX], path[512];
	int rank, a;
	double t0 = 0;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (argc < 3) {
		if (!rank)
			fprintf(stderr, "usage: preempt DIR MB...\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	snprintf(path, sizeof(path), "%s/dirty", argv[1]);
	for (a = 2; a < argc; a++) {
		long mb = atol(argv[a]);
		int notice = 0;

		dirty(path, mb, 0x9e3779b97f4a7c15ULL * (rank + 1) + (uint64_t)a);
		MPI_Barrier(MPI_COMM_WORLD);
		if (!rank) {
			t0 = now_ms();
			notice = 1;
		}
		MPI_Bcast(&notice, 1, MPI_INT, 0, MPI_COMM_WORLD);
		if (blobcr_mpi_checkpoint(MPI_COMM_WORLD, argv[1], "preempt", group)) {
			if (!rank)
				fprintf(stderr, "preempt: %ld MB: %s\n", mb, blobcr_mpi_error());
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		if (!rank) {
			printf("res %ld %.0f %s\n", mb, now_ms() - t0, group);
			fflush(stdout);
		}
	}
	MPI_Finalize();
	return 0;
}
