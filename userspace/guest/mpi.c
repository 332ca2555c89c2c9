// SPDX-License-Identifier: GPL-2.0
/*
 * mpi.c - global checkpoints of an MPI job (blobcr-mpi.h), built once per
 * MPI library (MPI_Comm differs between Open MPI and MPICH).
 *
 * One global checkpoint, on every rank of @comm:
 *   1. each rank asks its proxy which VM it runs in (QUERY); ranks in one
 *      OS instance (MPI_COMM_TYPE_SHARED) that name the same VM share it,
 *      and the first of them is the VM's leader;
 *   2. rank 0 asks its proxy for the job's next group name, JOB.N;
 *   3. each leader writes JOB.N into DIR/.blobcr-group, every rank syncs,
 *      and an all-reduce of the ranks' errors serves as the barrier;
 *   4. each leader asks its proxy for a checkpoint of its VM and waits for
 *      the versions (durable);
 *   5. the versions are gathered at rank 0, which asks its proxy to
 *      publish them as group JOB.N (metad checks in one transaction that
 *      all exist);
 *   6. rank 0 broadcasts the outcome: no rank returns before the publish.
 * A failure at any step makes every rank return the same error, and no
 * group is published after a failed step.  MPI calls use the
 * communicator's error handler (MPI_ERRORS_ARE_FATAL unless the
 * application set another): an MPI failure, such as a dead rank, ends the
 * job before any publish.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr-guest.h"
#include "blobcr-mpi.h"

#define MSG_MAX 256

static __thread char last_error[MSG_MAX];

const char *blobcr_mpi_error(void)
{
	return last_error;
}

static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

/*
 * Tests only: with BLOBCR_MPI_TEST_STOP=STEP (or STEP:GROUP, only in the
 * checkpoint that makes GROUP) this rank stops itself (SIGSTOP) at STEP,
 * so that a test can kill a rank, a VM or a host at that exact point of a
 * global checkpoint; SIGCONT lets it go on.
 */
static void test_stop(const char *step, const char *group)
{
	const char *s = getenv("BLOBCR_MPI_TEST_STOP");
	size_t n = strlen(step);

	if (s && !strncmp(s, step, n) &&
	    (!s[n] || (s[n] == ':' && !strcmp(s + n + 1, group)))) {
		fprintf(stderr, "blobcr-mpi: pid %d stopped at %s of %s (BLOBCR_MPI_TEST_STOP)\n",
			(int)getpid(), step, group);
		raise(SIGSTOP);
	}
}

/*
 * Make every rank's @err the error of the lowest rank that failed, with
 * its message.  Collective: it is also a barrier.
 */
static int agree(MPI_Comm comm, int err)
{
	struct {
		int err;
		char msg[MSG_MAX];
	} m;
	int rank, in[2], out[2];

	MPI_Comm_rank(comm, &rank);
	in[0] = err ? 0 : 1;
	in[1] = rank;
	MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MINLOC, comm);
	if (out[0])
		return 0;
	m.err = err;
	snprintf(m.msg, sizeof(m.msg), "%s", last_error);
	MPI_Bcast(&m, sizeof(m), MPI_BYTE, out[1], comm);
	snprintf(last_error, sizeof(last_error), "%s", m.msg);
	return m.err;
}

/* "rank R (VM): " before the guest library's message. */
static int guest_fail(int err, int rank, const char *vm, struct blobcr_guest *g,
		      const char *what)
{
	return fail(err, "rank %d%s%s%s: %s: %s", rank, vm[0] ? " (VM " : "",
		    vm, vm[0] ? ")" : "", what,
		    g && blobcr_guest_error(g)[0] ? blobcr_guest_error(g) :
		    strerror(-err));
}

/*
 * The ranks that share this rank's VM (@vm, as its proxy names it) in
 * *@dep, and the VMs' leaders (the first rank of each) in *@leaders
 * (MPI_COMM_NULL on other ranks).  Rank 0 of @comm leads its VM and is
 * rank 0 of *@leaders.
 */
static void split_vms(MPI_Comm comm, const char *vm, MPI_Comm *dep,
		      MPI_Comm *leaders, int *leader)
{
	char (*names)[BLOBCR_GUEST_NAME_MAX];
	int rank, nrank, nsize, color, r;
	MPI_Comm node;

	MPI_Comm_rank(comm, &rank);
	MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
	MPI_Comm_rank(node, &nrank);
	MPI_Comm_size(node, &nsize);
	names = calloc((size_t)nsize, sizeof(*names));
	if (!names)
		MPI_Abort(comm, ENOMEM);
	MPI_Allgather(vm, BLOBCR_GUEST_NAME_MAX, MPI_CHAR, names,
		      BLOBCR_GUEST_NAME_MAX, MPI_CHAR, node);
	for (color = 0; strcmp(names[color], vm); color++)
		;
	free(names);
	MPI_Comm_split(node, color, nrank, dep);
	MPI_Comm_free(&node);
	MPI_Comm_rank(*dep, &r);
	*leader = r == 0;
	MPI_Comm_split(comm, *leader ? 0 : MPI_UNDEFINED, rank, leaders);
}

/* Write @name into DIR/.blobcr-group, durably (a rename, then the directory). */
static int write_marker(const char *dir, const char *name)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd, err = 0;
	size_t n = strlen(name);
	char line[BLOBCR_MPI_GROUP_MAX + 1];

	if (dfd < 0)
		return -errno;
	snprintf(line, sizeof(line), "%s\n", name);
	fd = openat(dfd, BLOBCR_MPI_MARKER ".tmp", O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, n + 1) != (ssize_t)(n + 1) || fsync(fd))
		err = -errno;
	if (fd >= 0 && close(fd) && !err)
		err = -errno;
	if (!err && (renameat(dfd, BLOBCR_MPI_MARKER ".tmp", dfd, BLOBCR_MPI_MARKER) ||
		     fsync(dfd)))
		err = -errno;
	close(dfd);
	return err;
}

/* Read DIR/.blobcr-group into @name ("" if there is none). */
static int read_marker(const char *dir, char *name)
{
	char path[PATH_MAX], buf[BLOBCR_MPI_GROUP_MAX + 1];
	ssize_t n;
	int fd;

	name[0] = '\0';
	snprintf(path, sizeof(path), "%s/" BLOBCR_MPI_MARKER, dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	if (n < 2 || n == (ssize_t)sizeof(buf) || buf[n - 1] != '\n' ||
	    memchr(buf, '\0', (size_t)n))
		return -EBADMSG;
	buf[n - 1] = '\0';
	memcpy(name, buf, (size_t)n);
	return 0;
}

/* One VM's part of a global checkpoint, as its leader sends it to rank 0. */
struct vm_part {
	int32_t err;
	uint32_t ndisks;
	struct {
		char image[BLOBCR_GUEST_NAME_MAX];
		uint64_t version;
	} disks[BLOBCR_GUEST_MAX_DISKS];
	char msg[MSG_MAX];
};

/* The outcome rank 0 sends everyone. */
struct outcome {
	int32_t err;
	char group[BLOBCR_MPI_GROUP_MAX];
	char msg[MSG_MAX];
};

/* Rank 0: publish the gathered parts as group @name. */
static int publish(struct blobcr_guest *g, const char *vm, const char *name,
		   const struct vm_part *parts, int nparts, char *out)
{
	struct blobcr_guest_member *m;
	unsigned int n = 0;
	int err;

	for (int i = 0; i < nparts; i++) {
		if (parts[i].err)
			return fail(parts[i].err, "%s", parts[i].msg);
		n += parts[i].ndisks;
	}
	m = calloc(n ? n : 1, sizeof(*m));
	if (!m)
		return fail(-ENOMEM, "rank 0: out of memory");
	n = 0;
	for (int i = 0; i < nparts; i++)
		for (uint32_t k = 0; k < parts[i].ndisks; k++)
			m[n++] = (struct blobcr_guest_member){
				.image = parts[i].disks[k].image,
				.version = parts[i].disks[k].version };
	test_stop("publish", name);
	err = blobcr_guest_group(g, name, n, m, out, BLOBCR_MPI_GROUP_MAX);
	free(m);
	if (err)
		return guest_fail(err, 0, vm, g, "publishing the group");
	test_stop("return", name);
	return 0;
}

/* The leader's checkpoint of its VM, into @p. */
static void checkpoint_vm(struct blobcr_guest *g, int rank, const char *vm,
			  const char *name, const char *label, struct vm_part *p)
{
	struct blobcr_guest_checkpoint ck;
	int err;

	memset(p, 0, sizeof(*p));
	test_stop("request", name);
	err = blobcr_guest_checkpoint(g, label, BLOBCR_GUEST_NOSYNC, &ck);
	if (err) {
		p->err = guest_fail(err, rank, vm, g, "checkpoint");
		snprintf(p->msg, sizeof(p->msg), "%s", last_error);
		return;
	}
	p->ndisks = ck.ndisks;
	for (unsigned int i = 0; i < ck.ndisks; i++) {
		snprintf(p->disks[i].image, sizeof(p->disks[i].image), "%s",
			 ck.disks[i].image);
		p->disks[i].version = ck.disks[i].version;
	}
	test_stop("gather", name);
}

int blobcr_mpi_checkpoint(MPI_Comm comm, const char *dir, const char *label,
			  char *group)
{
	MPI_Comm dep = MPI_COMM_NULL, leaders = MPI_COMM_NULL;
	struct blobcr_guest *g = NULL;
	struct blobcr_guest_status st = { 0 };
	struct vm_part mine, *parts = NULL;
	struct outcome o = { 0 };
	int rank, leader, nleaders, err;
	char name[BLOBCR_MPI_GROUP_MAX] = "";

	last_error[0] = '\0';
	MPI_Comm_rank(comm, &rank);
	err = blobcr_guest_open(NULL, &g);
	if (err)
		err = fail(err, "rank %d: no usable checkpoint channel (see BLOBCR_CHANNEL)",
			   rank);
	else if ((err = blobcr_guest_status(g, &st)))
		err = guest_fail(err, rank, "", g, "asking the proxy");
	if (!dir || !dir[0])
		err = fail(-EINVAL, "rank %d: no directory for the group's name", rank);
	err = agree(comm, err);
	if (err)
		goto out;
	split_vms(comm, st.vm, &dep, &leaders, &leader);

	if (!rank && (err = blobcr_guest_group(g, NULL, 0, NULL, name, sizeof(name))))
		err = guest_fail(err, rank, st.vm, g, "naming the group");
	err = agree(comm, err);
	if (err)
		goto out;
	MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, comm);
	if (!label && strlen(name) <= BLOBCR_GUEST_LABEL_MAX)
		label = name;

	/* The group's name goes into the snapshot; everyone's files are on disk. */
	if (leader && (err = write_marker(dir, name)))
		err = fail(err, "rank %d (VM %s): writing %s/" BLOBCR_MPI_MARKER ": %s",
			   rank, st.vm, dir, strerror(-err));
	sync();
	test_stop("barrier", name);
	err = agree(comm, err);
	if (err)
		goto out;

	if (leader) {
		MPI_Comm_size(leaders, &nleaders);
		checkpoint_vm(g, rank, st.vm, name, label, &mine);
		if (!rank) {
			parts = calloc((size_t)nleaders, sizeof(*parts));
			if (!parts)
				MPI_Abort(comm, ENOMEM);
		}
		MPI_Gather(&mine, sizeof(mine), MPI_BYTE, parts, sizeof(mine),
			   MPI_BYTE, 0, leaders);
	}
	if (!rank) {
		o.err = publish(g, st.vm, name, parts, nleaders, o.group);
		snprintf(o.msg, sizeof(o.msg), "%s", last_error);
	}
	MPI_Bcast(&o, sizeof(o), MPI_BYTE, 0, comm);
	err = o.err;
	if (err)
		fail(err, "%s", o.msg);
	else
		snprintf(group, BLOBCR_MPI_GROUP_MAX, "%s", o.group);
out:
	free(parts);
	if (leaders != MPI_COMM_NULL)
		MPI_Comm_free(&leaders);
	if (dep != MPI_COMM_NULL)
		MPI_Comm_free(&dep);
	if (g)
		blobcr_guest_close(g);
	return err;
}

int blobcr_mpi_restart_test(MPI_Comm comm, const char *dir, char *group)
{
	char mine[BLOBCR_MPI_GROUP_MAX], first[BLOBCR_MPI_GROUP_MAX];
	int rank, err, same, all;

	last_error[0] = '\0';
	MPI_Comm_rank(comm, &rank);
	err = read_marker(dir, mine);
	if (err)
		err = fail(err, "rank %d: reading %s/" BLOBCR_MPI_MARKER ": %s", rank,
			   dir, strerror(-err));
	err = agree(comm, err);
	if (err)
		return err;
	memcpy(first, mine, sizeof(first));
	MPI_Bcast(first, sizeof(first), MPI_CHAR, 0, comm);
	same = !strcmp(first, mine);
	MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, comm);
	if (!all) {
		err = same ? 0 : fail(-ESTALE, "rank %d runs from '%s', rank 0 from "
				      "'%s': the VMs come from different checkpoints",
				      rank, mine, first);
		return agree(comm, err);
	}
	if (!first[0])
		return 0;
	snprintf(group, BLOBCR_MPI_GROUP_MAX, "%s", first);
	return 1;
}

int blobcr_mpi_checkpoint_f(MPI_Fint comm, const char *dir, const char *label,
			    char *group)
{
	return blobcr_mpi_checkpoint(MPI_Comm_f2c(comm), dir, label, group);
}

int blobcr_mpi_restart_test_f(MPI_Fint comm, const char *dir, char *group)
{
	return blobcr_mpi_restart_test(MPI_Comm_f2c(comm), dir, group);
}
