// SPDX-License-Identifier: GPL-2.0
/*
 * frametool - sends malformed, truncated, random, unauthenticated, forged
 * and replayed frames to a repository service and checks the status of
 * each reply, and that the service still answers a PING afterwards.
 *
 * Usage: frametool ADDR CASE [ARGS]   (CASE: see the table at the bottom)
 * Frames that must pass authentication are sealed in a session opened
 * with $BLOBCR_KEY.  Exit status 0 when every reply was as expected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"

static const char *addr;
static struct blobcr_key *key;
static struct blobcr_peer peer; /* its socket carries the raw frames too */
static int failures;

/* Send @len raw bytes; Return: the reply's status, or 1 for no valid reply. */
static int raw_call(const void *buf, size_t len)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	void *reply = NULL;
	int n;

	if (nn_send(peer.sock, buf, len, 0) < 0)
		return 1;
	n = nn_recv(peer.sock, &reply, NN_MSG, 0);
	if (n < 0) {
		/* a REQ socket stuck on a lost reply: open a new one */
		nn_close(peer.sock);
		peer.sock = blobcr_req_socket(addr, 3000);
		return 1;
	}
	if (blobcr_frame_decode(reply, (size_t)n, &h, &payload) ||
	    !(h.flags & BLOBCR_F_REPLY)) {
		nn_freemsg(reply);
		return 1;
	}
	nn_freemsg(reply);
	return h.status;
}

/* @op with @plen payload bytes from @p, in our session. */
static int sealed_call(uint8_t op, const void *p, size_t plen)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, plen);

	if (err)
		return err;
	blobcr_enc_bytes(&e, p, plen);
	err = blobcr_peer_call(&peer, op, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/* @op with @plen payload bytes, sealed but not sent: into @e. */
static int seal_only(uint8_t op, const void *p, size_t plen,
		     struct blobcr_enc *e)
{
	struct blobcr_hdr h = { .opcode = op, .req_id = blobcr_next_req_id() };
	uint64_t seq;
	int err;

	if (!peer.sess.sid && sealed_call(BLOBCR_OP_PING, NULL, 0))
		return -EIO;
	err = blobcr_enc_init(e, plen);
	if (err)
		return err;
	blobcr_enc_bytes(e, p, plen);
	return blobcr_seal_request(&peer.sess, e, &h, &seq);
}

static void expect(const char *what, int got, int want)
{
	if (got == want)
		return;
	failures++;
	fprintf(stderr, "frametool: %s: got status %d, want %d\n", what, got, want);
}

/* A valid unauthenticated frame of opcode @op with @plen payload bytes. */
static size_t build(uint8_t *out, uint8_t op, uint16_t flags, const void *p,
		    uint32_t plen)
{
	struct blobcr_hdr h = { .version = BLOBCR_WIRE_VERSION, .opcode = op,
				.flags = flags, .req_id = 42, .payload_len = plen,
				.payload_crc = blobcr_crc32c(0, p, plen) };

	blobcr_hdr_encode(&h, out);
	memcpy(out + BLOBCR_HDR_SIZE, p, plen);
	return BLOBCR_HDR_SIZE + plen;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rand();
}

static void case_random(int argc, char **argv)
{
	static uint8_t buf[4096];

	(void)argc, (void)argv;
	for (int i = 0; i < 300; i++) {
		size_t n = (size_t)rand() % (i < 100 ? 40 : sizeof(buf));

		fill_random(buf, n);
		expect("random bytes", raw_call(buf, n), -EBADMSG);
	}
	expect("empty message", raw_call(buf, 0), -EBADMSG);
}

static void case_truncated(int argc, char **argv)
{
	uint8_t frame[BLOBCR_HDR_SIZE + 64], p[64];
	struct blobcr_enc e;
	size_t n;

	(void)argc, (void)argv;
	fill_random(p, sizeof(p));
	n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));
	for (size_t cut = 1; cut < n; cut += 3)
		expect("truncated frame", raw_call(frame, n - cut), -EBADMSG);
	/* A sealed frame cut short: its trailer no longer fits. */
	if (seal_only(BLOBCR_OP_PING, NULL, 0, &e)) {
		failures++;
		return;
	}
	for (size_t cut = 1; cut < e.len; cut += 5)
		expect("truncated sealed frame", raw_call(e.buf, e.len - cut),
		       -EBADMSG);
	blobcr_enc_free(&e);
}

static void case_header(int argc, char **argv)
{
	uint8_t frame[BLOBCR_HDR_SIZE + 8] = { 0 }, p[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct blobcr_hdr h = { .version = BLOBCR_WIRE_VERSION,
				.opcode = BLOBCR_OP_PING };
	size_t n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));

	(void)argc, (void)argv;
	frame[0] ^= 1; /* magic */
	expect("bad magic", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));
	frame[BLOBCR_HDR_SIZE] ^= 0x80; /* payload CRC no longer matches */
	expect("bad payload crc", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));
	frame[13] ^= 0x10; /* request id: header CRC no longer matches */
	expect("bad header crc", raw_call(frame, n), -EBADMSG);
	h.version = 99;
	blobcr_hdr_encode(&h, frame);
	expect("unknown version", raw_call(frame, BLOBCR_HDR_SIZE), -EPROTO);
	h.version = BLOBCR_WIRE_VERSION;
	h.payload_len = BLOBCR_MAX_PAYLOAD + 1;
	blobcr_hdr_encode(&h, frame);
	expect("oversized length", raw_call(frame, BLOBCR_HDR_SIZE), -EMSGSIZE);
	h.payload_len = 100;
	blobcr_hdr_encode(&h, frame);
	expect("length past the end", raw_call(frame, BLOBCR_HDR_SIZE + 8), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, BLOBCR_F_REPLY, p, 0);
	expect("a reply sent as a request", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, 0x0100, p, 0);
	expect("an unknown flag", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, BLOBCR_F_SEALED, p, 0);
	expect("sealed without a session", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, BLOBCR_F_AUTH, p, 0);
	expect("a session flag without its trailer", raw_call(frame, n), -EBADMSG);
	n = build(frame, 250, 0, p, 0);
	expect("unknown opcode, no key", raw_call(frame, n), -ENOKEY);
	expect("unknown opcode", sealed_call(250, NULL, 0), -EOPNOTSUPP);
	expect("ping with a payload", sealed_call(BLOBCR_OP_PING, p, 3), -EBADMSG);
}

static const uint8_t all_ops[] = {
	BLOBCR_OP_PUT, BLOBCR_OP_GET, BLOBCR_OP_GETV, BLOBCR_OP_HAS,
	BLOBCR_OP_DELETE, BLOBCR_OP_STAT, BLOBCR_OP_COMPACT, BLOBCR_OP_VERIFY,
	BLOBCR_OP_INVENTORY, BLOBCR_OP_NODE_HEARTBEAT, BLOBCR_OP_NODE_LIST,
	BLOBCR_OP_IMAGE_CREATE, BLOBCR_OP_IMAGE_CLONE, BLOBCR_OP_IMAGE_LIST,
	BLOBCR_OP_IMAGE_INFO, BLOBCR_OP_VERSION_LIST, BLOBCR_OP_LOOKUP,
	BLOBCR_OP_CHUNK_LOCATE, BLOBCR_OP_PUBLISH, BLOBCR_OP_VERSION_DELETE,
	BLOBCR_OP_IMAGE_DELETE, BLOBCR_OP_GC, BLOBCR_OP_CHUNK_ADD_LOCATIONS,
	BLOBCR_OP_CHUNK_SUSPECT, BLOBCR_OP_UNDER_REPLICATED,
	BLOBCR_OP_GROUP_PUBLISH, BLOBCR_OP_GROUP_LIST, BLOBCR_OP_ACCESS_PUT,
	BLOBCR_OP_ACCESS_GET, BLOBCR_OP_NODE_DRAIN, BLOBCR_OP_NODE_REMOVE,
	BLOBCR_OP_NODE_BAD_CHUNKS, BLOBCR_OP_PUBLISH_BEGIN,
	BLOBCR_OP_PUBLISH_PART, BLOBCR_OP_PUBLISH_COMMIT, BLOBCR_OP_PUBLISH_ABORT,
	BLOBCR_OP_LEASE, BLOBCR_OP_GROUP_DELETE, BLOBCR_OP_ROOT_PUT,
	BLOBCR_OP_ROOT_LIST, BLOBCR_OP_MANIFEST_GET, BLOBCR_OP_MANIFEST_DELETE,
	BLOBCR_OP_PUT_FWD,
};

/* Valid frames, random payloads, every opcode, sealed: any error is fine. */
static void case_payloads(int argc, char **argv)
{
	static uint8_t p[512];

	(void)argc, (void)argv;
	for (int i = 0; i < 600; i++) {
		uint8_t op = all_ops[(size_t)i % sizeof(all_ops)];
		uint32_t n = 1 + (uint32_t)rand() % (sizeof(p) - 1);
		int st;

		/* A random payload could name a real node and drain it. */
		if (op == BLOBCR_OP_NODE_DRAIN || op == BLOBCR_OP_NODE_REMOVE)
			continue;

		fill_random(p, n);
		/* plausible counts and lengths reach deeper into the decoders */
		if (i % 3 == 0 && n > 4)
			p[0] = p[1] = p[2] = 0;
		st = sealed_call(op, p, n);
		if (st > 0 || st == -ETIMEDOUT) {
			failures++;
			fprintf(stderr, "frametool: opcode %u: no reply (%d)\n", op, st);
		}
	}
}

/*
 * Every opcode, well-formed (an empty payload, or @argv[0] as the name the
 * request starts with), without a key: each is refused with -ENOKEY.
 */
static void case_unauth(int argc, char **argv)
{
	uint8_t frame[BLOBCR_HDR_SIZE + 256], p[256];
	size_t n = 0;

	if (argc > 0) {
		n = strlen(argv[0]);
		p[0] = (uint8_t)(n >> 8);
		p[1] = (uint8_t)n;
		memcpy(p + 2, argv[0], n);
		memset(p + 2 + n, 0, 16); /* version 0, counts 0 */
		n += 2 + 16;
	}
	for (size_t i = 0; i < sizeof(all_ops); i++) {
		char what[64];

		snprintf(what, sizeof(what), "%s without a key",
			 blobcr_op_name(all_ops[i]));
		expect(what, raw_call(frame, build(frame, all_ops[i], 0, p,
						   (uint32_t)n)), -ENOKEY);
	}
}

/*
 * DELETE of the chunks of image @argv[1] on this node, learnt from metad
 * @argv[0] with our key: without a key (-ENOKEY), forged (-EKEYREJECTED),
 * in an unknown session (-EKEYEXPIRED).  Our own key, if not metad's, is
 * refused too (-EACCES).  The node must still hold every chunk after.
 */
static void case_delete(int argc, char **argv)
{
	struct blobcr_image_info ii;
	struct blobcr_client *c;
	struct blobcr_extent_loc *locs;
	uint64_t *ext;
	struct blobcr_enc e;
	uint8_t *frame, *p;
	size_t n = 0, len;
	int err;

	if (argc < 2 || blobcr_connect(argv[0], NULL, &c)) {
		fprintf(stderr, "frametool: delete META IMAGE: cannot connect\n");
		failures++;
		return;
	}
	err = blobcr_image_info(c, argv[1], &ii);
	len = err ? 0 : (ii.size + ii.extent_size - 1) / ii.extent_size;
	ext = calloc(len + 1, sizeof(*ext));
	locs = calloc(len + 1, sizeof(*locs));
	p = malloc(4 + (len + 1) * BLOBCR_ID_SIZE);
	frame = malloc(BLOBCR_HDR_SIZE + 4 + (len + 1) * BLOBCR_ID_SIZE);
	for (size_t i = 0; i < len; i++)
		ext[i] = i;
	if (!err && (!ext || !locs || !p || !frame))
		err = -ENOMEM;
	if (!err)
		err = blobcr_lookup(c, argv[1], 0, ext, len, locs);
	for (size_t i = 0; !err && i < len; i++)
		if (locs[i].kind == BLOBCR_EXT_DATA)
			memcpy(p + 4 + BLOBCR_ID_SIZE * n++, locs[i].id,
			       BLOBCR_ID_SIZE);
	blobcr_close(c);
	if (err || !n) {
		fprintf(stderr, "frametool: no chunks of %s: %d\n", argv[1], err);
		failures++;
		goto out;
	}
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	len = 4 + n * BLOBCR_ID_SIZE;
	expect("DELETE without a key",
	       raw_call(frame, build(frame, BLOBCR_OP_DELETE, 0, p, (uint32_t)len)),
	       -ENOKEY);
	if (!seal_only(BLOBCR_OP_DELETE, p, len, &e)) {
		e.buf[BLOBCR_HDR_SIZE + 40] ^= 1; /* an id changed in flight */
		expect("DELETE with a forged id", raw_call(e.buf, e.len),
		       -EKEYREJECTED);
		e.buf[BLOBCR_HDR_SIZE + 40] ^= 1;
		e.buf[e.len - 32] ^= 0x40; /* a session the node never opened */
		expect("DELETE in an unknown session", raw_call(e.buf, e.len),
		       -EKEYEXPIRED);
		blobcr_enc_free(&e);
	} else {
		failures++;
	}
	if (blobcr_key_role(key) != BLOBCR_ROLE_METAD)
		expect("DELETE with a key of another role",
		       sealed_call(BLOBCR_OP_DELETE, p, len), -EACCES);
out:
	free(ext);
	free(locs);
	free(p);
	free(frame);
}

/*
 * A sealed request sent twice: the copy is refused (-EKEYREJECTED), and so
 * is a sealed frame whose header was changed (-EKEYREJECTED).
 */
static void case_replay(int argc, char **argv)
{
	uint8_t p[2 + 64];
	struct blobcr_enc e;
	size_t n = argc > 0 ? strlen(argv[0]) : 0;

	if (n > 64) {
		failures++;
		return;
	}
	p[0] = 0;
	p[1] = (uint8_t)n;
	memcpy(p + 2, argc > 0 ? argv[0] : "", n);
	if (seal_only(argc > 0 ? BLOBCR_OP_IMAGE_INFO : BLOBCR_OP_STAT, p,
		      argc > 0 ? n + 2 : 0, &e)) {
		failures++;
		return;
	}
	expect("the request", raw_call(e.buf, e.len), 0);
	expect("the same request again", raw_call(e.buf, e.len), -EKEYREJECTED);
	blobcr_enc_free(&e);
	if (seal_only(BLOBCR_OP_PING, NULL, 0, &e)) {
		failures++;
		return;
	}
	e.buf[5] = BLOBCR_OP_GC; /* the opcode changed in flight */
	e.buf[28] = e.buf[29] = e.buf[30] = e.buf[31] = 0;
	{
		struct blobcr_hdr h;
		const uint8_t *pl;

		/* keep the header CRC right: only the tag can tell */
		blobcr_frame_decode(e.buf, e.len, &h, &pl);
		blobcr_hdr_encode(&h, e.buf);
	}
	expect("a sealed PING turned into a GC", raw_call(e.buf, e.len),
	       -EKEYREJECTED);
	blobcr_enc_free(&e);
}

/*
 * A heartbeat payload for @addr into @p: a store UUID of its own (from
 * @addr), domain "flood", counters 0.  Return: its length.
 */
static size_t heartbeat(uint8_t *p, const char *addr)
{
	size_t n = strlen(addr), at;

	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, addr, n);
	at = 2 + n;
	memset(p + at, 0x5a, BLOBCR_UUID_SIZE);
	memcpy(p + at, addr + (n > BLOBCR_UUID_SIZE ? n - BLOBCR_UUID_SIZE : 0),
	       n < BLOBCR_UUID_SIZE ? n : BLOBCR_UUID_SIZE);
	at += BLOBCR_UUID_SIZE;
	p[at++] = 0;
	p[at++] = 5;
	memcpy(p + at, "flood", 5);
	at += 5;
	memset(p + at, 0, 32); /* incarnation, capacity, used, chunks */
	return at + 32;
}

/*
 * @argv[0] heartbeats from as many new addresses, in our session, or
 * without a key with @argv[1] "unauth" (each must be refused, -ENOKEY).
 * In our session, prints how many nodes metad took and how many it refused
 * as too many; any other status is a failure.
 */
static void case_heartbeats(int argc, char **argv)
{
	uint8_t p[BLOBCR_ADDR_MAX + 32], frame[BLOBCR_HDR_SIZE + sizeof(p)];
	int n = argc > 0 ? atoi(argv[0]) : 0, taken = 0, full = 0;
	bool unauth = argc > 1 && !strcmp(argv[1], "unauth");

	for (int i = 0; i < n; i++) {
		char addr[64];
		size_t len;
		int st;

		snprintf(addr, sizeof(addr), "tcp://10.%d.%d.%d:7000", i >> 16 & 255,
			 i >> 8 & 255, i & 255);
		len = heartbeat(p, addr);
		st = unauth ? raw_call(frame, build(frame, BLOBCR_OP_NODE_HEARTBEAT,
						    0, p, (uint32_t)len)) :
			      sealed_call(BLOBCR_OP_NODE_HEARTBEAT, p, len);
		if (unauth)
			expect("a heartbeat without a key", st, -ENOKEY);
		else if (st == 0)
			taken++;
		else if (st == -ENOSPC)
			full++;
		else
			expect("a heartbeat", st, 0);
	}
	if (!unauth)
		printf("taken=%d refused=%d\n", taken, full);
}

/* Heartbeats from addresses clients could not use: -EINVAL each. */
static void case_bad_addresses(int argc, char **argv)
{
	static const char *const bad[] = {
		"tcp://*:7000", "tcp://0.0.0.0:7000", "ipc:///tmp/x", "tcp://h:0",
		"tcp://h:65536", "tcp://h:", "tcp://:7000", "tcp://h:07000",
		"tcp://-h:1", "tcp://h\x1b[2J:1", "tcp://[::1:1", "tcp://h_1:1",
		"h:1",
	};
	uint8_t p[BLOBCR_ADDR_MAX + 32];

	(void)argc, (void)argv;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], sealed_call(BLOBCR_OP_NODE_HEARTBEAT, p,
					   heartbeat(p, bad[i])), -EINVAL);
}

/* A DELETE of one id more than a node takes: -EMSGSIZE. */
static void case_delete_too_many(int argc, char **argv)
{
	size_t n = BLOBCR_DELETE_MAX + 1, len = 4 + n * BLOBCR_ID_SIZE;
	uint8_t *p = calloc(1, len);

	(void)argc, (void)argv;
	if (!p) {
		failures++;
		return;
	}
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	expect("DELETE of 4097 ids", sealed_call(BLOBCR_OP_DELETE, p, len),
	       -EMSGSIZE);
	free(p);
}

/*
 * Escape sequences in a label (refused, -EINVAL) and in an image name
 * (not found, -ENOENT) of a PUBLISH to @argv[0]: neither may reach a log
 * or a terminal as it is.
 */
static void case_escapes(int argc, char **argv)
{
	static const char esc_label[] = "ok\x1b[2J\x1b]0;owned\x07";
	static const char esc_name[] = "img\x1b[31m";
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;

	for (int i = 0; i < 2; i++) {
		if (blobcr_enc_init(&e, 128)) {
			failures++;
			return;
		}
		blobcr_enc_str(&e, i ? esc_name : argc > 0 ? argv[0] : "img");
		blobcr_enc_u32(&e, 0);
		blobcr_enc_str(&e, i ? "fine" : esc_label);
		blobcr_enc_str(&e, "writer"); /* the writer's failure domain */
		blobcr_enc_u64(&e, 0);
		blobcr_enc_u32(&e, 0);
		expect(i ? "an image name with escapes" : "a label with escapes",
		       blobcr_peer_call(&peer, BLOBCR_OP_PUBLISH, &e, &msg, &d),
		       i ? -ENOENT : -EINVAL);
		if (msg)
			nn_freemsg(msg);
		blobcr_enc_free(&e);
	}
}

/*
 * A version of image @argv[0] labelled @argv[1] (its extent 0 random
 * bytes), published with our key at metad ADDR: a forger's.  Prints
 * "forged=VERSION".
 */
static void case_forge(int argc, char **argv)
{
	struct blobcr_image_info ii;
	struct blobcr_changeset *cm = NULL;
	struct blobcr_client *c;
	uint32_t ver = 0;
	uint8_t *buf = NULL;
	int err;

	if (argc < 2) {
		failures++;
		return;
	}
	err = blobcr_connect(addr, NULL, &c);
	if (!err)
		err = blobcr_image_info(c, argv[0], &ii);
	if (!err && !(buf = malloc(ii.extent_size)))
		err = -ENOMEM;
	if (!err) {
		fill_random(buf, ii.extent_size);
		err = blobcr_commit_begin(c, argv[0], &cm);
	}
	if (!err)
		err = blobcr_commit_extent(cm, 0, buf);
	if (!err)
		err = blobcr_commit_publish(cm, argv[1], &ver);
	if (cm)
		blobcr_commit_free(cm);
	free(buf);
	if (!err)
		blobcr_close(c);
	expect("the forged publish", err, 0);
	printf("forged=%u\n", ver);
}

/* A PUT whose bytes do not hash to the id it claims. */
static void case_put_mismatch(int argc, char **argv)
{
	static uint8_t p[32 + 4 + 4096];

	(void)argc, (void)argv;
	memset(p, 0x11, 32);
	p[32] = 0;
	p[33] = 0;
	p[34] = 0x10;
	p[35] = 0;
	fill_random(p + 36, 4096);
	expect("PUT with a wrong id", sealed_call(BLOBCR_OP_PUT, p, sizeof(p)),
	       -EINVAL);
}

/* A PUBLISH naming an image metad does not have (its log names it). */
static void case_publish_unknown(int argc, char **argv)
{
	static const char name[] = "no-such-image";
	uint8_t p[2 + sizeof(name)];

	(void)argc, (void)argv;
	p[0] = 0;
	p[1] = sizeof(name) - 1;
	memcpy(p + 2, name, sizeof(name) - 1);
	expect("PUBLISH to an unknown image",
	       sealed_call(BLOBCR_OP_PUBLISH, p, sizeof(p) - 1), -ENOENT);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(int argc, char **argv);
	} cases[] = {
		{ "random", case_random },
		{ "truncated", case_truncated },
		{ "header", case_header },
		{ "payloads", case_payloads },
		{ "unauth", case_unauth }, /* [NAME] */
		{ "delete", case_delete }, /* META IMAGE */
		{ "replay", case_replay }, /* [IMAGE] */
		{ "heartbeats", case_heartbeats }, /* COUNT [unauth] */
		{ "bad-addresses", case_bad_addresses },
		{ "delete-too-many", case_delete_too_many },
		{ "escapes", case_escapes }, /* [IMAGE] */
		{ "forge", case_forge }, /* IMAGE LABEL */
		{ "put-mismatch", case_put_mismatch },
		{ "publish-unknown", case_publish_unknown },
	};
	size_t i;
	int err;

	if (argc < 3) {
		fprintf(stderr, "Usage: frametool ADDR CASE [ARGS]\n");
		return 2;
	}
	addr = argv[1];
	srand(1234);
	blobcr_log_init("frametool", BLOBCR_LOG_ERR);
	err = blobcr_key_load(NULL, &key);
	if (!err)
		err = blobcr_peer_open(&peer, addr, key,
				       BLOBCR_ROLE_METAD | BLOBCR_ROLE_NODE, 3000);
	if (err) {
		fprintf(stderr, "frametool: %s: %s\n", addr, blobcr_auth_detail());
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, argv[2]))
			break;
	if (i == sizeof(cases) / sizeof(cases[0])) {
		fprintf(stderr, "frametool: unknown case %s\n", argv[2]);
		return 2;
	}
	cases[i].fn(argc - 3, argv + 3);
	expect("ping afterwards", sealed_call(BLOBCR_OP_PING, NULL, 0), 0);
	blobcr_peer_close(&peer);
	blobcr_key_free(key);
	return failures ? 1 : 0;
}
