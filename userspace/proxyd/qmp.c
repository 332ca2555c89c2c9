// SPDX-License-Identifier: GPL-2.0
/*
 * qmp.c - just enough of QEMU's JSON protocols, shared by QMP and the
 * guest agent: one JSON object per line; a command carries an "id" that
 * its answer echoes, and every other line (events, answers to someone
 * else's commands, the agent's parse errors) is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "proxyd.h"

int jchan_connect(struct jchan *c, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	c->len = 0;
	if (!path[0])
		return -ENOENT;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
		int err = -errno;

		close(c->fd);
		c->fd = -1;
		return err;
	}
	return 0;
}

void jchan_close(struct jchan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The next line (NUL-terminated, without its end) into @line. */
static int read_line(struct jchan *c, uint64_t deadline, char *line, size_t len)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		uint64_t now = blobcr_now_ms();
		ssize_t n;

		if (nl) {
			size_t k = (size_t)(nl - c->buf);

			snprintf(line, len, "%.*s", (int)k, c->buf);
			memmove(c->buf, nl + 1, c->len - k - 1);
			c->len -= k + 1;
			return 0;
		}
		if (c->len == sizeof(c->buf))
			c->len = 0; /* a line longer than we care for */
		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			continue;
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			c->len += (size_t)n;
	}
}

/* Whether @line is the answer to the command that carries @id. */
static int is_answer(const char *line, const char *id)
{
	char quoted[96];

	snprintf(quoted, sizeof(quoted), "\"%s\"", id);
	return strstr(line, quoted) &&
	       (strstr(line, "\"return\"") || strstr(line, "\"error\""));
}

int jchan_send_execute(int fd, const char *cmd, const char *id)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "{\"execute\": \"%s\", \"id\": \"%s\"}\n",
			 cmd, id);

	/* One write: a kill between two cannot leave half a command. */
	return write_all(fd, req, (size_t)n);
}

int jchan_execute(struct jchan *c, const char *cmd, const char *id,
		  int timeout_ms, char *err, size_t len)
{
	uint64_t deadline = blobcr_now_ms() + (uint64_t)timeout_ms;
	char line[4096];
	int r = jchan_send_execute(c->fd, cmd, id);

	while (!r) {
		r = read_line(c, deadline, line, sizeof(line));
		if (r || !is_answer(line, id))
			continue;
		if (!strstr(line, "\"error\""))
			return 0;
		{
			const char *d = strstr(line, "\"desc\"");

			snprintf(err, len, "%s: %s", cmd, d ? d + 6 : line);
		}
		return -EREMOTEIO;
	}
	snprintf(err, len, "%s: %s", cmd, r == -ETIMEDOUT ?
		 "no answer in time" : strerror(-r));
	return r;
}

int qmp_handshake(struct jchan *c, int timeout_ms)
{
	uint64_t deadline = blobcr_now_ms() + (uint64_t)timeout_ms;
	char line[4096], msg[256];
	int r;

	/* The greeting: {"QMP": {"version": ...}} */
	do {
		r = read_line(c, deadline, line, sizeof(line));
	} while (!r && !strstr(line, "\"QMP\""));
	if (r)
		return r;
	return jchan_execute(c, "qmp_capabilities", "blobcr-caps", timeout_ms,
			     msg, sizeof(msg));
}

int qga_sync(struct jchan *c, int timeout_ms)
{
	uint64_t deadline = blobcr_now_ms() + (uint64_t)timeout_ms;
	char req[160], want[32], line[4096];
	static unsigned int seq;
	unsigned int n = (unsigned int)getpid() * 7919u +
			 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
	int len, r;

	/*
	 * 0xff makes the agent drop a half-read request of an earlier client;
	 * its answer starts with 0xff, after which the next line is ours.
	 */
	len = snprintf(req, sizeof(req),
		       "\xff{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": %u}}\n",
		       n);
	r = write_all(c->fd, req, (size_t)len);
	snprintf(want, sizeof(want), "\"return\": %u", n);
	while (!r) {
		r = read_line(c, deadline, line, sizeof(line));
		if (!r && strstr(line, want))
			return 0;
	}
	return r;
}
