// SPDX-License-Identifier: GPL-2.0
/*
 * serve.c - one connection on a VM's channel: frames in, one reply per
 * request, in order.  Whatever arrives on it is about that VM: requests
 * name no VM and no disk.  Garbage is skipped (proxy_find_frame()), a
 * malformed request gets an error reply, and the connection goes on.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "proxyd.h"

#define BUF_LEN (2 * (PROXY_HDR_LEN + PROXY_MAX_PAYLOAD))

struct conn {
	struct vm *vm; /* referenced */
	int fd;
	struct proxy_enc out;
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void put_result(struct proxy_enc *e, const struct ckpt *c)
{
	proxy_put_u64(e, c->id);
	proxy_put_u32(e, c->state == PROXY_STATE_DURABLE ? PROXY_STATE_DURABLE :
			 PROXY_STATE_CUT);
	proxy_put_u64(e, c->held_us);
	proxy_put_u64(e, c->paused_us);
	proxy_put_u64(e, c->frozen_us);
	proxy_put_u64(e, c->state == PROXY_STATE_DURABLE ? c->published_us : 0);
	proxy_put_u32(e, (uint32_t)c->ndisks);
	for (int i = 0; i < c->ndisks; i++) {
		proxy_put_str(e, c->disks[i].device);
		proxy_put_str(e, c->disks[i].image);
		proxy_put_u64(e, c->state == PROXY_STATE_DURABLE ?
			      c->disks[i].version : 0);
		proxy_put_u64(e, c->disks[i].extents);
		proxy_put_u64(e, c->disks[i].bytes);
	}
}

static int do_query(struct vm *vm, struct proxy_enc *e, char *msg, size_t len)
{
	proxy_put_str(e, vm->name);
	proxy_put_str(e, host_quiesce_name(vm->cfg.mode));
	proxy_put_u32(e, (uint32_t)vm->cfg.ndisks);
	for (int i = 0; i < vm->cfg.ndisks; i++) {
		const char *dm = vm->cfg.disks[i];
		char image[VM_NAME_MAX];
		struct blobcr_info in;
		int fd, err = host_open_channel(dm, &fd);

		if (!err) {
			err = host_info(fd, &in);
			close(fd);
		}
		if (err) {
			snprintf(msg, len, "disk %s: %s", dm, strerror(-err));
			return err;
		}
		if (host_commit_image(dm, image, sizeof(image)))
			snprintf(image, sizeof(image), "%s", dm);
		proxy_put_str(e, dm);
		proxy_put_str(e, image);
		proxy_put_u64(e, in.last_version);
		proxy_put_u64(e, in.nr_dirty * in.extent_sectors * 512ULL);
		proxy_put_u64(e, in.nr_committing);
	}
	return 0;
}

static int valid_label(const char *s)
{
	size_t n = strlen(s);

	if (n > 63)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* Serve one request; the reply's payload goes to @e, errors to @msg. */
static int handle(struct conn *cn, const struct proxy_hdr *h,
		  struct proxy_dec *d, struct proxy_enc *e, char *msg, size_t len)
{
	struct vm *vm = cn->vm;
	char label[128];
	struct ckpt c;
	uint32_t flags;
	uint64_t id;
	int err;

	switch (h->op) {
	case PROXY_OP_QUERY:
		return do_query(vm, e, msg, len);
	case PROXY_OP_CHECKPOINT:
		flags = proxy_get_u32(d);
		proxy_get_str(d, label, sizeof(label));
		if (d->err || d->left || (flags & ~PROXY_CKPT_CUT) || !valid_label(label)) {
			snprintf(msg, len, "malformed checkpoint request");
			return -EBADMSG;
		}
		log_info("%s: checkpoint requested%s%s%s", vm->name,
			 label[0] ? " (" : "", label, label[0] ? ")" : "");
		err = ckpt_run(vm, h->id, flags, label[0] ? label : NULL, &c);
		break;
	case PROXY_OP_WAIT:
		id = proxy_get_u64(d);
		if (d->err || d->left) {
			snprintf(msg, len, "malformed wait request");
			return -EBADMSG;
		}
		err = ckpt_wait(vm, id, true, &c);
		break;
	case PROXY_OP_GROUP:
		return group_serve(vm, d, e, msg, len);
	default:
		snprintf(msg, len, "unknown operation %u", h->op);
		return -EOPNOTSUPP;
	}
	if (err) {
		snprintf(msg, len, "%s", c.msg);
		return err;
	}
	put_result(e, &c);
	return 0;
}

static int reply(struct conn *cn, const struct proxy_hdr *req,
		 const uint8_t *payload)
{
	struct proxy_dec d = { .p = payload, .left = req->length };
	struct proxy_hdr h = { .op = req->op, .flags = PROXY_F_REPLY,
			       .id = req->id };
	char msg[256] = "";
	int err;

	if (cn->vm->removed) {
		snprintf(msg, sizeof(msg), "%s is no longer served here", cn->vm->name);
		err = -ENODEV;
	} else {
		proxy_enc_start(&cn->out);
		err = handle(cn, req, &d, &cn->out, msg, sizeof(msg));
	}
	if (err) {
		proxy_enc_start(&cn->out);
		proxy_put_str(&cn->out, msg);
		h.status = err;
	}
	err = proxy_enc_finish(&cn->out, &h);
	if (err) {
		log_err("%s: cannot encode a reply: %s", cn->vm->name, strerror(-err));
		return err;
	}
	return send_all(cn->fd, cn->out.buf, cn->out.len);
}

/*
 * Open the connection with a HELLO frame: on a virtio-serial port, whose
 * stream outlives the proxy's connections to it, it tells a guest waiting
 * for a reply that its request may be lost (the proxy died or dropped the
 * connection), and the guest sends it again.
 */
static int send_hello(struct conn *cn)
{
	struct proxy_hdr h = { .op = PROXY_OP_HELLO, .flags = PROXY_F_REPLY };

	int err;

	proxy_enc_start(&cn->out);
	err = proxy_enc_finish(&cn->out, &h);
	return err ? err : send_all(cn->fd, cn->out.buf, cn->out.len);
}

static void *conn_thread(void *arg)
{
	struct conn *cn = arg;
	uint8_t *buf = malloc(BUF_LEN);
	size_t len = 0;

	if (buf && send_hello(cn)) {
		free(buf);
		buf = NULL;
	}
	while (buf) {
		struct proxy_hdr h;
		long f = proxy_find_frame(buf, len, &h);
		ssize_t n;

		if (f < 0) {
			memmove(buf, buf - f, len + (size_t)f);
			len += (size_t)f;
			continue;
		}
		if (f > 0) {
			if (!(h.flags & PROXY_F_REPLY) && !h.status &&
			    reply(cn, &h, buf + PROXY_HDR_LEN))
				break;
			memmove(buf, buf + f, len - (size_t)f);
			len -= (size_t)f;
			continue;
		}
		n = read(cn->fd, buf + len, BUF_LEN - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	free(buf);
	proxy_enc_free(&cn->out);
	vm_conn_del(cn->vm, cn->fd);
	close(cn->fd);
	vm_put(cn->vm);
	free(cn);
	return NULL;
}

void serve_start(struct vm *vm, int fd)
{
	struct conn *cn = calloc(1, sizeof(*cn));
	pthread_attr_t attr;
	pthread_t th;

	if (cn && vm_conn_add(vm, fd)) {
		free(cn);
		cn = NULL;
	} else if (cn) {
		cn->vm = vm;
		cn->fd = fd;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (!pthread_create(&th, &attr, conn_thread, cn)) {
			pthread_attr_destroy(&attr);
			return;
		}
		pthread_attr_destroy(&attr);
		vm_conn_del(vm, fd);
		free(cn);
	}
	log_err("%s: cannot serve a connection: out of resources", vm->name);
	close(fd);
	vm_put(vm);
}
