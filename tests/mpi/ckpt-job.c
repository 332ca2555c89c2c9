// SPDX-License-Identifier: GPL-2.0
/*
 * ckpt-job DIR STEPS: a small MPI job that checkpoints itself globally
 * after every step (blobcr-mpi.h), built against Open MPI and MPICH.
 *
 * Each rank keeps its state in DIR/state.RANK (the last step it did) and
 * appends one line per step to DIR/log.RANK; DIR is on its VM's
 * checkpointed disk.  At start, blobcr_mpi_restart_test() says whether
 * the job runs from a global checkpoint; the ranks then go on from their
 * saved step.  Rank 0 prints, per step, "step S group G", or "step S
 * failed: WHY" per failed attempt (up to 3; a step whose checkpoints all
 * fail goes on without one), and at the start "fresh" or "restarted from
 * G at step S".  Exit 0 after STEPS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr-mpi.h"

#define CKPT_ATTEMPTS 3 /* per step; every rank gets the same outcome */

static int read_step(const char *path)
{
	FILE *f = fopen(path, "r");
	int step = -1;

	if (f) {
		if (fscanf(f, "%d", &step) != 1)
			step = -1;
		fclose(f);
	}
	return step;
}

static void write_step(const char *path, int step)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%d\n", step) < 0 || fclose(f)) {
		perror(path);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
}

int main(int argc, char **argv)
{
	char group[BLOBCR_MPI_GROUP_MAX], state[512], log[512];
	int rank, size, steps = 0, start = 0, r, lo, hi;
	FILE *f;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc != 3 || (steps = atoi(argv[2])) <= 0) {
		if (!rank)
			fprintf(stderr, "usage: ckpt-job DIR STEPS\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	snprintf(state, sizeof(state), "%s/state.%d", argv[1], rank);
	snprintf(log, sizeof(log), "%s/log.%d", argv[1], rank);

	r = blobcr_mpi_restart_test(MPI_COMM_WORLD, argv[1], group);
	if (r < 0) {
		if (!rank)
			printf("restart test failed: %s\n", blobcr_mpi_error());
		MPI_Finalize();
		return 1;
	}
	if (r) {
		start = read_step(state);
		/* Every rank must come back from the same step. */
		MPI_Allreduce(&start, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
		MPI_Allreduce(&start, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
		if (!rank)
			printf("restarted from %s at step %d%s\n", group, start,
			       lo == hi ? "" : " (ranks disagree!)");
		if (lo != hi || start < 0)
			MPI_Abort(MPI_COMM_WORLD, 3);
	} else if (!rank) {
		printf("fresh, %d ranks\n", size);
	}
	fflush(stdout);

	for (int step = start + 1; step <= steps; step++) {
		f = fopen(log, "a");
		if (!f || fprintf(f, "rank %d step %d\n", rank, step) < 0 || fclose(f))
			MPI_Abort(MPI_COMM_WORLD, 1);
		write_step(state, step);
		MPI_Barrier(MPI_COMM_WORLD);
		/* Retried as an application would: an upload can fail. */
		for (int attempt = 1; attempt <= CKPT_ATTEMPTS; attempt++) {
			r = blobcr_mpi_checkpoint(MPI_COMM_WORLD, argv[1], NULL, group);
			if (!rank) {
				if (r)
					printf("step %d failed: %s\n", step, blobcr_mpi_error());
				else
					printf("step %d group %s\n", step, group);
				fflush(stdout);
			}
			if (!r)
				break;
		}
	}
	MPI_Finalize();
	return 0;
}
