// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_server.c - see fuzz_server.h.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr_auth.h"
#include "blobcr_util.h"
#include "fuzz_server.h"

#define NROLES 4
#define NSESS (2 * NROLES) /* plain, then encrypted */

static char dir[] = "/tmp/blobcr-fuzz-server.XXXXXX";
static struct blobcr_key *keys[NROLES];
static struct blobcr_session sess[NSESS];

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz_server: %s: %s (%s)\n", what, strerror(-err),
		blobcr_auth_detail());
	abort();
}

/* Run @len bytes at @frame (copied: the server works in place) through @s. */
static int process(struct blobcr_server *s, const void *frame, size_t len,
		   void **reply, size_t *rlen)
{
	void *copy = malloc(len ? len : 1);
	int err;

	if (!copy)
		abort();
	memcpy(copy, frame, len);
	err = blobcr_server_process(s, copy, len, reply, rlen);
	free(copy);
	return err;
}

/* The status of a reply frame, as anyone reads it. */
static int status_of(const void *reply, size_t len)
{
	struct blobcr_hdr h;
	const uint8_t *p;

	if (blobcr_frame_decode(reply, len, &h, &p) || !(h.flags & BLOBCR_F_REPLY))
		abort(); /* a server must always answer with a frame */
	return h.status;
}

static void open_session(struct blobcr_server *s, int i)
{
	struct blobcr_hdr h = { .opcode = BLOBCR_OP_AUTH, .req_id = 7 };
	struct blobcr_hello st;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *reply = NULL;
	size_t len = 0;
	int err = blobcr_enc_init(&e, 256);

	if (!err)
		err = blobcr_hello_begin(keys[i % NROLES], i >= NROLES ?
					 BLOBCR_SESS_ENCRYPT : 0, &st, &e);
	if (!err)
		err = blobcr_enc_finish(&e, &h);
	if (!err)
		err = process(s, e.buf, e.len, &reply, &len);
	blobcr_enc_free(&e);
	if (err)
		die("AUTH", err);
	err = blobcr_check_reply(NULL, 0, reply, len, BLOBCR_OP_AUTH, 7, &d);
	if (!err)
		err = blobcr_hello_finish(keys[i % NROLES], &st, BLOBCR_ROLE_ANY, &d,
					  &sess[i]);
	free(reply);
	if (err)
		die("session", err);
}

const char *fz_init(struct blobcr_server *s, unsigned int server_role)
{
	static const char *const names[NROLES] = { "node", "host", "admin",
						   "metad" };
	char path[sizeof(dir) + 32];
	int err;

	blobcr_log_init("fuzz", BLOBCR_LOG_ERR);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	for (int i = 0; i < NROLES; i++) {
		err = blobcr_keyfile_create(dir, names[i], 1u << i, false);
		snprintf(path, sizeof(path), "%s/%s.key", dir, names[i]);
		if (!err)
			err = blobcr_key_load(path, &keys[i]);
		if (err)
			die("key", err);
	}
	/* The server's own key is the client key of its role. */
	for (int i = 0; i < NROLES; i++)
		if (server_role == 1u << i)
			err = blobcr_authsrv_new(keys[i], 0, &s->auth);
	if (err || !s->auth)
		die("server", err ? err : -EINVAL);
	for (int i = 0; i < NSESS; i++)
		open_session(s, i);
	return dir;
}

/* @p (@n bytes, opcode first) sealed in session @i, into @e. */
static void seal(int i, const uint8_t *p, size_t n, struct blobcr_enc *e,
		 uint64_t *req_id, uint64_t *seq)
{
	struct blobcr_hdr h = { .opcode = n ? p[0] : 0,
				.req_id = blobcr_next_req_id() };

	*req_id = h.req_id;
	if (blobcr_enc_init(e, n))
		abort();
	if (n > 1)
		blobcr_enc_bytes(e, p + 1, n - 1);
	if (e->err || blobcr_seal_request(&sess[i], e, &h, seq))
		abort();
}

void fz_one(struct blobcr_server *s, const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 2;
	size_t n = size - 2, rlen, rlen2;
	struct blobcr_enc e;
	uint64_t req_id, seq;
	void *reply, *reply2;
	int mode, i, st;

	if (size < 2)
		return;
	mode = data[0] % 4;
	i = data[1] % NSESS;
	if (mode == 0) {
		if (!process(s, p, n, &reply, &rlen)) {
			status_of(reply, rlen);
			free(reply);
		}
		return;
	}
	seal(i, p, n, &e, &req_id, &seq);
	if (mode == 2 && e.len) {
		/* Change one byte: the frame must be refused, whatever it is. */
		size_t at = n ? (size_t)p[n - 1] * 131 % e.len : 0;

		e.buf[at] ^= (uint8_t)(n > 1 ? p[n - 2] | 1 : 1);
	}
	if (process(s, e.buf, e.len, &reply, &rlen))
		abort();
	st = status_of(reply, rlen);
	if (mode == 1 || mode == 3) {
		/* Accepted: the reply is sealed for this request and opens. */
		struct blobcr_hdr h;
		const uint8_t *payload;

		if (blobcr_frame_decode(reply, rlen, &h, &payload) ||
		    blobcr_open_reply(&sess[i], seq, reply, rlen, &h, &payload) ||
		    h.req_id != req_id)
			abort();
	} else if (st == 0) {
		abort(); /* a changed frame was taken */
	}
	if (mode == 3) {
		if (process(s, e.buf, e.len, &reply2, &rlen2))
			abort();
		if (status_of(reply2, rlen2) != -EKEYREJECTED)
			abort(); /* a replay was taken */
		free(reply2);
	}
	free(reply);
	blobcr_enc_free(&e);
}
