// SPDX-License-Identifier: GPL-2.0
/*
 * frametool - sends malformed, truncated and random frames to a repository
 * service and checks that each gets an error reply and that the service
 * still answers a PING afterwards.
 *
 * Usage: frametool ADDR CASE    (CASE: see the table at the bottom)
 * Exit status 0 when every reply was as expected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"

static int sock = -1;
static const char *addr;
static int failures;

/* Send @len raw bytes; Return: the reply's status, or 1 for no valid reply. */
static int raw_call(const void *buf, size_t len)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	void *reply = NULL;
	int n;

	if (nn_send(sock, buf, len, 0) < 0)
		return 1;
	n = nn_recv(sock, &reply, NN_MSG, 0);
	if (n < 0) {
		/* a REQ socket stuck on a lost reply: open a new one */
		nn_close(sock);
		sock = blobcr_req_socket(addr, 3000);
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

static void expect(const char *what, int got, int want)
{
	if (got == want)
		return;
	failures++;
	fprintf(stderr, "frametool: %s: got status %d, want %d\n", what, got, want);
}

/* A valid frame of opcode @op with @plen payload bytes from @p. */
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

static void case_random(void)
{
	static uint8_t buf[4096];

	for (int i = 0; i < 300; i++) {
		size_t n = (size_t)rand() % (i < 100 ? 40 : sizeof(buf));

		fill_random(buf, n);
		expect("random bytes", raw_call(buf, n), -EBADMSG);
	}
	expect("empty message", raw_call(buf, 0), -EBADMSG);
}

static void case_truncated(void)
{
	uint8_t frame[BLOBCR_HDR_SIZE + 64], p[64];
	size_t n;

	fill_random(p, sizeof(p));
	n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));
	for (size_t cut = 1; cut < n; cut += 3)
		expect("truncated frame", raw_call(frame, n - cut), -EBADMSG);
}

static void case_header(void)
{
	uint8_t frame[BLOBCR_HDR_SIZE + 8] = { 0 }, p[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct blobcr_hdr h = { .version = BLOBCR_WIRE_VERSION,
				.opcode = BLOBCR_OP_PING };
	size_t n = build(frame, BLOBCR_OP_PING, 0, p, sizeof(p));

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
	n = build(frame, 250, 0, p, 0);
	expect("unknown opcode", raw_call(frame, n), -EOPNOTSUPP);
	n = build(frame, BLOBCR_OP_PING, BLOBCR_F_REPLY, p, 0);
	expect("a reply sent as a request", raw_call(frame, n), -EBADMSG);
	n = build(frame, BLOBCR_OP_PING, 0, p, 3);
	expect("ping with a payload", raw_call(frame, n), -EBADMSG);
}

/* Valid frames, random payloads, every opcode: any error status is fine. */
static void case_payloads(void)
{
	static uint8_t frame[BLOBCR_HDR_SIZE + 512], p[512];
	/* NODE_DRAIN and NODE_REMOVE are left out: a random payload could
	 * name a real node and drain it under the test. */
	static const uint8_t ops[] = {
		BLOBCR_OP_PUT, BLOBCR_OP_GET, BLOBCR_OP_GETV, BLOBCR_OP_HAS,
		BLOBCR_OP_DELETE, BLOBCR_OP_VERIFY, BLOBCR_OP_INVENTORY,
		BLOBCR_OP_NODE_HEARTBEAT, BLOBCR_OP_IMAGE_CREATE,
		BLOBCR_OP_IMAGE_CLONE, BLOBCR_OP_IMAGE_INFO,
		BLOBCR_OP_VERSION_LIST, BLOBCR_OP_LOOKUP, BLOBCR_OP_CHUNK_LOCATE,
		BLOBCR_OP_PUBLISH, BLOBCR_OP_VERSION_DELETE,
		BLOBCR_OP_IMAGE_DELETE, BLOBCR_OP_CHUNK_ADD_LOCATIONS,
		BLOBCR_OP_CHUNK_SUSPECT, BLOBCR_OP_UNDER_REPLICATED,
		BLOBCR_OP_GROUP_PUBLISH, BLOBCR_OP_NODE_BAD_CHUNKS,
	};

	for (int i = 0; i < 600; i++) {
		uint8_t op = ops[(size_t)i % sizeof(ops)];
		uint32_t n = 1 + (uint32_t)rand() % (sizeof(p) - 1);
		int st;

		fill_random(p, n);
		/* plausible counts and lengths reach deeper into the decoders */
		if (i % 3 == 0 && n > 4)
			p[0] = p[1] = p[2] = 0;
		st = raw_call(frame, build(frame, op, 0, p, n));
		if (st >= 0 && st != 0) {
			failures++;
			fprintf(stderr, "frametool: opcode %u: no reply\n", op);
		}
	}
}

/* A PUT whose bytes do not hash to the id it claims. */
static void case_put_mismatch(void)
{
	static uint8_t frame[BLOBCR_HDR_SIZE + 32 + 4 + 4096], p[32 + 4 + 4096];

	memset(p, 0x11, 32);
	p[32] = 0;
	p[33] = 0;
	p[34] = 0x10;
	p[35] = 0;
	fill_random(p + 36, 4096);
	expect("PUT with a wrong id", raw_call(frame, build(frame, BLOBCR_OP_PUT, 0, p,
							     sizeof(p))), -EINVAL);
}

/* A PUBLISH naming an image metad does not have (its log names it). */
static void case_publish_unknown(void)
{
	static const char name[] = "no-such-image";
	uint8_t frame[BLOBCR_HDR_SIZE + 2 + sizeof(name)], p[2 + sizeof(name)];

	p[0] = 0;
	p[1] = sizeof(name) - 1;
	memcpy(p + 2, name, sizeof(name) - 1);
	expect("PUBLISH to an unknown image",
	       raw_call(frame, build(frame, BLOBCR_OP_PUBLISH, 0, p,
				     sizeof(p) - 1)), -ENOENT);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "random", case_random },
		{ "truncated", case_truncated },
		{ "header", case_header },
		{ "payloads", case_payloads },
		{ "put-mismatch", case_put_mismatch },
		{ "publish-unknown", case_publish_unknown },
	};
	uint8_t ping[BLOBCR_HDR_SIZE];
	size_t i;

	if (argc != 3) {
		fprintf(stderr, "Usage: frametool ADDR CASE\n");
		return 2;
	}
	addr = argv[1];
	srand(1234);
	sock = blobcr_req_socket(addr, 3000);
	if (sock < 0)
		return 1;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, argv[2]))
			break;
	if (i == sizeof(cases) / sizeof(cases[0])) {
		fprintf(stderr, "frametool: unknown case %s\n", argv[2]);
		return 2;
	}
	cases[i].fn();
	expect("ping afterwards", raw_call(ping, build(ping, BLOBCR_OP_PING, 0, "", 0)), 0);
	nn_close(sock);
	return failures ? 1 : 0;
}
