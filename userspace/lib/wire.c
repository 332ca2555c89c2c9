// SPDX-License-Identifier: GPL-2.0
/*
 * wire.c - frame header codec, CRC32C and the big-endian field codec.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_wire.h"

/* ---- CRC32C: SSE4.2 when the CPU has it, a table otherwise ---- */

static uint32_t crc32c_table[256];

static void crc32c_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc32c_table[i] = c;
	}
}

static uint32_t crc32c_soft(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

static int crc32c_mode; /* 0 unknown, 1 soft, 2 hw; a benign race */

uint32_t blobcr_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (!crc32c_mode) {
		crc32c_table_init();
#if defined(__x86_64__)
		__builtin_cpu_init();
		crc32c_mode = __builtin_cpu_supports("sse4.2") ? 2 : 1;
#else
		crc32c_mode = 1;
#endif
	}
	crc = ~crc;
#if defined(__x86_64__)
	if (crc32c_mode == 2)
		return ~crc32c_hw(crc, buf, len);
#endif
	return ~crc32c_soft(crc, buf, len);
}

/* ---- big-endian helpers ---- */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* ---- header ---- */

void blobcr_hdr_encode(const struct blobcr_hdr *h, uint8_t out[BLOBCR_HDR_SIZE])
{
	put_be32(out, BLOBCR_WIRE_MAGIC);
	out[4] = h->version;
	out[5] = h->opcode;
	put_be16(out + 6, h->flags);
	put_be32(out + 8, (uint32_t)h->status);
	put_be64(out + 12, h->req_id);
	put_be32(out + 20, h->payload_len);
	put_be32(out + 24, h->payload_crc);
	put_be32(out + 28, blobcr_crc32c(0, out, 28));
}

int blobcr_frame_decode(const void *buf, size_t len, struct blobcr_hdr *h,
			const uint8_t **payload)
{
	const uint8_t *p = buf;

	memset(h, 0, sizeof(*h));
	*payload = NULL;
	if (len < BLOBCR_HDR_SIZE)
		return -EBADMSG;
	/* Fill in what an error reply echoes before judging the header. */
	h->version = p[4];
	h->opcode = p[5];
	h->flags = get_be16(p + 6);
	h->status = (int32_t)get_be32(p + 8);
	h->req_id = get_be64(p + 12);
	h->payload_len = get_be32(p + 20);
	h->payload_crc = get_be32(p + 24);
	if (get_be32(p) != BLOBCR_WIRE_MAGIC ||
	    get_be32(p + 28) != blobcr_crc32c(0, p, 28))
		return -EBADMSG;
	if (h->version != BLOBCR_WIRE_VERSION)
		return -EPROTO;
	if (h->payload_len > BLOBCR_MAX_PAYLOAD)
		return -EMSGSIZE;
	if ((h->flags & ~BLOBCR_F_KNOWN) ||
	    (h->flags & (BLOBCR_F_AUTH | BLOBCR_F_SEALED)) == BLOBCR_F_SEALED)
		return -EBADMSG;
	if (h->flags & BLOBCR_F_AUTH) {
		/* The trailer's tag covers the payload: no CRC to check. */
		if (len - BLOBCR_HDR_SIZE < BLOBCR_TRAILER ||
		    h->payload_len != len - BLOBCR_HDR_SIZE - BLOBCR_TRAILER)
			return -EBADMSG;
		*payload = p + BLOBCR_HDR_SIZE;
		return 0;
	}
	if (h->payload_len != len - BLOBCR_HDR_SIZE)
		return -EBADMSG;
	if (blobcr_crc32c(0, p + BLOBCR_HDR_SIZE, h->payload_len) != h->payload_crc)
		return -EBADMSG;
	*payload = p + BLOBCR_HDR_SIZE;
	return 0;
}

/* ---- encoder ---- */

int blobcr_enc_init_with(struct blobcr_enc *e, size_t payload_hint,
			 void *(*realloc_fn)(void *, size_t),
			 void (*free_fn)(void *))
{
	e->realloc_fn = realloc_fn;
	e->free_fn = free_fn;
	e->cap = BLOBCR_HDR_SIZE + (payload_hint ? payload_hint : 64) +
		 BLOBCR_TRAILER;
	e->buf = realloc_fn(NULL, e->cap);
	e->len = BLOBCR_HDR_SIZE;
	e->err = e->buf ? 0 : -ENOMEM;
	return e->err;
}

int blobcr_enc_init(struct blobcr_enc *e, size_t payload_hint)
{
	return blobcr_enc_init_with(e, payload_hint, realloc, free);
}

static int enc_room(struct blobcr_enc *e, size_t n, bool exact)
{
	size_t cap;
	uint8_t *nb;

	if (e->err)
		return e->err;
	if (e->len + n > BLOBCR_MAX_FRAME)
		return e->err = -EMSGSIZE;
	/* Always room for a trailer: sealing never copies the frame. */
	if (e->len + n + BLOBCR_TRAILER <= e->cap)
		return 0;
	cap = exact ? e->len + n + BLOBCR_TRAILER : e->cap * 2;
	while (cap < e->len + n + BLOBCR_TRAILER)
		cap *= 2;
	nb = e->realloc_fn(e->buf, cap);
	if (!nb)
		return e->err = -ENOMEM;
	e->buf = nb;
	e->cap = cap;
	return 0;
}

int blobcr_enc_grow(struct blobcr_enc *e, size_t n)
{
	return enc_room(e, n, true);
}

uint8_t *blobcr_enc_reserve(struct blobcr_enc *e, size_t n)
{
	uint8_t *p;

	if (enc_room(e, n, false))
		return NULL;
	p = e->buf + e->len;
	e->len += n;
	return p;
}

void blobcr_enc_u8(struct blobcr_enc *e, uint8_t v)
{
	uint8_t *p = blobcr_enc_reserve(e, 1);

	if (p)
		*p = v;
}

void blobcr_enc_u16(struct blobcr_enc *e, uint16_t v)
{
	uint8_t *p = blobcr_enc_reserve(e, 2);

	if (p)
		put_be16(p, v);
}

void blobcr_enc_u32(struct blobcr_enc *e, uint32_t v)
{
	uint8_t *p = blobcr_enc_reserve(e, 4);

	if (p)
		put_be32(p, v);
}

void blobcr_enc_u64(struct blobcr_enc *e, uint64_t v)
{
	uint8_t *p = blobcr_enc_reserve(e, 8);

	if (p)
		put_be64(p, v);
}

void blobcr_enc_bytes(struct blobcr_enc *e, const void *src, size_t n)
{
	uint8_t *p = blobcr_enc_reserve(e, n);

	if (p && n)
		memcpy(p, src, n);
}

void blobcr_enc_str(struct blobcr_enc *e, const char *s)
{
	size_t n = strlen(s);

	if (n > 0xffff) {
		e->err = e->err ? e->err : -ENAMETOOLONG;
		return;
	}
	blobcr_enc_u16(e, (uint16_t)n);
	blobcr_enc_bytes(e, s, n);
}

int blobcr_enc_finish(struct blobcr_enc *e, const struct blobcr_hdr *h)
{
	struct blobcr_hdr hh = *h;

	if (e->err)
		return e->err;
	hh.version = BLOBCR_WIRE_VERSION;
	hh.payload_len = (uint32_t)(e->len - BLOBCR_HDR_SIZE);
	if (hh.flags & BLOBCR_F_AUTH)
		hh.payload_crc = 0; /* the trailer's tag covers the payload */
	else
		hh.payload_crc = blobcr_crc32c(0, e->buf + BLOBCR_HDR_SIZE,
					       hh.payload_len);
	blobcr_hdr_encode(&hh, e->buf);
	return 0;
}

void blobcr_enc_free(struct blobcr_enc *e)
{
	if (e->buf)
		e->free_fn(e->buf);
	e->buf = NULL;
	e->len = e->cap = 0;
}

/* ---- decoder ---- */

void blobcr_dec_init(struct blobcr_dec *d, const void *p, size_t len)
{
	d->p = p;
	d->left = len;
	d->err = 0;
}

const uint8_t *blobcr_dec_bytes(struct blobcr_dec *d, size_t n)
{
	const uint8_t *p;

	if (d->err || n > d->left) {
		d->err = -EBADMSG;
		return NULL;
	}
	p = d->p;
	d->p += n;
	d->left -= n;
	return p;
}

uint8_t blobcr_dec_u8(struct blobcr_dec *d)
{
	const uint8_t *p = blobcr_dec_bytes(d, 1);

	return p ? *p : 0;
}

uint16_t blobcr_dec_u16(struct blobcr_dec *d)
{
	const uint8_t *p = blobcr_dec_bytes(d, 2);

	return p ? get_be16(p) : 0;
}

uint32_t blobcr_dec_u32(struct blobcr_dec *d)
{
	const uint8_t *p = blobcr_dec_bytes(d, 4);

	return p ? get_be32(p) : 0;
}

uint64_t blobcr_dec_u64(struct blobcr_dec *d)
{
	const uint8_t *p = blobcr_dec_bytes(d, 8);

	return p ? get_be64(p) : 0;
}

int blobcr_dec_str(struct blobcr_dec *d, char *out, size_t cap)
{
	uint16_t n = blobcr_dec_u16(d);
	const uint8_t *p = blobcr_dec_bytes(d, n);

	if (!p || n >= cap || memchr(p, 0, n)) {
		d->err = -EBADMSG;
		if (cap)
			out[0] = 0;
		return -EBADMSG;
	}
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

int blobcr_dec_end(const struct blobcr_dec *d)
{
	return d->err ? d->err : d->left ? -EBADMSG : 0;
}

uint32_t blobcr_domain_hash(const char *name)
{
	return blobcr_crc32c(0, name, strlen(name));
}

const char *blobcr_op_name(unsigned int op)
{
	static const struct {
		unsigned int op;
		const char *name;
	} names[] = {
		{ BLOBCR_OP_PING, "PING" },
		{ BLOBCR_OP_AUTH, "AUTH" },
		{ BLOBCR_OP_PUT, "PUT" },
		{ BLOBCR_OP_GET, "GET" },
		{ BLOBCR_OP_HAS, "HAS" },
		{ BLOBCR_OP_DELETE, "DELETE" },
		{ BLOBCR_OP_STAT, "STAT" },
		{ BLOBCR_OP_COMPACT, "COMPACT" },
		{ BLOBCR_OP_GETV, "GETV" },
		{ BLOBCR_OP_VERIFY, "VERIFY" },
		{ BLOBCR_OP_INVENTORY, "INVENTORY" },
		{ BLOBCR_OP_ROOT_PUT, "ROOT_PUT" },
		{ BLOBCR_OP_ROOT_LIST, "ROOT_LIST" },
		{ BLOBCR_OP_MANIFEST_GET, "MANIFEST_GET" },
		{ BLOBCR_OP_MANIFEST_DELETE, "MANIFEST_DELETE" },
		{ BLOBCR_OP_PUT_FWD, "PUT_FWD" },
		{ BLOBCR_OP_NODE_HEARTBEAT, "NODE_HEARTBEAT" },
		{ BLOBCR_OP_NODE_LIST, "NODE_LIST" },
		{ BLOBCR_OP_IMAGE_CREATE, "IMAGE_CREATE" },
		{ BLOBCR_OP_IMAGE_CLONE, "IMAGE_CLONE" },
		{ BLOBCR_OP_IMAGE_LIST, "IMAGE_LIST" },
		{ BLOBCR_OP_IMAGE_INFO, "IMAGE_INFO" },
		{ BLOBCR_OP_VERSION_LIST, "VERSION_LIST" },
		{ BLOBCR_OP_LOOKUP, "LOOKUP" },
		{ BLOBCR_OP_CHUNK_LOCATE, "CHUNK_LOCATE" },
		{ BLOBCR_OP_PUBLISH, "PUBLISH" },
		{ BLOBCR_OP_VERSION_DELETE, "VERSION_DELETE" },
		{ BLOBCR_OP_IMAGE_DELETE, "IMAGE_DELETE" },
		{ BLOBCR_OP_GC, "GC" },
		{ BLOBCR_OP_CHUNK_ADD_LOCATIONS, "CHUNK_ADD_LOCATIONS" },
		{ BLOBCR_OP_CHUNK_SUSPECT, "CHUNK_SUSPECT" },
		{ BLOBCR_OP_UNDER_REPLICATED, "UNDER_REPLICATED" },
		{ BLOBCR_OP_GROUP_PUBLISH, "GROUP_PUBLISH" },
		{ BLOBCR_OP_GROUP_LIST, "GROUP_LIST" },
		{ BLOBCR_OP_GROUP_DELETE, "GROUP_DELETE" },
		{ BLOBCR_OP_ACCESS_PUT, "ACCESS_PUT" },
		{ BLOBCR_OP_ACCESS_GET, "ACCESS_GET" },
		{ BLOBCR_OP_NODE_DRAIN, "NODE_DRAIN" },
		{ BLOBCR_OP_NODE_REMOVE, "NODE_REMOVE" },
		{ BLOBCR_OP_NODE_BAD_CHUNKS, "NODE_BAD_CHUNKS" },
		{ BLOBCR_OP_PUBLISH_BEGIN, "PUBLISH_BEGIN" },
		{ BLOBCR_OP_PUBLISH_PART, "PUBLISH_PART" },
		{ BLOBCR_OP_PUBLISH_COMMIT, "PUBLISH_COMMIT" },
		{ BLOBCR_OP_PUBLISH_ABORT, "PUBLISH_ABORT" },
		{ BLOBCR_OP_LEASE, "LEASE" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].op == op)
			return names[i].name;
	return "?";
}
