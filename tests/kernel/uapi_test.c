// SPDX-License-Identifier: GPL-2.0
/*
 * dm-blobcr UAPI: struct layouts, unknown bits, short buffers, replies
 * that are malformed or lie, odd COMMIT statuses, callers without
 * CAP_SYS_ADMIN: all refused or mapped, with the kernel unharmed.  The test
 * plays the helper itself.
 */
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include "blobcr_helper.h"
#include "blobcr_test.h"

#define NAME		"blobcr-uapi"
#define DEV		"/dev/mapper/" NAME
#define CHANNEL		"uapi"
#define NR_EXTENTS	100	/* not a multiple of 64 */
#define DEV_SECTORS	(NR_EXTENTS * EXTENT_SECTORS - 8)	/* short last */

TEST(struct_layouts)
{
	EXPECT_EQ(64, sizeof(struct blobcr_request));
	EXPECT_EQ(0, offsetof(struct blobcr_request, id));
	EXPECT_EQ(8, offsetof(struct blobcr_request, op));
	EXPECT_EQ(16, offsetof(struct blobcr_request, extent));
	EXPECT_EQ(24, offsetof(struct blobcr_request, nr_extents));
	EXPECT_EQ(64, sizeof(struct blobcr_reply));
	EXPECT_EQ(12, offsetof(struct blobcr_reply, status));
	EXPECT_EQ(32, offsetof(struct blobcr_reply, version));
	EXPECT_EQ(32, sizeof(struct blobcr_attach));
	EXPECT_EQ(128, sizeof(struct blobcr_info));
	EXPECT_EQ(48, sizeof(struct blobcr_bitmap));
	EXPECT_EQ(24, offsetof(struct blobcr_bitmap, addr));
	EXPECT_EQ(64, sizeof(struct blobcr_commit));
	EXPECT_EQ(8, offsetof(struct blobcr_commit, version));
	EXPECT_EQ(32, offsetof(struct blobcr_commit, commit_id));
	EXPECT_EQ(0, sizeof(struct blobcr_info) % 8);
}

FIXTURE(chan) {
	int fd;
	pthread_t reader;
	bool reading;
	long long result;
};

static void *read_extent0(void *arg)
{
	long long *result = arg;

	*result = verify_pattern(DEV, 4096, 4096, 21);
	return NULL;
}

FIXTURE_SETUP(chan)
{
	struct blobcr_attach a = { 0 };

	/* Long enough for a loaded machine; a failed test still ends. */
	ASSERT_EQ(0, dm_create(NAME, DEV_SECTORS, CHANNEL,
			       "2 helper_timeout_ms 120000"));
	self->fd = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ioctl(self->fd, BLOBCR_IOC_ATTACH, &a));
	EXPECT_NE(0, a.features & BLOBCR_F_COMMIT);
	self->reading = false;
}

FIXTURE_TEARDOWN(chan)
{
	close(self->fd);
	if (self->reading)
		pthread_join(self->reader, NULL);
	EXPECT_EQ(0, run("dmsetup remove " NAME));
}

/* Start a read of extent 0 and return its FETCH request. */
static void start_fetch(struct __test_metadata *_metadata,
			FIXTURE_DATA(chan) *self, struct blobcr_request *rq)
{
	struct pollfd p = { .fd = self->fd, .events = POLLIN };

	ASSERT_EQ(0, pthread_create(&self->reader, NULL, read_extent0,
				    &self->result));
	self->reading = true;
	ASSERT_EQ(1, poll(&p, 1, WAIT_LIMIT_MS));
	ASSERT_EQ(sizeof(*rq), read(self->fd, rq, sizeof(*rq)));
	ASSERT_EQ(BLOBCR_OP_FETCH, rq->op);
	ASSERT_EQ(0, rq->extent);
	ASSERT_EQ(1, rq->nr_extents);
	ASSERT_EQ(0, rq->flags);
}

static int reply(int fd, const struct blobcr_reply *rp)
{
	return write(fd, rp, sizeof(*rp)) == sizeof(*rp) ? 0 : -errno;
}

TEST_F(chan, lying_replies_refused)
{
	struct blobcr_request rq;
	struct blobcr_reply rp, bad;
	char small[63] = { 0 };

	start_fetch(_metadata, self, &rq);
	memset(&rp, 0, sizeof(rp));
	rp.id = rq.id;
	rp.op = BLOBCR_OP_FETCH;
	rp.extent = rq.extent;
	rp.nr_extents = rq.nr_extents;

	EXPECT_EQ(-1, write(self->fd, small, sizeof(small)));
	EXPECT_EQ(EINVAL, errno);
	bad = rp; bad.id = rq.id + 1000;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.extent = 1;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.extent = ~0ULL;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.nr_extents = 2;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.nr_extents = ~0ULL;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.op = 99;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.op = BLOBCR_OP_COMMIT;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.op = BLOBCR_OP_UPLOADED;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.flags = 1;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.reserved[2] = 1;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.status = 5;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.status = -100000;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	bad = rp; bad.version = 3;
	EXPECT_EQ(-EINVAL, reply(self->fd, &bad));
	{
		/* A bad pointer: EFAULT, no oops. */
		void *volatile bad_ptr = (void *)8;

		EXPECT_EQ(-1, write(self->fd, bad_ptr, sizeof(rp)));
		EXPECT_EQ(EFAULT, errno);
	}

	/* The request still waits; the true reply completes it. */
	ASSERT_EQ(0, write_pattern(cache_disk(), 0, EXTENT_BYTES, 21));
	EXPECT_EQ(0, reply(self->fd, &rp));
	pthread_join(self->reader, NULL);
	self->reading = false;
	EXPECT_EQ(-1, self->result);
	/* Twice: the id is gone. */
	EXPECT_EQ(-EINVAL, reply(self->fd, &rp));
}

TEST_F(chan, reply_from_another_file_refused)
{
	struct blobcr_attach a = { 0 };
	struct blobcr_request rq;
	struct blobcr_reply rp = { 0 };
	int fd2;

	start_fetch(_metadata, self, &rq);
	fd2 = channel_open(CHANNEL, O_RDWR);
	ASSERT_LE(0, fd2);
	rp.id = rq.id;
	rp.op = BLOBCR_OP_FETCH;
	rp.extent = rq.extent;
	rp.nr_extents = rq.nr_extents;
	/* Not attached. */
	EXPECT_EQ(-ENOTCONN, reply(fd2, &rp));
	ASSERT_EQ(0, ioctl(fd2, BLOBCR_IOC_ATTACH, &a));
	/* Attached, but the request is not its own. */
	EXPECT_EQ(-EINVAL, reply(fd2, &rp));
	close(fd2);
	rp.status = -EIO;
	EXPECT_EQ(0, reply(self->fd, &rp));
	pthread_join(self->reader, NULL);
	self->reading = false;
	EXPECT_EQ(-2, self->result);
}

TEST_F(chan, short_read_buffer_and_nonblocking)
{
	char small[32];
	struct blobcr_request rq;
	int fd;

	EXPECT_EQ(-1, read(self->fd, small, sizeof(small)));
	EXPECT_EQ(EINVAL, errno);
	fd = channel_open(CHANNEL, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	/* Not attached. */
	EXPECT_EQ(-1, read(fd, &rq, sizeof(rq)));
	EXPECT_EQ(ENOTCONN, errno);
	close(fd);
	fd = channel_open(CHANNEL, O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	{
		struct blobcr_attach a = { 0 };

		ASSERT_EQ(0, ioctl(fd, BLOBCR_IOC_ATTACH, &a));
	}
	EXPECT_EQ(-1, read(fd, &rq, sizeof(rq)));
	EXPECT_EQ(EAGAIN, errno);
	close(fd);
}

TEST_F(chan, ioctl_arguments_checked)
{
	struct blobcr_attach a = { 0 };
	struct blobcr_bitmap b = { 0 };
	struct blobcr_commit c = { 0 };
	struct blobcr_info info;
	uint64_t map[4] = { 0 };
	int ro;

	a.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);
	a.flags = 0;
	a.reserved[1] = 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_ATTACH, &a));
	EXPECT_EQ(EINVAL, errno);

	ASSERT_EQ(0, ioctl(self->fd, BLOBCR_IOC_GET_INFO, &info));
	EXPECT_EQ(NR_EXTENTS, info.nr_extents);
	EXPECT_EQ(DEV_SECTORS, info.dev_sectors);
	EXPECT_EQ(EXTENT_SECTORS, info.extent_sectors);
	EXPECT_EQ(BLOBCR_MODE_RW, info.mode);
	EXPECT_EQ(1, info.nr_helpers);

	b.addr = (uintptr_t)map;
	b.count = NR_EXTENTS;
	EXPECT_EQ(0, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.count = NR_EXTENTS + 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	EXPECT_EQ(EINVAL, errno);
	b.count = 0;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.count = ~0ULL;
	b.start = 64;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.count = 1;
	b.start = 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	EXPECT_EQ(EINVAL, errno);
	b.start = 128;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.start = 64;
	b.which = 7;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.which = BLOBCR_BITMAP_DIRTY;
	b.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	b.flags = 0;
	b.addr = 0;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
	EXPECT_EQ(EFAULT, errno);
	b.addr = (uintptr_t)map;
	b.which = BLOBCR_BITMAP_COMMIT;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_SET_BITMAP, &b));
	EXPECT_EQ(EINVAL, errno);

	c.flags = 1U << 1;	/* not a known flag */
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);
	c.flags = 0;
	c.reserved[0] = 1;
	EXPECT_EQ(-1, ioctl(self->fd, BLOBCR_IOC_COMMIT, &c));
	EXPECT_EQ(EINVAL, errno);

	EXPECT_EQ(-1, ioctl(self->fd, _IO(BLOBCR_IOCTL_MAGIC, 0x7f)));
	EXPECT_EQ(ENOTTY, errno);

	ro = channel_open(CHANNEL, O_RDONLY);
	ASSERT_LE(0, ro);
	memset(&c, 0, sizeof(c));
	EXPECT_EQ(-1, ioctl(ro, BLOBCR_IOC_COMMIT, &c));
	EXPECT_EQ(EBADF, errno);
	memset(&a, 0, sizeof(a));
	EXPECT_EQ(-1, ioctl(ro, BLOBCR_IOC_ATTACH, &a));
	EXPECT_EQ(EBADF, errno);
	close(ro);
}

TEST_F(chan, short_last_extent_and_write_commit_status)
{
	struct blobcr_request rq;
	struct blobcr_reply rp = { 0 };
	struct blobcr_commit c = { 0 };
	struct blobcr_bitmap b = { .which = BLOBCR_BITMAP_COMMIT };
	uint64_t map[2] = { 0 };
	struct pollfd p = { .fd = self->fd, .events = POLLIN };

	/* A whole write of the short last extent needs no fetch. */
	ASSERT_EQ(0, write_pattern(DEV, (NR_EXTENTS - 1) * (uint64_t)EXTENT_BYTES,
				   EXTENT_BYTES - 4096, 22));

	/* Nothing queued yet. */
	ASSERT_EQ(0, poll(&p, 1, 0));
	/* We play the helper: the commit ioctl runs in a child. */
	{
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (!pid) {
			int r = channel_commit(CHANNEL, &c);

			_exit(r == 0 && c.version == 77 && c.nr_extents == 1 ? 0 : 1);
		}
		ASSERT_EQ(1, poll(&p, 1, WAIT_LIMIT_MS));
		ASSERT_EQ(sizeof(rq), read(self->fd, &rq, sizeof(rq)));
		ASSERT_EQ(BLOBCR_OP_COMMIT, rq.op);
		ASSERT_EQ(1, rq.nr_extents);
		b.count = NR_EXTENTS;
		b.addr = (uintptr_t)map;
		ASSERT_EQ(0, ioctl(self->fd, BLOBCR_IOC_GET_BITMAP, &b));
		EXPECT_EQ(0, map[0]);
		EXPECT_EQ(1ULL << (NR_EXTENTS - 1 - 64), map[1]);

		rp.id = rq.id;
		rp.op = BLOBCR_OP_UPLOADED;
		rp.extent = NR_EXTENTS - 1;
		rp.nr_extents = 2;	/* past the end */
		EXPECT_EQ(-EINVAL, reply(self->fd, &rp));
		rp.nr_extents = 0;
		EXPECT_EQ(-EINVAL, reply(self->fd, &rp));
		rp.nr_extents = 1;
		EXPECT_EQ(0, reply(self->fd, &rp));
		rp.op = BLOBCR_OP_FETCH;
		EXPECT_EQ(-EINVAL, reply(self->fd, &rp));
		memset(&rp, 0, sizeof(rp));
		rp.id = rq.id;
		rp.op = BLOBCR_OP_COMMIT;
		rp.version = 77;
		EXPECT_EQ(0, reply(self->fd, &rp));
		{
			int status;

			ASSERT_EQ(pid, waitpid(pid, &status, 0));
			EXPECT_EQ(0, WEXITSTATUS(status));
		}
	}
}

/*
 * A commit whose helper (this test) replies @status: what the committer,
 * a child process, gets (0 or -errno).
 */
static int commit_replied(struct __test_metadata *_metadata,
			  FIXTURE_DATA(chan) *self, int status)
{
	struct pollfd p = { .fd = self->fd, .events = POLLIN };
	struct blobcr_reply rp = { .op = BLOBCR_OP_COMMIT, .status = status };
	struct blobcr_request rq;
	int fds[2], r = 1;
	pid_t pid;

	if (pipe(fds))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (!pid) {
		struct blobcr_commit c;

		r = channel_commit(CHANNEL, &c);
		_exit(write(fds[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	if (poll(&p, 1, WAIT_LIMIT_MS) == 1 &&
	    read(self->fd, &rq, sizeof(rq)) == sizeof(rq) &&
	    rq.op == BLOBCR_OP_COMMIT) {
		rp.id = rq.id;
		EXPECT_EQ(0, reply(self->fd, &rp));
	}
	if (read(fds[0], &r, sizeof(r)) != sizeof(r))
		r = 1;
	close(fds[0]);
	waitpid(pid, NULL, 0);
	return r;
}

/* Only a small set of statuses reaches the committer; the rest is EIO. */
TEST_F(chan, odd_commit_statuses_become_eio)
{
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -512 /* ERESTARTSYS */));
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -EBUSY));
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -ESTALE));
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -EINVAL));
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -EPERM));
	EXPECT_EQ(-ENOSPC, commit_replied(_metadata, self, -ENOSPC));
	EXPECT_EQ(-ETIMEDOUT, commit_replied(_metadata, self, -ETIMEDOUT));
	EXPECT_EQ(-EIO, commit_replied(_metadata, self, -EIO));
	/* None of them counted as a commit. */
	{
		struct blobcr_info info;

		ASSERT_EQ(0, ioctl(self->fd, BLOBCR_IOC_GET_INFO, &info));
		EXPECT_EQ(0, info.commits_done);
	}
}

/* Drop CAP_SYS_ADMIN from this process's effective and permitted sets. */
static int drop_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	return syscall(SYS_capset, &h, d);
}

/* errno of @cmd on @fd, 0 on success. */
static int ioctl_errno(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? errno : 0;
}

/*
 * Serving the device and changing it need CAP_SYS_ADMIN, as ublk's control
 * path does, even on a file opened with it: reading its state does not.
 */
TEST_F(chan, privileged_ioctls_need_cap_sys_admin)
{
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct blobcr_attach a = { 0 };
		struct blobcr_bitmap b = { .count = NR_EXTENTS };
		struct blobcr_commit c = { 0 }, w = { .commit_id = 1 };
		struct blobcr_info info;
		uint64_t map[2] = { 0 };
		int fd, bad = 0;

		b.addr = (uintptr_t)map;
		if (drop_cap_sys_admin())
			_exit(100);
		fd = channel_open(CHANNEL, O_RDWR);
		if (fd < 0)
			_exit(101);
		/* Each refused check sets a bit of the exit status. */
		bad |= (ioctl_errno(fd, BLOBCR_IOC_ATTACH, &a) != EPERM) << 0;
		bad |= (ioctl_errno(fd, BLOBCR_IOC_SET_BITMAP, &b) != EPERM) << 1;
		bad |= (ioctl_errno(fd, BLOBCR_IOC_COMMIT, &c) != EPERM) << 2;
		bad |= (ioctl_errno(fd, BLOBCR_IOC_COMMIT_WAIT, &w) != EPERM) << 3;
		/* The fixture's file, attached with the capability. */
		bad |= (ioctl_errno(self->fd, BLOBCR_IOC_COMMIT, &c) != EPERM) << 4;
		bad |= (ioctl_errno(fd, BLOBCR_IOC_GET_INFO, &info) != 0) << 5;
		bad |= (ioctl_errno(fd, BLOBCR_IOC_GET_BITMAP, &b) != 0) << 6;
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* Nothing was committed on the way. */
	EXPECT_EQ(0, dm_status_field(NAME, 7, NULL, 0));
}

TEST_HARNESS_MAIN
