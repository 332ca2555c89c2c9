// SPDX-License-Identifier: GPL-2.0
/*
 * util.c - logging, clocks, signals, the nanomsg server loop and the
 * synchronous request call.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <openssl/crypto.h>

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
	char line[1024], msg[1024];
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
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Names, labels and addresses come from clients: no escape sequences. */
	blobcr_printable(msg, line + n, sizeof(line) - (size_t)n);
	/* One write per line so that threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

uint64_t blobcr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int blobcr_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = fd < 0 || fsync(fd) < 0 ? -errno : 0;

	if (fd >= 0)
		close(fd);
	return err;
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

bool blobcr_group_seq(const char *group, const char *job, uint64_t *seq)
{
	size_t n = strlen(job);
	const char *d = group + n + 1;
	uint64_t v = 0;

	if (!n || strncmp(group, job, n) || group[n] != '.' || *d < '1' || *d > '9')
		return false;
	for (; *d >= '0' && *d <= '9'; d++) {
		if (v > (UINT64_MAX - (uint64_t)(*d - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*d - '0');
	}
	if (*d)
		return false;
	*seq = v;
	return true;
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

int blobcr_tcp_listening(const char *addr, int timeout_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	const char *host = addr + 6, *colon;
	char name[BLOBCR_ADDR_MAX];
	size_t len;
	int fd, ok = 0;

	if (strncmp(addr, "tcp://", 6) || !(colon = strrchr(host, ':')))
		return -EINVAL;
	len = (size_t)(colon - host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= sizeof(name))
		return -EINVAL;
	memcpy(name, host, len);
	name[len] = 0;
	if (getaddrinfo(name, colon + 1, &hints, &ai))
		return 0;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		socklen_t elen = sizeof(int);
		int err = 0;

		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			ok = 1;
		else if (errno != EINPROGRESS)
			ok = -errno;
		else if (poll(&p, 1, timeout_ms) == 1 &&
			 !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
			ok = err ? -err : 1;
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

/* The reason an error reply gives, if it carries one, for the caller. */
static void take_reason(int status, const uint8_t *payload, size_t len)
{
	struct blobcr_dec d;
	char why[256];

	if (status >= 0 || !len)
		return;
	blobcr_dec_init(&d, payload, len);
	if (!blobcr_dec_str(&d, why, sizeof(why)) && !blobcr_dec_end(&d))
		blobcr_auth_set_detail("%s", why);
}

/* What an unauthenticated reply is believed to say: its framing errors. */
static bool unauthenticated_ok(int status)
{
	return blobcr_auth_error(status) || status == -EBADMSG ||
	       status == -EPROTO || status == -EMSGSIZE;
}

int blobcr_check_reply(const struct blobcr_session *s, uint64_t seq, void *buf,
		       size_t len, uint8_t op, uint64_t req_id,
		       struct blobcr_dec *d)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	int err = blobcr_frame_decode(buf, len, &h, &payload);

	if (err)
		return err;
	if (!(h.flags & BLOBCR_F_REPLY) || h.req_id != req_id)
		return -EBADMSG;
	if (h.status > 0 || h.status < -4095)
		return -EBADMSG;
	if (h.flags & BLOBCR_F_AUTH) {
		if (!s || blobcr_open_reply(s, seq, buf, len, &h, &payload))
			return -EBADMSG;
	} else if (s && BLOBCR_AUTH_ON && !unauthenticated_ok(h.status)) {
		return -EBADMSG; /* anyone could have sent it */
	}
	if (h.opcode != op && h.status == 0)
		return -EBADMSG;
	blobcr_dec_init(d, payload, h.payload_len);
	take_reason(h.status, payload, h.payload_len);
	return h.status;
}

int blobcr_peer_open(struct blobcr_peer *p, const char *addr,
		     struct blobcr_key *key, unsigned int want_roles,
		     int timeout_ms)
{
	memset(p, 0, sizeof(*p));
	p->sock = -1;
	if (strlen(addr) >= sizeof(p->addr))
		return -ENAMETOOLONG;
	strcpy(p->addr, addr);
	p->key = key;
	p->want_roles = want_roles;
	p->timeout_ms = timeout_ms;
	p->sock = blobcr_req_socket(addr, timeout_ms);
	return p->sock < 0 ? p->sock : 0;
}

void blobcr_peer_set_timeout(struct blobcr_peer *p, int timeout_ms)
{
	p->timeout_ms = timeout_ms; /* each exchange sets its own wait */
}

void blobcr_peer_close(struct blobcr_peer *p)
{
	if (p->sock >= 0)
		nn_close(p->sock);
	p->sock = -1;
	OPENSSL_cleanse(&p->sess, sizeof(p->sess));
}

/* A REQ socket may hold a stale request after an error: start afresh. */
static void peer_reopen(struct blobcr_peer *p)
{
	int s = blobcr_req_socket(p->addr, p->timeout_ms);

	if (s >= 0) {
		if (p->sock >= 0)
			nn_close(p->sock);
		p->sock = s;
	}
}

/* Send the frame in @e, receive the reply into *@buf within @wait_ms. */
static int peer_exchange(struct blobcr_peer *p, const struct blobcr_enc *e,
			 void **buf, size_t *len, int wait_ms)
{
	int n;

	*buf = NULL;
	if (p->sock < 0)
		peer_reopen(p);
	if (p->sock < 0)
		return -ENOTCONN;
	if (nn_setsockopt(p->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &wait_ms,
			  sizeof(wait_ms)) < 0 ||
	    nn_send(p->sock, e->buf, e->len, 0) < 0 ||
	    (n = nn_recv(p->sock, buf, NN_MSG, 0)) < 0) {
		int err = nn_err();

		peer_reopen(p);
		return err;
	}
	*len = (size_t)n;
	return 0;
}

/* Open a session: one AUTH round trip, answered within @wait_ms. */
static int peer_hello(struct blobcr_peer *p, int wait_ms)
{
	struct blobcr_hdr h = { .opcode = BLOBCR_OP_AUTH,
				.req_id = blobcr_next_req_id() };
	struct blobcr_hello st;
	struct blobcr_enc e;
	struct blobcr_dec d;
	size_t len;
	void *buf;
	int err = blobcr_enc_init(&e, 256);

	if (!err)
		err = blobcr_hello_begin(p->key, p->flags, &st, &e);
	if (!err)
		err = blobcr_enc_finish(&e, &h);
	if (!err)
		err = peer_exchange(p, &e, &buf, &len, wait_ms);
	blobcr_enc_free(&e);
	if (err)
		goto out;
	err = blobcr_check_reply(NULL, 0, buf, len, BLOBCR_OP_AUTH, h.req_id, &d);
	if (!err)
		err = blobcr_hello_finish(p->key, &st, p->want_roles, &d, &p->sess);
	else if (err == -EBADMSG || err == -EPROTO)
		peer_reopen(p);
	nn_freemsg(buf);
out:
	OPENSSL_cleanse(&st, sizeof(st));
	if (err && blobcr_auth_error(err))
		log_debug("no session with %s: %s", p->addr, blobcr_auth_detail());
	return err;
}

/*
 * A reply that does not come was not always refused: a request or its reply
 * can be lost with the connection that carried it.  Requests that change
 * nothing (or, like CHUNK_LOCATE, nothing twice) are asked again on a new
 * connection after ASK_AGAIN_MS, then twice as long, within the caller's
 * timeout; any other keeps the whole timeout, as a second PUBLISH could
 * publish twice.
 */
#define ASK_AGAIN_MS 2500

static bool may_ask_again(uint8_t op)
{
	switch (op) {
	case BLOBCR_OP_PING:
	case BLOBCR_OP_AUTH:
	case BLOBCR_OP_STAT:
	case BLOBCR_OP_HAS:
	case BLOBCR_OP_INVENTORY:
	case BLOBCR_OP_ROOT_LIST:
	case BLOBCR_OP_MANIFEST_GET:
	case BLOBCR_OP_NODE_LIST:
	case BLOBCR_OP_IMAGE_LIST:
	case BLOBCR_OP_IMAGE_INFO:
	case BLOBCR_OP_VERSION_LIST:
	case BLOBCR_OP_LOOKUP:
	case BLOBCR_OP_CHUNK_LOCATE:
	case BLOBCR_OP_GROUP_LIST:
	case BLOBCR_OP_ACCESS_GET:
		return true;
	default:
		return false;
	}
}

/* How long to wait for @op's reply this time. */
static int attempt_ms(uint8_t op, uint64_t give_up, int again_ms)
{
	uint64_t now = blobcr_now_ms();
	int left = give_up > now ? (int)(give_up - now) : 1;

	return may_ask_again(op) && again_ms < left ? again_ms : left;
}

/* After no reply to @op in @waited ms: whether to ask again, and log it. */
static bool ask_again(const struct blobcr_peer *p, uint8_t op, int waited,
		      uint64_t give_up, int *again_ms)
{
	if (!may_ask_again(op) || blobcr_now_ms() + 100 >= give_up)
		return false;
	log_warn("%s to %s: no reply in %d ms: asking again on a new connection",
		 blobcr_op_name(op), p->addr, waited);
	*again_ms *= 2;
	return true;
}

/* Say which request went unanswered, and where: "timed out" alone does not. */
static int peer_failed(const struct blobcr_peer *p, uint8_t op, int err)
{
	if (err == -ETIMEDOUT)
		log_warn("%s to %s: no reply in %d ms", blobcr_op_name(op),
			 p->addr, p->timeout_ms);
	return err;
}

int blobcr_peer_call(struct blobcr_peer *p, uint8_t op, struct blobcr_enc *e,
		     void **msg, struct blobcr_dec *d)
{
	uint64_t give_up = blobcr_now_ms() + (uint64_t)p->timeout_ms;
	int again_ms = ASK_AGAIN_MS;
	bool rekeyed = false;
	int err;

	*msg = NULL;
	if (e->err)
		return e->err;
	for (int tries = 1;; tries++) {
		struct blobcr_hdr h = { .opcode = op,
					.req_id = blobcr_next_req_id() };
		uint64_t seq;
		size_t len;
		void *buf;
		int wait;

		if (!p->sess.sid) {
			wait = attempt_ms(BLOBCR_OP_AUTH, give_up, again_ms);
			err = peer_hello(p, wait);
			if (err == -ETIMEDOUT &&
			    ask_again(p, BLOBCR_OP_AUTH, wait, give_up, &again_ms))
				continue;
			if (err)
				return peer_failed(p, BLOBCR_OP_AUTH, err);
		}
		err = blobcr_seal_request(&p->sess, e, &h, &seq);
		if (err)
			return err;
		wait = attempt_ms(op, give_up, again_ms);
		err = peer_exchange(p, e, &buf, &len, wait);
		if (err == -ETIMEDOUT && ask_again(p, op, wait, give_up, &again_ms)) {
			blobcr_unseal(&p->sess, e);
			continue;
		}
		if (err)
			return peer_failed(p, op, err);
		err = blobcr_check_reply(&p->sess, seq, buf, len, op, h.req_id, d);
		if (err == -EKEYEXPIRED && !rekeyed) {
			/* The server lost our session (a restart): a new one. */
			rekeyed = true;
		} else if (err == -ENOBUFS && blobcr_now_ms() < give_up) {
			/* Its queue of heavy requests is full: wait a little. */
			usleep((useconds_t)(tries < 20 ? tries : 20) * 10000);
		} else {
			if (err == -EBADMSG || err == -EPROTO || err == -EMSGSIZE) {
				nn_freemsg(buf);
				peer_reopen(p);
				return err;
			}
			*msg = buf;
			return err;
		}
		nn_freemsg(buf);
		blobcr_unseal(&p->sess, e);
		if (rekeyed && err == -EKEYEXPIRED)
			p->sess.sid = 0;
	}
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

/* One request on its way through the server. */
struct request {
	void *body; /* the received frame (nanomsg message) */
	size_t len;
	void *control; /* nanomsg's routing header, for the reply */
	struct blobcr_hdr h;
	const uint8_t *payload;
	bool authenticated; /* who is valid: the reply is sealed for it */
	struct blobcr_principal who;
	struct request *next; /* heavy queue */
	uint64_t arrived; /* ms, when received */
};

/* Heavy requests wait here for the heavy workers, within bounds. */
#define HEAVY_QUEUE_MAX 256
#define HEAVY_QUEUE_BYTES (256u << 20)

struct heavy_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct request *head, *tail;
	size_t n, bytes;
};

/* Build the reply for @rq in @reply: @status, and @why for a refusal. */
static int build_reply(struct request *rq, struct blobcr_enc *reply,
		       int status, const char *why)
{
	struct blobcr_hdr h = {
		.opcode = rq->h.opcode,
		.flags = BLOBCR_F_REPLY,
		.status = status,
		.req_id = rq->h.req_id,
	};

	reply->err = 0;
	if (status) {
		reply->len = BLOBCR_HDR_SIZE; /* an error carries no payload, */
		if (why && *why)
			blobcr_enc_str(reply, why); /* but a refusal's reason */
	}
	if (rq->authenticated)
		return blobcr_seal_reply(&rq->who, reply, &h);
	return blobcr_enc_finish(reply, &h);
}

static void send_reply(int sock, struct request *rq, struct blobcr_enc *reply,
		       int status, const char *why)
{
	struct nn_iovec iov;
	struct nn_msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				.msg_control = &rq->control,
				.msg_controllen = NN_MSG };

	if (build_reply(rq, reply, status, why)) {
		nn_freemsg(rq->control);
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
		nn_freemsg(rq->control);
		return;
	}
	if (nn_sendmsg(sock, &mh, 0) >= 0) {
		reply->buf = NULL; /* nanomsg owns it now */
	} else {
		/* The client went away; nothing else to do. */
		log_debug("reply to %s #%" PRIu64 " not sent: %s",
			  blobcr_op_name(rq->h.opcode), rq->h.req_id,
			  nn_strerror(nn_errno()));
		nn_freemsg(rq->control);
	}
}

/*
 * At most 20 refusals of each kind logged per 10 s, so that a flood does
 * not flood the log: @keyed 0 for frames anyone could have sent, 1 for a
 * known key refused a request (those are rarer and name someone).
 */
static void log_refusal(struct blobcr_server *s, int keyed, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void log_refusal(struct blobcr_server *s, int keyed, const char *fmt, ...)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	uint64_t now = blobcr_now_ms(), dropped = 0;
	char line[512];
	va_list ap;
	bool show;

	pthread_mutex_lock(&mu);
	if (now - s->log_window_ms[keyed] >= 10000) {
		dropped = s->log_dropped[keyed];
		s->log_window_ms[keyed] = now;
		s->log_lines[keyed] = 0;
		s->log_dropped[keyed] = 0;
	}
	show = s->log_lines[keyed]++ < 20;
	if (!show)
		s->log_dropped[keyed]++;
	pthread_mutex_unlock(&mu);
	if (dropped)
		log_warn("%" PRIu64 " more requests refused%s", dropped,
			 keyed ? " (known keys)" : "");
	if (!show)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warn("%s", line);
}

static const struct blobcr_op_rule *find_rule(const struct blobcr_server *s,
					      uint8_t op)
{
	for (size_t i = 0; i < s->nrules; i++)
		if (s->rules[i].opcode == op)
			return &s->rules[i];
	return NULL;
}

/*
 * Everything before the handler: the frame, the session, the role.
 * Return: 0 to serve @rq with @rule; else the status of the error reply,
 * with @why.  An AUTH request is answered here, into @reply (status 1).
 */
static int admit(struct blobcr_server *s, struct request *rq,
		 struct blobcr_enc *reply, const struct blobcr_op_rule **rule,
		 char *why, size_t whylen)
{
	int status = blobcr_frame_decode(rq->body, rq->len, &rq->h, &rq->payload);
	char roles[32];

	if (!status && (rq->h.flags & BLOBCR_F_REPLY))
		status = -EBADMSG;
	if (status) {
		__atomic_fetch_add(&s->malformed, 1, __ATOMIC_RELAXED);
		log_refusal(s, 0, "malformed frame (%zu bytes, opcode %u): %s",
			    rq->len, rq->h.opcode, strerror(-status));
		return status;
	}
	if (rq->h.opcode == BLOBCR_OP_AUTH && !(rq->h.flags & BLOBCR_F_AUTH)) {
		struct blobcr_dec d;

		blobcr_dec_init(&d, rq->payload, rq->h.payload_len);
		status = blobcr_authsrv_hello(s->auth, &d, reply, why, whylen);
		if (status) {
			__atomic_fetch_add(&s->refused, 1, __ATOMIC_RELAXED);
			log_refusal(s, 0, "session refused: %s", why);
			return status;
		}
		return 1;
	}
	status = blobcr_authsrv_open(s->auth, rq->body, rq->len, &rq->h,
				     &rq->who, why, whylen);
	if (status) {
		__atomic_fetch_add(&s->refused, 1, __ATOMIC_RELAXED);
		/* A client whose session a restart lost is not news. */
		if (status != -EKEYEXPIRED)
			log_refusal(s, 0, "%s refused: %s",
				    blobcr_op_name(rq->h.opcode), why);
		return status;
	}
	rq->authenticated = true;
	*rule = find_rule(s, rq->h.opcode);
	if (!*rule)
		return -EOPNOTSUPP;
	if (!((*rule)->roles & rq->who.role)) {
		blobcr_roles_str((*rule)->roles, roles, sizeof(roles));
		snprintf(why, whylen, "key '%s' (role %s) may not send %s (%s only)",
			 rq->who.name, blobcr_role_name(rq->who.role),
			 blobcr_op_name(rq->h.opcode), roles);
		__atomic_fetch_add(&s->refused, 1, __ATOMIC_RELAXED);
		log_refusal(s, 1, "%s refused: %s", blobcr_op_name(rq->h.opcode),
			    why);
		return -EACCES;
	}
	if (rq->h.payload_len > ((*rule)->max_payload ? (*rule)->max_payload :
							BLOBCR_MAX_PAYLOAD))
		return -EMSGSIZE;
	return 0;
}

/* A request handled this long is logged: its client may have given up. */
#define SLOW_REQUEST_MS 2000

static int handle(struct blobcr_server *s, struct request *rq,
		  struct blobcr_enc *reply)
{
	uint64_t t0 = blobcr_now_ms(), now;
	struct blobcr_dec d;
	int status;

	blobcr_dec_init(&d, rq->payload, rq->h.payload_len);
	status = s->handler(s->ctx, &rq->h, &d, reply);
	now = blobcr_now_ms();
	if (now - rq->arrived >= SLOW_REQUEST_MS)
		log_warn("slow request: %s from %s: %" PRIu64 " ms queued, %"
			 PRIu64 " ms handled (status %d)",
			 blobcr_op_name(rq->h.opcode), rq->who.name,
			 t0 - rq->arrived, now - t0, status);
	return status;
}

static void request_free(struct request *rq)
{
	nn_freemsg(rq->body);
	OPENSSL_cleanse(&rq->who, sizeof(rq->who));
	free(rq);
}

/*
 * Test hook: lose this reply, as a connection that breaks after the request
 * does (the client must not wait forever, and asks again if it may).
 */
static bool test_drop_reply(struct blobcr_server *s, const struct request *rq)
{
	if (!s->test_drop_op || rq->h.opcode != s->test_drop_op ||
	    __atomic_sub_fetch(&s->test_drop_replies, 1, __ATOMIC_RELAXED) < 0)
		return false;
	log_warn("test hook: the reply to %s not sent", blobcr_op_name(rq->h.opcode));
	nn_freemsg(rq->control);
	return true;
}

/* Hand a heavy request to the heavy workers.  Return: 0, or -ENOBUFS. */
static int heavy_push(struct blobcr_server *s, struct request *rq)
{
	struct heavy_queue *q = s->hq;
	int err = 0;

	pthread_mutex_lock(&q->mu);
	if (q->n >= HEAVY_QUEUE_MAX || q->bytes + rq->len > HEAVY_QUEUE_BYTES) {
		err = -ENOBUFS;
	} else {
		if (q->tail)
			q->tail->next = rq;
		else
			q->head = rq;
		q->tail = rq;
		q->n++;
		q->bytes += rq->len;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return err;
}

/* Serve one received frame.  Return: whether @rq went to the heavy queue. */
static bool serve_one(struct blobcr_server *s, int sock, struct request *rq)
{
	const struct blobcr_op_rule *rule = NULL;
	struct blobcr_enc reply;
	char why[256] = "";
	int status;

	__atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
	if (blobcr_enc_init_with(&reply, 256, nn_realloc_fn, nn_free_fn)) {
		nn_freemsg(rq->control);
		return false;
	}
	status = admit(s, rq, &reply, &rule, why, sizeof(why));
	if (status == 1) {
		status = 0; /* the AUTH reply is in @reply */
	} else if (!status && rule->heavy && s->hq) {
		status = heavy_push(s, rq);
		if (!status) {
			blobcr_enc_free(&reply);
			return true;
		}
	} else if (!status) {
		status = handle(s, rq, &reply);
	}
	if (!test_drop_reply(s, rq))
		send_reply(sock, rq, &reply, status, why);
	blobcr_enc_free(&reply);
	return false;
}

struct worker_arg {
	struct blobcr_server *s;
	int sock;
};

static void *heavy_worker(void *p)
{
	struct worker_arg *w = p;
	struct heavy_queue *q = w->s->hq;

	for (;;) {
		struct blobcr_enc reply;
		struct request *rq;
		int status;

		pthread_mutex_lock(&q->mu);
		while (!q->head && !blobcr_stopping(w->s->stop)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		}
		rq = q->head;
		if (rq) {
			q->head = rq->next;
			if (!q->head)
				q->tail = NULL;
			q->n--;
			q->bytes -= rq->len;
		}
		pthread_mutex_unlock(&q->mu);
		if (!rq)
			return NULL; /* stopping, and nothing left */
		if (blobcr_enc_init_with(&reply, 256, nn_realloc_fn, nn_free_fn)) {
			nn_freemsg(rq->control);
		} else {
			status = handle(w->s, rq, &reply);
			if (!test_drop_reply(w->s, rq))
				send_reply(w->sock, rq, &reply, status, NULL);
			blobcr_enc_free(&reply);
		}
		request_free(rq);
	}
}

static void *server_worker(void *p)
{
	struct worker_arg *w = p;

	while (!blobcr_stopping(w->s->stop)) {
		struct request *rq = calloc(1, sizeof(*rq));
		struct nn_iovec iov;
		struct nn_msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
					.msg_controllen = NN_MSG };
		int n;

		if (!rq) {
			usleep(10000);
			continue;
		}
		iov.iov_base = &rq->body;
		iov.iov_len = NN_MSG;
		mh.msg_control = &rq->control;
		n = nn_recvmsg(w->sock, &mh, 0);
		if (n < 0) {
			int e = nn_errno();

			free(rq);
			if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
				continue;
			if (e == EBADF || e == ETERM)
				break;
			log_warn("receive: %s", nn_strerror(e));
			continue;
		}
		rq->len = (size_t)n;
		rq->arrived = blobcr_now_ms();
		if (!serve_one(w->s, w->sock, rq))
			request_free(rq);
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

static struct heavy_queue *heavy_queue_new(void)
{
	struct heavy_queue *q = calloc(1, sizeof(*q));

	if (q && (pthread_mutex_init(&q->mu, NULL) ||
		  pthread_cond_init(&q->cv, NULL))) {
		free(q);
		return NULL;
	}
	return q;
}

int blobcr_server_run(struct blobcr_server *s)
{
	int nthreads = s->threads > 0 ? s->threads : 1;
	int nheavy = s->heavy_threads > 0 ? s->heavy_threads : 0;
	struct worker_arg w;
	pthread_t *tids;
	int i, h = 0, err = 0;

	if (!s->auth)
		return -ENOKEY;
	w.s = s;
	w.sock = server_socket(s->addr);
	if (w.sock < 0)
		return w.sock;
	tids = calloc((size_t)(nthreads + nheavy), sizeof(*tids));
	s->hq = nheavy ? heavy_queue_new() : NULL;
	if (!tids || (nheavy && !s->hq)) {
		free(tids);
		free(s->hq);
		s->hq = NULL;
		nn_close(w.sock);
		return -ENOMEM;
	}
	for (i = 1; i < nthreads && !err; i++)
		err = -pthread_create(&tids[i], NULL, server_worker, &w);
	if (err)
		i--;
	for (; h < nheavy && !err; h++)
		err = -pthread_create(&tids[nthreads + h], NULL, heavy_worker, &w);
	if (err) {
		h -= !!nheavy;
		__atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
	} else {
		if (s->ready)
			s->ready(s);
		server_worker(&w);
	}
	while (--i >= 1)
		pthread_join(tids[i], NULL);
	/* The heavy workers finish what is queued, then stop. */
	while (--h >= 0)
		pthread_join(tids[nthreads + h], NULL);
	free(tids);
	nn_close(w.sock);
	if (s->hq) {
		pthread_cond_destroy(&s->hq->cv);
		pthread_mutex_destroy(&s->hq->mu);
		free(s->hq);
		s->hq = NULL;
	}
	return err;
}

/* blobcr_server_process(): replies in malloc()ed buffers. */
static void *plain_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

int blobcr_server_process(struct blobcr_server *s, void *body, size_t len,
			  void **out, size_t *out_len)
{
	struct request rq = { .body = body, .len = len };
	const struct blobcr_op_rule *rule = NULL;
	struct blobcr_enc reply;
	char why[256] = "";
	int status, err;

	__atomic_fetch_add(&s->requests, 1, __ATOMIC_RELAXED);
	err = blobcr_enc_init_with(&reply, 256, plain_realloc, free);
	if (err)
		return err;
	status = admit(s, &rq, &reply, &rule, why, sizeof(why));
	if (status == 1)
		status = 0;
	else if (!status)
		status = handle(s, &rq, &reply);
	err = build_reply(&rq, &reply, status, why);
	OPENSSL_cleanse(&rq.who, sizeof(rq.who));
	if (err) {
		blobcr_enc_free(&reply);
		return err;
	}
	*out = reply.buf;
	*out_len = reply.len;
	return 0;
}
