/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_util.h - helpers shared by the library, the daemons and the
 * tools: logging, clocks, a request/reply server loop over nanomsg and a
 * synchronous request call.  Not part of the client API (blobcr.h).
 */
#ifndef BLOBCR_UTIL_H
#define BLOBCR_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blobcr_auth.h"
#include "blobcr_wire.h"

enum { BLOBCR_LOG_ERR, BLOBCR_LOG_WARN, BLOBCR_LOG_INFO, BLOBCR_LOG_DEBUG };

/** blobcr_log_init() - name the program in log lines; @level is the most verbose shown. */
void blobcr_log_init(const char *prog, int level);
/** blobcr_log() - one line to stderr: time, program, level, message. */
void blobcr_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) blobcr_log(BLOBCR_LOG_ERR, __VA_ARGS__)
#define log_warn(...) blobcr_log(BLOBCR_LOG_WARN, __VA_ARGS__)
#define log_info(...) blobcr_log(BLOBCR_LOG_INFO, __VA_ARGS__)
#define log_debug(...) blobcr_log(BLOBCR_LOG_DEBUG, __VA_ARGS__)

/** blobcr_now_ms() - CLOCK_MONOTONIC in milliseconds. */
uint64_t blobcr_now_ms(void);
/** blobcr_wall_s() - CLOCK_REALTIME in seconds. */
uint64_t blobcr_wall_s(void);

/**
 * blobcr_sync_dir() - fsync directory @dir: the names created, renamed
 * or removed in it become durable.  Return: 0 or -errno.
 */
int blobcr_sync_dir(const char *dir);

/**
 * blobcr_valid_name() - whether @s names an image, group, label or failure
 * domain: 1 to @cap - 1 bytes of A-Z a-z 0-9 . _ - : +
 */
bool blobcr_valid_name(const char *s, size_t cap);

/**
 * blobcr_rendezvous_score() - the weight of node @node for chunk @id in
 * rendezvous hashing: placement prefers the highest, reads try it first,
 * and metad keeps it when it trims extra copies.
 */
uint64_t blobcr_rendezvous_score(const uint8_t *id, uint32_t node);

/**
 * blobcr_parse_u64() - strict: digits (nothing before them) with an
 * optional K/M/G suffix (x1024).  Return: 0, -EINVAL, -ERANGE.
 */
int blobcr_parse_u64(const char *s, uint64_t *out);

/**
 * blobcr_group_seq() - whether checkpoint group @group is global
 * checkpoint N of job @job, "JOB.N" with N a plain decimal from 1 (no
 * sign, suffix or leading zero), and N in *@seq if so.
 */
bool blobcr_group_seq(const char *group, const char *job, uint64_t *seq);

/**
 * A request handler: decode @req, write the reply's payload into @reply
 * (already initialised).  Return: the status to send (0 or -errno); on an
 * error the reply payload is dropped.
 */
typedef int (*blobcr_handler_fn)(void *ctx, const struct blobcr_hdr *h,
				 struct blobcr_dec *req, struct blobcr_enc *reply);

/*
 * Who may send an opcode to a server, and how it is served: one table per
 * server, checked for every request before its handler runs.  An opcode
 * the table does not name is refused (-EOPNOTSUPP).
 */
struct blobcr_op_rule {
	uint8_t opcode;
	bool heavy; /* long or write work: served by the heavy workers */
	unsigned int roles; /* BLOBCR_ROLE_* that may send it */
	uint32_t max_payload; /* bytes, 0: BLOBCR_MAX_PAYLOAD */
};

struct heavy_queue;

struct blobcr_server {
	const char *addr; /* nanomsg address to bind */
	int threads; /* workers sharing the socket */
	/*
	 * Workers of their own for heavy requests, so that heartbeats and
	 * lookups always find a free worker; 0: every request is served by
	 * the socket's workers.
	 */
	int heavy_threads;
	blobcr_handler_fn handler;
	void *ctx;
	struct blobcr_authsrv *auth; /* sessions: every request needs one */
	const struct blobcr_op_rule *rules;
	size_t nrules;
	volatile sig_atomic_t *stop; /* set by a signal handler to stop */
	/* called once the socket is bound, before serving; may be NULL */
	void (*ready)(struct blobcr_server *s);
	/* test hook: the next @test_drop_replies replies to @test_drop_op go unsent */
	uint8_t test_drop_op;
	int test_drop_replies;
	/* counters, updated atomically */
	uint64_t requests;
	uint64_t malformed;
	uint64_t refused; /* no, a bad or an unauthorised key */
	/* internal */
	struct heavy_queue *hq;
	uint64_t log_window_ms[2], log_lines[2], log_dropped[2]; /* refusals */
};

/**
 * blobcr_server_run() - bind a raw REP socket at @s->addr and serve it with
 * @s->threads workers until *@s->stop; @s->ready is called in between.  Malformed frames get an error reply
 * (-EBADMSG, -EPROTO, -EMSGSIZE, -EOPNOTSUPP) and are counted; requests
 * without a valid session, or whose opcode the sender's role may not send,
 * are refused (-ENOKEY, -EKEYEXPIRED, -EKEYREJECTED, -EACCES) with a
 * reason, logged and counted; heavy ones wait in a bounded queue (-ENOBUFS
 * when it is full).
 * Return: 0 after a clean stop, -errno if the socket could not be set up.
 */
int blobcr_server_run(struct blobcr_server *s);

/**
 * blobcr_server_process() - serve one received frame (@body, @len bytes,
 * modified in place) as the server loop does, without a socket: the reply
 * frame goes to *@reply (free() it) and its length to *@reply_len.  Heavy
 * requests are served inline.  For tests and fuzzing.
 */
int blobcr_server_process(struct blobcr_server *s, void *body, size_t len,
			  void **reply, size_t *reply_len);

/**
 * blobcr_req_socket() - a REQ socket connected to @addr, with @timeout_ms
 * for sends and receives.  Return: the socket (>= 0) or -errno.
 */
int blobcr_req_socket(const char *addr, int timeout_ms);

/**
 * blobcr_tcp_listening() - does something accept TCP connections at @addr
 * ("tcp://HOST:PORT"), within @timeout_ms?  A stopped or busy server
 * does (its kernel completes the handshake); a dead one refuses.  A host
 * that is unreachable, or too loaded to complete the handshake in time
 * (or a caller too starved to see it), does not answer.
 * Return: 1 accepted, 0 no answer in time (or the name does not resolve),
 * -errno of the failed connection (-ECONNREFUSED...), -EINVAL.
 */
int blobcr_tcp_listening(const char *addr, int timeout_ms);

/*
 * A synchronous, authenticated connection to one server: a REQ socket and
 * a session opened on the first call (again when the server lost it).
 */
struct blobcr_peer {
	char addr[BLOBCR_ADDR_MAX];
	int sock; /* -1: none */
	int timeout_ms;
	unsigned int want_roles; /* the server must prove one of these */
	uint8_t flags; /* session flags to ask for (BLOBCR_SESS_*) */
	struct blobcr_key *key; /* ours, not owned */
	struct blobcr_session sess;
};

/**
 * blobcr_peer_open() - a connection to the server at @addr whose key must
 * have a role in @want_roles, authenticated with @key.  No traffic yet.
 * Return: 0, -ENAMETOOLONG, -errno of the socket.
 */
int blobcr_peer_open(struct blobcr_peer *p, const char *addr,
		     struct blobcr_key *key, unsigned int want_roles,
		     int timeout_ms);

/**
 * blobcr_peer_call() - send the request built in @e (sealed here, so @e
 * cannot be sent again) as @op and wait for its reply; opens or reopens
 * the session as needed and retries while the server's queue is full.
 * Return: the reply's status (0 or -errno from the server) with the reply
 * frame in *@msg (nn_freemsg() it) and its payload in @d; or a transport
 * or authentication error with *@msg NULL.
 */
int blobcr_peer_call(struct blobcr_peer *p, uint8_t op, struct blobcr_enc *e,
		     void **msg, struct blobcr_dec *d);

/**
 * blobcr_peer_set_timeout() - wait @timeout_ms for the replies from now on
 * (a socket made again later gets it too).
 */
void blobcr_peer_set_timeout(struct blobcr_peer *p, int timeout_ms);

/** blobcr_peer_close() - close the socket; the session is forgotten. */
void blobcr_peer_close(struct blobcr_peer *p);

/**
 * blobcr_check_reply() - decode the reply frame @buf to request @req_id of
 * opcode @op, sealed in session @s as sequence @seq (decrypted in place);
 * @d gets its payload.  An unauthenticated reply is believed only as a
 * framing or authentication error.  A reason the server gave with an
 * error goes to blobcr_auth_detail().
 * Return: the reply's status, or -EBADMSG/-EPROTO/-EMSGSIZE for a frame
 * that is not a valid reply.
 */
int blobcr_check_reply(const struct blobcr_session *s, uint64_t seq, void *buf,
		       size_t len, uint8_t op, uint64_t req_id,
		       struct blobcr_dec *d);

/** blobcr_next_req_id() - a process-wide unique request id. */
uint64_t blobcr_next_req_id(void);

/** blobcr_stopping() - Return: whether *@stop was set (by a signal or a thread). */
static inline bool blobcr_stopping(volatile sig_atomic_t *stop)
{
	return __atomic_load_n(stop, __ATOMIC_RELAXED);
}

/** blobcr_signals_init() - SIGTERM/SIGINT set *@stop; SIGPIPE ignored. */
int blobcr_signals_init(volatile sig_atomic_t *stop);

/**
 * blobcr_heap_for_big_buffers() - keep multi-MiB buffers (chunks, replies
 * of many chunks), which come and go on every request, in the heap rather
 * than mmap()ing and faulting in fresh pages for each.  Logs a warning if
 * glibc refuses.
 */
void blobcr_heap_for_big_buffers(void);

#endif /* BLOBCR_UTIL_H */
