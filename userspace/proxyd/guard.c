// SPDX-License-Identifier: GPL-2.0
/*
 * guard.c - the resume guard: a process of its own (blobcr-proxyd --guard
 * FD) that resumes whatever the proxy had quiesced if the proxy dies.
 *
 * Before it quiesces a VM the proxy sends the guard a HOLD message with
 * copies of the file descriptors that undo the quiesce (the QMP or guest
 * agent connection, the frozen mount points), and waits for the guard's
 * ack; once the VM is resumed it sends RELEASE.  When the proxy's end of
 * the socket pair closes (the proxy exited or was killed, even with
 * SIGKILL) the guard undoes every quiesce it still holds: "cont" on the
 * QMP connection, guest-fsfreeze-thaw on the agent's, FITHAW on the mount
 * points, then exits.  It ignores the terminal's and the service
 * manager's stop signals so that it outlives the proxy for that.  If the
 * guard dies, the proxy starts another one before its next quiesce.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "proxyd.h"

#define GUARD_HOLD 1
#define GUARD_RELEASE 2
#define GUARD_MAX_HELD 256
#define GUARD_UNDO_MS 30000

struct guard_msg {
	uint32_t type;
	uint32_t mode;
	uint64_t token;
	char vm[VM_NAME_MAX];
};

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static int guard_fd = -1;
static pid_t guard_pid;

int guard_start(void)
{
	int sv[2];
	char arg[16];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		snprintf(arg, sizeof(arg), "%d", sv[1]);
		execl("/proc/self/exe", "blobcr-proxyd", "--guard", arg, NULL);
		_exit(127);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFD, FD_CLOEXEC);
	if (guard_fd >= 0)
		close(guard_fd);
	guard_fd = sv[0];
	guard_pid = pid;
	log_info("resume guard started (pid %d)", (int)pid);
	return 0;
}

static int send_msg(const struct guard_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VM_MAX_MOUNTS)] = { 0 };
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	char ack;

	if (nfds > 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(guard_fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(*m))
		return -EPIPE;
	if (m->type == GUARD_HOLD && recv(guard_fd, &ack, 1, 0) != 1)
		return -EPIPE;
	return 0;
}

/* Reap a guard that died, and start a new one. */
static int guard_restart(void)
{
	if (guard_pid > 0)
		waitpid(guard_pid, NULL, WNOHANG);
	log_warn("the resume guard is gone; starting a new one");
	return guard_start();
}

int guard_hold(uint64_t token, int mode, const char *vm, const int *fds, int nfds)
{
	struct guard_msg m = { .type = GUARD_HOLD, .mode = (uint32_t)mode,
			       .token = token };
	int err;

	snprintf(m.vm, sizeof(m.vm), "%s", vm);
	pthread_mutex_lock(&guard_lock);
	err = send_msg(&m, fds, nfds);
	if (err && !guard_restart())
		err = send_msg(&m, fds, nfds);
	pthread_mutex_unlock(&guard_lock);
	return err;
}

void guard_release(uint64_t token)
{
	struct guard_msg m = { .type = GUARD_RELEASE, .token = token };

	pthread_mutex_lock(&guard_lock);
	send_msg(&m, NULL, 0);
	pthread_mutex_unlock(&guard_lock);
}

/* ---- the guard process ---- */

struct held {
	struct guard_msg m;
	int nfds;
	int fds[VM_MAX_MOUNTS];
};

static void undo(struct held *h)
{
	struct jchan c = { .fd = -1 };
	char msg[256] = "";
	int err = 0;

	switch (h->m.mode) {
	case HOST_Q_FSFREEZE:
		err = host_thaw(h->fds, (size_t)h->nfds);
		snprintf(msg, sizeof(msg), "%s", strerror(-err));
		break;
	case HOST_Q_QMP:
		c.fd = h->fds[0];
		err = jchan_execute(&c, "cont", "blobcr-guard", GUARD_UNDO_MS,
				    msg, sizeof(msg));
		break;
	case HOST_Q_QGA:
		c.fd = h->fds[0];
		err = qga_sync(&c, GUARD_UNDO_MS);
		if (!err)
			err = jchan_execute(&c, "guest-fsfreeze-thaw", "blobcr-guard",
					    GUARD_UNDO_MS, msg, sizeof(msg));
		break;
	}
	if (err)
		log_err("the proxy died with %s quiesced (%s); cannot resume it: %s",
			h->m.vm, host_quiesce_name(h->m.mode), msg);
	else
		log_warn("the proxy died with %s quiesced (%s): resumed it",
			 h->m.vm, host_quiesce_name(h->m.mode));
}

int guard_main(int fd)
{
	static struct held held[GUARD_MAX_HELD];
	int nheld = 0;

	blobcr_log_init("blobcr-proxyd-guard", BLOBCR_LOG_INFO);
	/* Outlive the proxy: a ^C or a stop of the service hits us too. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int) * VM_MAX_MOUNTS)];
		struct guard_msg m;
		struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		int i;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (m.type == GUARD_RELEASE) {
			for (i = 0; i < nheld && held[i].m.token != m.token; i++)
				;
			if (i == nheld)
				continue;
			for (int k = 0; k < held[i].nfds; k++)
				close(held[i].fds[k]);
			held[i] = held[--nheld];
			continue;
		}
		if (m.type != GUARD_HOLD || nheld == GUARD_MAX_HELD)
			break; /* the proxy is confused: treat it as dead */
		held[nheld] = (struct held){ .m = m };
		c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_type == SCM_RIGHTS) {
			held[nheld].nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(held[nheld].fds, CMSG_DATA(c),
			       sizeof(int) * (size_t)held[nheld].nfds);
		}
		nheld++;
		if (write(fd, "", 1) != 1)
			break;
	}
	for (int i = 0; i < nheld; i++)
		undo(&held[i]);
	return 0;
}
