/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr-mpi.h - global checkpoints of an MPI job whose ranks run in VMs
 * (or host jobs) served by blobcr-proxyd: one snapshot of every VM, taken
 * at one consistent point of the job, published as one checkpoint group.
 *
 * The application saves its state into files on its VMs' disks and calls
 * blobcr_mpi_checkpoint() on all ranks, between two steps where no
 * message is in flight.  Every rank syncs, one rank per VM (per
 * deployment: ranks whose channels reach the same VM of the same host
 * share it) asks its proxy for a checkpoint of the VM, the versions are
 * gathered at rank 0, which asks its own proxy to publish them as the
 * job's next group JOB.N, and every rank learns the outcome.  A group is
 * published whole or not at all, so a restart (blobcrctl job plan and
 * job apply) always finds the latest complete global checkpoint.
 *
 * Just before the cut, each VM's first rank writes the group's name into
 * DIR/.blobcr-group (DIR on that VM's checkpointed disk), so that a job
 * restarted from the group can tell, with blobcr_mpi_restart_test(), that
 * it is a restart and from which group.
 *
 * Link with libblobcr-mpi-openmpi.a or libblobcr-mpi-mpich.a (they hold
 * the guest library too), built against Debian's Open MPI and MPICH; the
 * shared libblobcr-mpi-openmpi.so is for ctypes and the like.  Both calls
 * are collective over @comm and return the same value on every rank.
 * Documentation/checkpoint-restart.rst, "Jobs", has an example.
 */
#ifndef BLOBCR_MPI_H
#define BLOBCR_MPI_H

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLOBCR_MPI_GROUP_MAX 128	/* a group's name, with its NUL */
#define BLOBCR_MPI_MARKER ".blobcr-group"	/* in DIR: the group's name */

/**
 * blobcr_mpi_checkpoint() - a global checkpoint of the job on @comm.
 * @dir: a directory on each VM's checkpointed disk (the job directory),
 *       where the group's name is written for blobcr_mpi_restart_test()
 * @label: the versions' label (1 to 63 printable characters), or NULL for
 *         the group's name
 * @group: receives the group's name, JOB.N (BLOBCR_MPI_GROUP_MAX bytes)
 *
 * Each rank's proxy channel is the guest library's default
 * ($BLOBCR_CHANNEL, the virtio-serial port, or vsock).  Returns once the
 * group is published (every version durable) or the checkpoint failed:
 * 0, or on every rank the same -errno, blobcr_mpi_error() saying which
 * rank failed and why.  A failed checkpoint publishes no group; the job
 * may go on and try again.  A rank that dies on the way takes the job
 * down (MPI's default) and leaves no group either.
 */
int blobcr_mpi_checkpoint(MPI_Comm comm, const char *dir, const char *label,
			  char *group);

/**
 * blobcr_mpi_restart_test() - whether the job on @comm runs from a global
 * checkpoint: every rank reads DIR/.blobcr-group.  Return: 1 and the
 * group's name in @group when all ranks read the same name (a restart
 * from that group); 0 when no rank finds one (a fresh start); -ESTALE
 * when they disagree (VMs deployed from different checkpoints: never
 * run on such a mix); another -errno if a rank cannot read its file.
 */
int blobcr_mpi_restart_test(MPI_Comm comm, const char *dir, char *group);

/**
 * The same two calls with a Fortran handle of the communicator
 * (MPI_Comm_c2f(), Fortran's integer, LAMMPS's lammps_get_mpi_comm()):
 * one ABI for every MPI, for Fortran and for ctypes.
 */
int blobcr_mpi_checkpoint_f(MPI_Fint comm, const char *dir, const char *label,
			    char *group);
int blobcr_mpi_restart_test_f(MPI_Fint comm, const char *dir, char *group);

/**
 * blobcr_mpi_error() - what went wrong in this thread's last failed call
 * (the same text on every rank); "" after a success.
 */
const char *blobcr_mpi_error(void);

#ifdef __cplusplus
}
#endif

#endif /* BLOBCR_MPI_H */
