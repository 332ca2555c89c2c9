// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr at 2^28 extents (a 1 TiB device of 4 KiB extents over
 * dm-zero): the loops whose length a table, a helper or an operator
 * chooses (prefetch, SET_BITMAP, UPLOADED, a failed commit's merge) give
 * the CPU back every chunk, and a prefetch queues a bounded number of
 * FETCHes.
 *
 * A SCHED_FIFO observer on the same CPU wakes every millisecond; the
 * longest gap between its wakeups while an operation runs is how long the
 * kernel kept the CPU.  With BLOBCR_ICOUNT set (tests/kernel/scale.vmt: one
 * vCPU, QEMU's -icount, where guest time counts instructions) the gap is
 * asserted; elsewhere it is only logged, because wall-clock time under TCG
 * moves with the host's load.
 */
#include <pthread.h>
#include <poll.h>
#include <sched.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

#define NAME		"blobcr-scale"
#define ZERO_NAME	"blobcr-scale-zero"
#define CHANNEL		"scale"
#define SCALE_EXTENTS	(1ULL << 28)
#define SCALE_SECTORS	(SCALE_EXTENTS * 8)
#define MAX_QUEUED	16384	/* BLOBCR_MAX_QUEUED_FETCHES */

#define STATUS_DIRTY	4
#define STATUS_FETCHES	6

/* Longest the kernel may keep the CPU, in guest time under -icount. */
#define MAX_GAP_MS	100

struct observer {
	pthread_t thread;
	volatile bool stop;
	volatile bool armed;
	volatile uint64_t max_gap_ns;
};

static void pin_to_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *observe(void *arg)
{
	struct sched_param sp = { .sched_priority = 50 };
	struct observer *o = arg;
	uint64_t last, t;

	pin_to_cpu0();
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	last = now_ns();
	while (!o->stop) {
		usleep(1000);
		t = now_ns();
		if (o->armed && t - last > o->max_gap_ns)
			o->max_gap_ns = t - last;
		last = t;
	}
	return NULL;
}

FIXTURE(scale) {
	struct observer obs;
	bool icount;
};

FIXTURE_SETUP(scale)
{
	self->icount = getenv("BLOBCR_ICOUNT");
	if (!dm_target_available("zero"))
		SKIP(return, "no dm-zero");
	ASSERT_EQ(0, run("dmsetup create " ZERO_NAME " --table '0 %llu zero'",
			 SCALE_SECTORS));
	pin_to_cpu0();
	ASSERT_EQ(0, pthread_create(&self->obs.thread, NULL, observe,
				    &self->obs));
}

FIXTURE_TEARDOWN(scale)
{
	self->obs.stop = true;
	pthread_join(self->obs.thread, NULL);
	run("dmsetup remove " NAME " 2>/dev/null");
	run("dmsetup remove " ZERO_NAME);
}

static void arm(FIXTURE_DATA(scale) *self)
{
	self->obs.max_gap_ns = 0;
	self->obs.armed = true;
}

/* Stop measuring; check the longest gap seen while @what ran. */
static void check_gap(struct __test_metadata *_metadata,
		      FIXTURE_DATA(scale) *self, const char *what)
{
	uint64_t ms;

	self->obs.armed = false;
	ms = self->obs.max_gap_ns / 1000000;
	TH_LOG("%s: the CPU was away for at most %llu ms%s", what,
	       (unsigned long long)ms,
	       self->icount ? " (guest time, -icount)" : " (wall clock)");
	if (self->icount)
		EXPECT_GE(MAX_GAP_MS, ms) TH_LOG("%s kept the CPU", what);
}

static int create(const char *features)
{
	return run("dmsetup create " NAME " --table '0 %llu blobcr /dev/mapper/" ZERO_NAME " 8 " CHANNEL " %s'",
		   SCALE_SECTORS, features);
}

TEST_F(scale, prefetch_over_present_extents)
{
	ASSERT_EQ(0, create("1 all_present"));
	arm(self);
	EXPECT_EQ(0, run("dmsetup message " NAME " 0 prefetch 0 %llu",
			 SCALE_EXTENTS));
	check_gap(_metadata, self, "prefetch of 2^28 present extents");
	EXPECT_EQ(0, dm_status_field(NAME, STATUS_FETCHES, NULL, 0));
}

TEST_F(scale, prefetch_queues_a_bounded_number)
{
	ASSERT_EQ(0, create("2 helper_timeout_ms 0"));
	arm(self);
	/* Refused once the queue is full, with what it queued kept. */
	EXPECT_NE(0, run("dmsetup message " NAME " 0 prefetch 0 %llu 2>/dev/null",
			 SCALE_EXTENTS));
	check_gap(_metadata, self, "prefetch of 2^28 absent extents");
	EXPECT_EQ(MAX_QUEUED, dm_status_field(NAME, STATUS_FETCHES, NULL, 0));
}

/*
 * A commit of 2^28 extents, played by hand: SET_BITMAP makes them dirty,
 * the helper declares them all UPLOADED in one reply, then fails the
 * commit, whose set goes back to the dirty set.
 */
TEST_F(scale, huge_commit_set)
{
	struct blobcr_bitmap b = { .which = BLOBCR_BITMAP_DIRTY,
				   .count = SCALE_EXTENTS };
	struct blobcr_reply rp = { .op = BLOBCR_OP_UPLOADED,
				   .nr_extents = SCALE_EXTENTS };
	struct blobcr_attach a = { 0 };
	size_t words = SCALE_EXTENTS / 64;
	uint64_t *map = malloc(words * 8);
	struct blobcr_request rq;
	struct pollfd p;
	int fd, status;
	pid_t pid;

	ASSERT_NE(NULL, map);
	ASSERT_EQ(0, create("3 all_present helper_timeout_ms 0"));
	fd = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_ATTACH, &a));

	memset(map, 0xff, words * 8);
	b.addr = (uintptr_t)map;
	arm(self);
	ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_SET_BITMAP, &b));
	check_gap(_metadata, self, "SET_BITMAP of 2^28 dirty extents");
	EXPECT_EQ(SCALE_EXTENTS, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct blobcr_commit c;

		_exit(channel_commit(CHANNEL, &c) == -EIO ? 0 : 1);
	}
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, WAIT_LIMIT_MS));
	ASSERT_EQ(sizeof(rq), read(fd, &rq, sizeof(rq)));
	ASSERT_EQ(BLOBCR_OP_COMMIT, rq.op);
	EXPECT_EQ(SCALE_EXTENTS, rq.nr_extents);

	rp.id = rq.id;
	arm(self);
	EXPECT_EQ(sizeof(rp), write(fd, &rp, sizeof(rp)));
	check_gap(_metadata, self, "UPLOADED of 2^28 extents");

	rp = (struct blobcr_reply){ .id = rq.id, .op = BLOBCR_OP_COMMIT,
				    .status = -EIO };
	arm(self);
	EXPECT_EQ(sizeof(rp), write(fd, &rp, sizeof(rp)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	check_gap(_metadata, self, "failed commit of 2^28 extents");
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(SCALE_EXTENTS, dm_status_field(NAME, STATUS_DIRTY, NULL, 0));
	close(fd);
	free(map);
}

TEST_HARNESS_MAIN
