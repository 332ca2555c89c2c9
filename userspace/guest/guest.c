// SPDX-License-Identifier: GPL-2.0
/*
 * guest.c - the guest side of checkpoint requests (blobcr-guest.h): open
 * the VM's channel, send one framed request, wait for its reply, close.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "blobcr-guest.h"
#include "proxy_wire.h"

enum transport { T_VIRTIO, T_VSOCK, T_UNIX };

struct blobcr_guest {
	enum transport t;
	char path[108];
	unsigned int cid, port;
	int timeout_ms;
	uint64_t next_id;
	char error[256];
};

static int fail(struct blobcr_guest *g, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct blobcr_guest *g, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
	return err;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int parse_uint(const char *s, unsigned int *v)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || end == s || *end || n > 0xffffffffUL)
		return -EINVAL;
	*v = (unsigned int)n;
	return 0;
}

static int parse_channel(struct blobcr_guest *g, const char *spec)
{
	const char *colon;

	if (!strncmp(spec, "vsock:", 6)) {
		char cid[16];

		g->t = T_VSOCK;
		g->cid = VMADDR_CID_HOST;
		spec += 6;
		colon = strchr(spec, ':');
		if (colon) {
			if ((size_t)(colon - spec) >= sizeof(cid))
				return -EINVAL;
			memcpy(cid, spec, (size_t)(colon - spec));
			cid[colon - spec] = '\0';
			if (parse_uint(cid, &g->cid))
				return -EINVAL;
			spec = colon + 1;
		}
		return parse_uint(spec, &g->port);
	}
	if (!strncmp(spec, "unix:", 5)) {
		g->t = T_UNIX;
		spec += 5;
	} else if (!strncmp(spec, "virtio:", 7)) {
		g->t = T_VIRTIO;
		spec += 7;
	} else if (spec[0] == '/') {
		g->t = T_VIRTIO;
	} else {
		return -EINVAL;
	}
	if (!*spec || strlen(spec) >= sizeof(g->path))
		return -EINVAL;
	strcpy(g->path, spec);
	return 0;
}

int blobcr_guest_open(const char *channel, struct blobcr_guest **out)
{
	struct blobcr_guest *g = calloc(1, sizeof(*g));
	const char *env = getenv("BLOBCR_TIMEOUT_MS");
	char vsock[32];
	unsigned int t;
	int err;

	if (!g)
		return -ENOMEM;
	g->timeout_ms = env && !parse_uint(env, &t) && t ? (int)t : 600000;
	g->next_id = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ms() << 8;
	if (!channel)
		channel = getenv("BLOBCR_CHANNEL");
	if (!channel && !access(BLOBCR_GUEST_VIRTIO_PORT, F_OK))
		channel = BLOBCR_GUEST_VIRTIO_PORT;
	if (!channel) {
		snprintf(vsock, sizeof(vsock), "vsock:%d:%d", VMADDR_CID_HOST,
			 BLOBCR_GUEST_VSOCK_PORT);
		channel = vsock;
	}
	err = parse_channel(g, channel);
	if (err) {
		free(g);
		return err;
	}
	*out = g;
	return 0;
}

void blobcr_guest_close(struct blobcr_guest *g)
{
	free(g);
}

void blobcr_guest_set_timeout(struct blobcr_guest *g, int timeout_ms)
{
	g->timeout_ms = timeout_ms > 0 ? timeout_ms : 600000;
}

const char *blobcr_guest_error(const struct blobcr_guest *g)
{
	return g->error;
}

static const char *channel_name(const struct blobcr_guest *g, char *buf,
				size_t len)
{
	if (g->t == T_VSOCK)
		snprintf(buf, len, "vsock:%u:%u", g->cid, g->port);
	else
		snprintf(buf, len, "%s", g->path);
	return buf;
}

/*
 * Open the channel, non-blocking.  A virtio-serial port is opened by one
 * process at a time (EBUSY): wait for it until @deadline.
 */
static int connect_channel(struct blobcr_guest *g, int64_t deadline, int *fd)
{
	char name[128];

	if (g->t == T_VIRTIO) {
		for (;;) {
			*fd = open(g->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (*fd >= 0) {
				uint8_t stale[4096];

				/* What earlier users left unread: not ours. */
				while (read(*fd, stale, sizeof(stale)) > 0)
					;
				return 0;
			}
			if (errno != EBUSY || now_ms() >= deadline)
				break;
			usleep(20000);
		}
		return fail(g, errno == EBUSY ? -ETIMEDOUT : -errno,
			    "%s: %s", g->path, errno == EBUSY ?
			    "still in use by another process" : strerror(errno));
	}
	if (g->t == T_VSOCK) {
		struct sockaddr_vm a = { .svm_family = AF_VSOCK,
					 .svm_cid = g->cid, .svm_port = g->port };

		*fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (*fd >= 0 && connect(*fd, (struct sockaddr *)&a, sizeof(a)))
			goto out_err;
	} else {
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		strcpy(a.sun_path, g->path);
		*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (*fd >= 0 && connect(*fd, (struct sockaddr *)&a, sizeof(a)))
			goto out_err;
	}
	if (*fd < 0)
		return fail(g, -errno, "socket: %s", strerror(errno));
	fcntl(*fd, F_SETFL, O_NONBLOCK);
	return 0;
out_err:
	{
		int err = -errno;

		close(*fd);
		return fail(g, err, "cannot reach the checkpoint proxy at %s: %s",
			    channel_name(g, name, sizeof(name)), strerror(-err));
	}
}

/* Wait for @events on @fd until @deadline.  Return: revents, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int r;

	do {
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
	} while (r == 0 || (r < 0 && errno == EINTR));
	return r < 0 ? -errno : p.revents;
}

static int send_all(struct blobcr_guest *g, int fd, const uint8_t *buf,
		    size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fail(g, -errno, "sending the request: %s",
				    strerror(errno));
		n = wait_fd(fd, POLLOUT, deadline);
		if (n == -ETIMEDOUT)
			return fail(g, -ETIMEDOUT,
				    "the checkpoint proxy is not connected to this channel");
		if (n < 0)
			return fail(g, (int)n, "poll: %s", strerror((int)-n));
		/* A virtio port says POLLHUP while the host side is closed. */
		if ((n & (POLLHUP | POLLERR)) && !(n & POLLOUT)) {
			if (g->t != T_VIRTIO)
				return fail(g, -ECONNRESET,
					    "the checkpoint proxy closed the connection");
			usleep(50000);
		}
	}
	return 0;
}

/* How often one request is sent again after the proxy reconnected. */
#define MAX_RESENDS 16

/*
 * Read frames until the reply to @id; other frames (a stale reply to a
 * process that died, garbage) are dropped.  On a virtio-serial port, a
 * HELLO means that the proxy (re)connected after the request went out and
 * may not have it: @req goes out again (the proxy answers a request sent
 * again with what the first one started).  The reply's payload goes to
 * *@payload (malloc'ed), its header to *@h.
 */
static int recv_reply(struct blobcr_guest *g, int fd, const struct proxy_enc *req,
		      uint64_t id, int64_t deadline, struct proxy_hdr *h,
		      uint8_t **payload)
{
	size_t cap = PROXY_HDR_LEN + PROXY_MAX_PAYLOAD, len = 0;
	uint8_t *buf = malloc(cap);
	int err, resends = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		long f = proxy_find_frame(buf, len, h);
		ssize_t n;

		if (f < 0) {
			memmove(buf, buf - f, len + (size_t)f);
			len += (size_t)f;
			continue;
		}
		if (f > 0) {
			if (h->id == id && (h->flags & PROXY_F_REPLY)) {
				*payload = malloc(h->length + 1);
				if (!*payload) {
					err = -ENOMEM;
					break;
				}
				memcpy(*payload, buf + PROXY_HDR_LEN, h->length);
				free(buf);
				return 0;
			}
			if (h->op == PROXY_OP_HELLO && (h->flags & PROXY_F_REPLY) &&
			    g->t == T_VIRTIO && resends++ < MAX_RESENDS) {
				err = send_all(g, fd, req->buf, req->len, deadline);
				if (err)
					break;
			}
			memmove(buf, buf + f, len - (size_t)f);
			len -= (size_t)f;
			continue;
		}
		n = read(fd, buf + len, cap - len);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0) {
			err = fail(g, -ECONNRESET,
				   "the checkpoint proxy went away before answering");
			break;
		}
		if (errno != EAGAIN && errno != EINTR) {
			err = fail(g, -errno, "reading the answer: %s",
				   strerror(errno));
			break;
		}
		n = wait_fd(fd, POLLIN, deadline);
		if (n == -ETIMEDOUT) {
			err = fail(g, -ETIMEDOUT,
				   "no answer from the checkpoint proxy in %d ms",
				   g->timeout_ms);
			break;
		}
		if (n < 0) {
			err = fail(g, (int)n, "poll: %s", strerror((int)-n));
			break;
		}
		if ((n & (POLLHUP | POLLERR)) && !(n & POLLIN)) {
			err = fail(g, -ECONNRESET,
				   "the checkpoint proxy went away before answering");
			break;
		}
	}
	free(buf);
	return err;
}

/*
 * One request: @req's payload (already encoded after the header space)
 * goes out as @op; the reply's payload is decoded into @d (from
 * *@payload, to be freed by the caller).
 */
static int call(struct blobcr_guest *g, uint8_t op, struct proxy_enc *req,
		uint8_t **payload, struct proxy_dec *d)
{
	struct proxy_hdr h = { .op = op, .id = ++g->next_id };
	int64_t deadline = now_ms() + g->timeout_ms;
	int fd, err;

	*payload = NULL;
	g->error[0] = '\0';
	err = proxy_enc_finish(req, &h);
	if (err)
		return fail(g, err, "cannot encode the request: %s", strerror(-err));
	err = connect_channel(g, deadline, &fd);
	if (err)
		return err;
	err = send_all(g, fd, req->buf, req->len, deadline);
	if (!err)
		err = recv_reply(g, fd, req, h.id, deadline, &h, payload);
	close(fd);
	if (err)
		return err;
	*d = (struct proxy_dec){ .p = *payload, .left = h.length };
	if (h.status) {
		char msg[256];

		proxy_get_str(d, msg, sizeof(msg));
		return fail(g, h.status > 0 ? -EPROTO : h.status, "%s",
			    d->err ? strerror(-h.status) : msg);
	}
	return 0;
}

static int decode_result(struct blobcr_guest *g, struct proxy_dec *d,
			 struct blobcr_guest_checkpoint *out)
{
	uint32_t n;

	*out = (struct blobcr_guest_checkpoint){ 0 };
	out->id = proxy_get_u64(d);
	out->durable = proxy_get_u32(d) == PROXY_STATE_DURABLE;
	out->held_ms = (double)proxy_get_u64(d) / 1e3;
	out->paused_ms = (double)proxy_get_u64(d) / 1e3;
	out->frozen_ms = (double)proxy_get_u64(d) / 1e3;
	out->published_ms = (double)proxy_get_u64(d) / 1e3;
	n = proxy_get_u32(d);
	if (n > BLOBCR_GUEST_MAX_DISKS)
		return fail(g, -EPROTO, "the answer names %u disks", n);
	out->ndisks = n;
	for (uint32_t i = 0; i < n; i++) {
		struct blobcr_guest_disk *k = &out->disks[i];

		proxy_get_str(d, k->device, sizeof(k->device));
		proxy_get_str(d, k->image, sizeof(k->image));
		k->version = proxy_get_u64(d);
		k->extents = proxy_get_u64(d);
		k->bytes = proxy_get_u64(d);
	}
	return d->err ? fail(g, -EPROTO, "malformed answer from the proxy") : 0;
}

static int valid_label(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > BLOBCR_GUEST_LABEL_MAX)
		return 0;
	for (; *s; s++)
		if (*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int blobcr_guest_checkpoint(struct blobcr_guest *g, const char *label,
			    unsigned int flags,
			    struct blobcr_guest_checkpoint *out)
{
	struct proxy_enc req = { 0 };
	struct proxy_dec d;
	uint8_t *payload;
	int err;

	if (flags & ~(BLOBCR_GUEST_CUT | BLOBCR_GUEST_NOSYNC))
		return fail(g, -EINVAL, "unknown flags %#x", flags);
	if (label && !valid_label(label))
		return fail(g, -EINVAL, "a label is 1 to %d printable characters",
			    BLOBCR_GUEST_LABEL_MAX);
	/* What the application wrote must be on the disks before the cut. */
	if (!(flags & BLOBCR_GUEST_NOSYNC))
		sync();
	proxy_enc_start(&req);
	proxy_put_u32(&req, flags & BLOBCR_GUEST_CUT ? PROXY_CKPT_CUT : 0);
	proxy_put_str(&req, label);
	err = call(g, PROXY_OP_CHECKPOINT, &req, &payload, &d);
	if (!err)
		err = decode_result(g, &d, out);
	proxy_enc_free(&req);
	free(payload);
	return err;
}

int blobcr_guest_wait(struct blobcr_guest *g, uint64_t id,
		      struct blobcr_guest_checkpoint *out)
{
	struct proxy_enc req = { 0 };
	struct proxy_dec d;
	uint8_t *payload;
	int err;

	proxy_enc_start(&req);
	proxy_put_u64(&req, id);
	err = call(g, PROXY_OP_WAIT, &req, &payload, &d);
	if (!err)
		err = decode_result(g, &d, out);
	proxy_enc_free(&req);
	free(payload);
	return err;
}

int blobcr_guest_status(struct blobcr_guest *g, struct blobcr_guest_status *out)
{
	struct proxy_enc req = { 0 };
	struct proxy_dec d;
	uint8_t *payload;
	uint32_t n;
	int err;

	*out = (struct blobcr_guest_status){ 0 };
	proxy_enc_start(&req);
	err = call(g, PROXY_OP_QUERY, &req, &payload, &d);
	proxy_enc_free(&req);
	if (err)
		goto out;
	proxy_get_str(&d, out->vm, sizeof(out->vm));
	proxy_get_str(&d, out->mode, sizeof(out->mode));
	n = proxy_get_u32(&d);
	if (n > BLOBCR_GUEST_MAX_DISKS) {
		err = fail(g, -EPROTO, "the answer names %u disks", n);
		goto out;
	}
	out->ndisks = n;
	for (uint32_t i = 0; i < n; i++) {
		proxy_get_str(&d, out->disks[i].device, sizeof(out->disks[i].device));
		proxy_get_str(&d, out->disks[i].image, sizeof(out->disks[i].image));
		out->disks[i].last_version = proxy_get_u64(&d);
		out->disks[i].dirty_bytes = proxy_get_u64(&d);
		out->disks[i].committing = proxy_get_u64(&d);
		out->dirty_bytes += out->disks[i].dirty_bytes;
	}
	if (d.err)
		err = fail(g, -EPROTO, "malformed answer from the proxy");
out:
	free(payload);
	return err;
}

int blobcr_guest_cost(struct blobcr_guest *g, uint64_t *bytes)
{
	struct blobcr_guest_status s;
	int err = blobcr_guest_status(g, &s);

	if (!err)
		*bytes = s.dirty_bytes;
	return err;
}

int blobcr_guest_group(struct blobcr_guest *g, const char *name, unsigned int n,
		       const struct blobcr_guest_member *m, char *out, size_t len)
{
	struct proxy_enc req = { 0 };
	struct proxy_dec d;
	uint8_t *payload;
	int err;

	proxy_enc_start(&req);
	proxy_put_str(&req, n ? name : "");
	proxy_put_u32(&req, n);
	for (unsigned int i = 0; i < n; i++) {
		proxy_put_str(&req, m[i].image);
		proxy_put_u64(&req, m[i].version);
	}
	err = call(g, PROXY_OP_GROUP, &req, &payload, &d);
	if (!err) {
		proxy_get_str(&d, out, len);
		if (d.err)
			err = fail(g, -EPROTO, "malformed answer from the proxy");
	}
	proxy_enc_free(&req);
	free(payload);
	return err;
}
