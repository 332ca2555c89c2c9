// SPDX-License-Identifier: GPL-2.0
/*
 * util.c - logging, clocks, signals, the nanomsg server loop and the
 * synchronous request call.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "blobcr_util.h"

static const char *log_prog = "blobcr";
static int log_level = BLOBCR_LOG_INFO;

void blobcr_log_init(const char *prog, int level)
{
	log_prog = prog;
	log_level = level;
}

void blobcr_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s[%d] %s: ",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     log_prog, (int)getpid(), names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so that threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

uint64_t blobcr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t blobcr_wall_s(void)
{
	return (uint64_t)time(NULL);
}

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t blobcr_rendezvous_score(const uint8_t *id, uint32_t node)
{
	uint64_t h = 0;

	for (int i = 0; i < 8; i++)
		h = h << 8 | id[i];
	return mix64(h ^ mix64(node + 0x9e3779b97f4a7c15ull));
}

bool blobcr_valid_name(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (!n || n >= cap)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-:+", *s)))
			return false;
	return true;
}

int blobcr_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	/* Digits first: strtoull() would skip spaces and take a sign. */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static volatile sig_atomic_t *signal_stop;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_stop)
		__atomic_store_n(signal_stop, 1, __ATOMIC_RELAXED);
}

void blobcr_heap_for_big_buffers(void)
{
	if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) ||
	    !mallopt(M_TRIM_THRESHOLD, 128 << 20))
		log_warn("mallopt failed: big buffers will be mmap()ed");
}

int blobcr_signals_init(volatile sig_atomic_t *stop)
{
	struct sigaction sa = { .sa_handler = on_signal };

	signal_stop = stop;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return -errno;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL))
		return -errno;
	return 0;
}

uint64_t blobcr_next_req_id(void)
{
	static uint64_t next;

	if (!__atomic_load_n(&next, __ATOMIC_RELAXED))
		/* Start somewhere else in every process, for log readers. */
		__atomic_store_n(&next, ((uint64_t)getpid() << 32) | 1,
				 __ATOMIC_RELAXED);
	return __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
}

/* ---- the client side: one request, one reply ---- */

static int nn_err(void)
{
	int e = nn_errno();

	return e == EAGAIN ? -ETIMEDOUT : -e;
}

int blobcr_req_socket(const char *addr, int timeout_ms)
{
	int max = BLOBCR_MAX_FRAME + 1024;
	int sock = nn_socket(AF_SP, NN_REQ);
	int err;

	if (sock < 0)
		return -nn_errno();
	if (nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms,
			  sizeof(timeout_ms)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms,
			  sizeof(timeout_ms)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max,
			  sizeof(max)) < 0 ||
	    nn_connect(sock, addr) < 0) {
		err = -nn_errno();
		nn_close(sock);
		return err;
	}
	return sock;
}

int blobcr_check_reply(const void *buf, size_t len, uint8_t op,
		       uint64_t req_id, struct blobcr_dec *d)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	int err = blobcr_frame_decode(buf, len, &h, &payload);

	if (err)
		return err;
	if (!(h.flags & BLOBCR_F_REPLY) || h.req_id != req_id ||
	    (h.opcode != op && h.status == 0))
		return -EBADMSG;
	blobcr_dec_init(d, payload, h.payload_len);
	if (h.status > 0 || h.status < -4095)
		return -EBADMSG;
	return h.status;
}

int blobcr_call(int sock, uint8_t op, struct blobcr_enc *e, void **msg,
		struct blobcr_dec *d)
{
	struct blobcr_hdr h = { .opcode = op, .req_id = blobcr_next_req_id() };
	void *buf = NULL;
	int n, err;

	*msg = NULL;
	err = blobcr_enc_finish(e, &h);
	if (err)
		return err;
	if (nn_send(sock, e->buf, e->len, 0) < 0)
		return nn_err();
	n = nn_recv(sock, &buf, NN_MSG, 0);
	if (n < 0)
		return nn_err();
	err = blobcr_check_reply(buf, (size_t)n, op, h.req_id, d);
	if (err == -EBADMSG || err == -EPROTO || err == -EMSGSIZE) {
		nn_freemsg(buf);
		return err;
	}
	*msg = buf;
	return err;
}

/* ---- the server side ---- */

/* Replies live in nanomsg messages, handed to nn_sendmsg() without a copy. */
static void *nn_realloc_fn(void *p, size_t n)
{
	return p ? nn_reallocmsg(p, n) : nn_allocmsg(n, 0);
}

static void nn_free_fn(void *p)
{
	nn_freemsg(p);
}

static void send_reply(int sock, void *control, struct blobcr_enc *reply,
		       const struct blobcr_hdr *req, int status)
{
	struct blobcr_hdr h = {
		.opcode = req->opcode,
		.flags = BLOBCR_F_REPLY,
		.status = status,
		.req_id = req->req_id,
	};
	struct nn_iovec iov;
	struct nn_msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				.msg_control = &control,
				.msg_controllen = NN_MSG };

	if (status) {
		reply->len = BLOBCR_HDR_SIZE; /* an error carries no payload */
		reply->crc_known = 0;
	}
	reply->err = 0;
	if (blobcr_enc_finish(reply, &h)) {
		nn_freemsg(control);
		return;
	}
	/* nn_sendmsg() takes a whole message: shrink it to the frame first. */
	if (reply->len < reply->cap) {
		void *p = nn_reallocmsg(reply->buf, reply->len);

		if (p) {
			reply->buf = p;
			reply->cap = reply->len;
		}
	}
	iov.iov_base = &reply->buf;
	iov.iov_len = NN_MSG;
	if (reply->len != reply->cap) {
		nn_freemsg(control);
		return;
	}
	if (nn_sendmsg(sock, &mh, 0) >= 0) {
		reply->buf = NULL; /* nanomsg owns it now */
	} else {
		/* The client went away; nothing else to do. */
		log_debug("reply to %s #%" PRIu64 " not sent: %s",
			  blobcr_op_name(req->opcode), req->req_id,
			  nn_strerror(nn_errno()));
		nn_freemsg(control);
	}
}

static void serve_one(struct blobcr_server *s, int sock, void *body, int len,
		      void *control)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	struct blobcr_enc reply;
	struct blobcr_dec d;
	int status = blobcr_frame_decode(body, (size_t)len, &h, &payload);

	__atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
	if (!status && (h.flags & BLOBCR_F_REPLY))
		status = -EBADMSG;
	if (blobcr_enc_init_with(&reply, 256, nn_realloc_fn, nn_free_fn)) {
		nn_freemsg(control);
		return;
	}
	if (status) {
		__atomic_fetch_add(&s->malformed, 1, __ATOMIC_RELAXED);
		log_warn("malformed frame (%d bytes, opcode %u): %s", len,
			 h.opcode, strerror(-status));
	} else {
		blobcr_dec_init(&d, payload, h.payload_len);
		status = s->handler(s->ctx, &h, &d, &reply);
	}
	send_reply(sock, control, &reply, &h, status);
	blobcr_enc_free(&reply);
}

struct worker_arg {
	struct blobcr_server *s;
	int sock;
};

static void *server_worker(void *p)
{
	struct worker_arg *w = p;

	while (!blobcr_stopping(w->s->stop)) {
		void *body = NULL, *control = NULL;
		struct nn_iovec iov = { .iov_base = &body, .iov_len = NN_MSG };
		struct nn_msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
					.msg_control = &control,
					.msg_controllen = NN_MSG };
		int n = nn_recvmsg(w->sock, &mh, 0);

		if (n < 0) {
			int e = nn_errno();

			if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
				continue;
			if (e == EBADF || e == ETERM)
				break;
			log_warn("receive: %s", nn_strerror(e));
			continue;
		}
		serve_one(w->s, w->sock, body, n, control);
		nn_freemsg(body);
	}
	return NULL;
}

static int server_socket(const char *addr)
{
	int max = BLOBCR_MAX_FRAME + 1024, tmo = 200;
	int sock = nn_socket(AF_SP_RAW, NN_REP);
	int err;

	if (sock < 0)
		return -nn_errno();
	if (nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max,
			  sizeof(max)) < 0 ||
	    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo,
			  sizeof(tmo)) < 0 ||
	    nn_bind(sock, addr) < 0) {
		err = -nn_errno();
		nn_close(sock);
		return err;
	}
	return sock;
}

int blobcr_server_run(struct blobcr_server *s)
{
	int nthreads = s->threads > 0 ? s->threads : 1;
	struct worker_arg w;
	pthread_t *tids;
	int i, err = 0;

	w.s = s;
	w.sock = server_socket(s->addr);
	if (w.sock < 0)
		return w.sock;
	tids = calloc((size_t)nthreads, sizeof(*tids));
	if (!tids) {
		nn_close(w.sock);
		return -ENOMEM;
	}
	for (i = 1; i < nthreads; i++) {
		err = -pthread_create(&tids[i], NULL, server_worker, &w);
		if (err) {
			__atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	server_worker(&w);
	while (--i >= 1)
		pthread_join(tids[i], NULL);
	free(tids);
	nn_close(w.sock);
	return err;
}
