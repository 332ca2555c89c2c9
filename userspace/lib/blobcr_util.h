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
 * A request handler: decode @req, write the reply's payload into @reply
 * (already initialised).  Return: the status to send (0 or -errno); on an
 * error the reply payload is dropped.
 */
typedef int (*blobcr_handler_fn)(void *ctx, const struct blobcr_hdr *h,
				 struct blobcr_dec *req, struct blobcr_enc *reply);

struct blobcr_server {
	const char *addr; /* nanomsg address to bind */
	int threads; /* workers sharing the socket */
	blobcr_handler_fn handler;
	void *ctx;
	volatile sig_atomic_t *stop; /* set by a signal handler to stop */
	/* counters, updated atomically */
	uint64_t requests;
	uint64_t malformed;
};

/**
 * blobcr_server_run() - bind a raw REP socket at @s->addr and serve it with
 * @s->threads workers until *@s->stop.  Malformed frames get an error reply
 * (-EBADMSG, -EPROTO, -EMSGSIZE, -EOPNOTSUPP) and are counted.
 * Return: 0 after a clean stop, -errno if the socket could not be set up.
 */
int blobcr_server_run(struct blobcr_server *s);

/**
 * blobcr_req_socket() - a REQ socket connected to @addr, with @timeout_ms
 * for sends and receives.  Return: the socket (>= 0) or -errno.
 */
int blobcr_req_socket(const char *addr, int timeout_ms);

/**
 * blobcr_call() - send the request built in @e (header filled here: @op and
 * a fresh request id) on REQ socket @sock and wait for its reply.
 * Return: the reply's status (0 or -errno from the server) with the reply
 * frame in *@msg (nn_freemsg() it) and its payload in @d; or a transport
 * error (-ETIMEDOUT, -EBADMSG, ...) with *@msg NULL.
 */
int blobcr_call(int sock, uint8_t op, struct blobcr_enc *e, void **msg,
		struct blobcr_dec *d);

/**
 * blobcr_check_reply() - decode the reply frame @buf to request @req_id of
 * opcode @op; @d gets its payload.  Return: the reply's status, or
 * -EBADMSG/-EPROTO/-EMSGSIZE for a frame that is not a valid reply.
 */
int blobcr_check_reply(const void *buf, size_t len, uint8_t op,
		       uint64_t req_id, struct blobcr_dec *d);

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
