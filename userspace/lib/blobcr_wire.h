/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_wire.h - the repository's wire protocol: frame header, opcodes,
 * big-endian field codec.  Shared by the client library, blobcr-noded and
 * blobcr-metad.  Documentation/repository.rst describes every opcode.
 *
 * A frame is a 32-byte header followed by the payload:
 *
 *   off size field
 *     0    4 magic        "BLCR" (0x424c4352)
 *     4    1 version      BLOBCR_WIRE_VERSION
 *     5    1 opcode       enum blobcr_op
 *     6    2 flags        BLOBCR_F_*
 *     8    4 status       0 or a negative errno (two's complement), replies
 *    12    8 request id   chosen by the client, echoed in the reply
 *    20    4 payload len  bytes after the header, <= BLOBCR_MAX_PAYLOAD
 *    24    4 payload crc  CRC32C of the payload (0 in authenticated frames)
 *    28    4 header crc   CRC32C of bytes 0..27
 *
 * An authenticated frame (BLOBCR_F_AUTH) carries a 32-byte trailer after
 * the payload whose AES-256-GCM tag covers the header and the payload
 * (blobcr_auth.h); its payload CRC is 0 and not checked.
 *
 * Every integer is big-endian.  Payloads are sequences of fields written
 * by the blobcr_enc_*() helpers and read back by blobcr_dec_*(), never raw
 * structs.
 */
#ifndef BLOBCR_WIRE_H
#define BLOBCR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOBCR_WIRE_MAGIC 0x424c4352u
#define BLOBCR_WIRE_VERSION 1
#define BLOBCR_HDR_SIZE 32
/* Largest payload: one 4 MiB chunk plus room for its fields. */
#define BLOBCR_MAX_PAYLOAD (8u << 20)
#define BLOBCR_MAX_FRAME (BLOBCR_HDR_SIZE + BLOBCR_MAX_PAYLOAD)

#define BLOBCR_F_REPLY 0x0001 /* set on every reply */
#define BLOBCR_F_AUTH 0x0002 /* a session trailer follows the payload */
#define BLOBCR_F_SEALED 0x0004 /* and the payload is encrypted */
#define BLOBCR_F_KNOWN (BLOBCR_F_REPLY | BLOBCR_F_AUTH | BLOBCR_F_SEALED)
#define BLOBCR_TRAILER 32 /* bytes after the payload of a BLOBCR_F_AUTH frame */

#define BLOBCR_ID_SIZE 32 /* SHA-256 chunk id */
#define BLOBCR_NAME_MAX 128 /* image, group and label names */
#define BLOBCR_ADDR_MAX 256 /* nanomsg address strings */
#define BLOBCR_MIN_EXTENT (4u << 10)
#define BLOBCR_MAX_EXTENT (4u << 20)
#define BLOBCR_MAX_REPLICAS 8
#define BLOBCR_GETV_MAX 64 /* chunks per GETV request */
#define BLOBCR_UUID_SIZE 16 /* a storage node's store identity */
#define BLOBCR_DOMAIN_MAX 64 /* failure domain names, NUL included */
#define BLOBCR_DELETE_MAX 4096 /* ids per DELETE or HAS request */
#define BLOBCR_ROOT_MAX 192 /* root (manifest) names, NUL included */
#define BLOBCR_PUT_FWD_FORMAT 1 /* PUT_FWD's first byte: its layout */
#define BLOBCR_FWD_WAIT_MIN_MS 100 /* PUT_FWD: bounds of its wait for */
#define BLOBCR_FWD_WAIT_MAX_MS 600000 /* the other replicas */

enum blobcr_op {
	/* common */
	BLOBCR_OP_PING = 1,
	BLOBCR_OP_AUTH = 2, /* open a session (blobcr_auth.h) */
	/* blobcr-noded */
	BLOBCR_OP_PUT = 10,
	BLOBCR_OP_GET = 11,
	BLOBCR_OP_HAS = 12,
	BLOBCR_OP_DELETE = 13,
	BLOBCR_OP_STAT = 14,
	BLOBCR_OP_COMPACT = 15,
	BLOBCR_OP_GETV = 16,
	BLOBCR_OP_VERIFY = 17,
	BLOBCR_OP_INVENTORY = 18,
	BLOBCR_OP_ROOT_PUT = 19,
	BLOBCR_OP_ROOT_LIST = 20,
	BLOBCR_OP_MANIFEST_GET = 21,
	BLOBCR_OP_MANIFEST_DELETE = 22,
	BLOBCR_OP_PUT_FWD = 23, /* PUT here, forwarded to the other replicas */
	/* blobcr-metad */
	BLOBCR_OP_NODE_HEARTBEAT = 30,
	BLOBCR_OP_NODE_LIST = 31,
	BLOBCR_OP_IMAGE_CREATE = 32,
	BLOBCR_OP_IMAGE_CLONE = 33,
	BLOBCR_OP_IMAGE_LIST = 34,
	BLOBCR_OP_IMAGE_INFO = 35,
	BLOBCR_OP_VERSION_LIST = 36,
	BLOBCR_OP_LOOKUP = 37,
	BLOBCR_OP_CHUNK_LOCATE = 38,
	BLOBCR_OP_PUBLISH = 39,
	BLOBCR_OP_VERSION_DELETE = 40,
	BLOBCR_OP_IMAGE_DELETE = 41,
	BLOBCR_OP_GC = 42,
	BLOBCR_OP_CHUNK_ADD_LOCATIONS = 43,
	BLOBCR_OP_CHUNK_SUSPECT = 44,
	BLOBCR_OP_UNDER_REPLICATED = 45,
	BLOBCR_OP_GROUP_PUBLISH = 46,
	BLOBCR_OP_GROUP_LIST = 47,
	BLOBCR_OP_ACCESS_PUT = 48,
	BLOBCR_OP_ACCESS_GET = 49,
	BLOBCR_OP_NODE_DRAIN = 50,
	BLOBCR_OP_NODE_REMOVE = 51,
	BLOBCR_OP_NODE_BAD_CHUNKS = 52,
	BLOBCR_OP_PUBLISH_BEGIN = 53,
	BLOBCR_OP_PUBLISH_PART = 54,
	BLOBCR_OP_PUBLISH_COMMIT = 55,
	BLOBCR_OP_PUBLISH_ABORT = 56,
	BLOBCR_OP_LEASE = 57,
	BLOBCR_OP_GROUP_DELETE = 58,
};

/* A decoded frame header. */
struct blobcr_hdr {
	uint8_t version;
	uint8_t opcode;
	uint16_t flags;
	int32_t status;
	uint64_t req_id;
	uint32_t payload_len;
	uint32_t payload_crc;
};

/** blobcr_crc32c() - CRC32C (Castagnoli) of @len bytes, seeded by @crc (0 to start). */
uint32_t blobcr_crc32c(uint32_t crc, const void *buf, size_t len);

/**
 * blobcr_hdr_encode() - write the 32-byte header for @h into @out, with the
 * header CRC.  @h->payload_crc must already hold the payload's CRC.
 */
void blobcr_hdr_encode(const struct blobcr_hdr *h, uint8_t out[BLOBCR_HDR_SIZE]);

/**
 * blobcr_frame_decode() - check and decode a whole received frame.
 * Return: 0 and @h filled, @payload pointing into @buf;
 * -EBADMSG for a short frame, bad magic, bad header or payload CRC, unknown
 * flags, or a length that disagrees with @len (an authenticated frame's
 * trailer is not checked here: see blobcr_auth.h); -EPROTO for an unknown protocol version;
 * -EMSGSIZE for a payload over BLOBCR_MAX_PAYLOAD.  On error, @h holds
 * whatever could be read (request id, opcode) so that an error reply can
 * echo them.
 */
int blobcr_frame_decode(const void *buf, size_t len, struct blobcr_hdr *h,
			const uint8_t **payload);

/*
 * Payload encoder: a growable buffer.  Errors (allocation) are sticky and
 * reported once by blobcr_enc_finish().
 */
struct blobcr_enc {
	uint8_t *buf; /* header space + payload */
	size_t len; /* bytes used, header included */
	size_t cap;
	int err;
	/* the buffer's allocator: realloc()/free() unless set otherwise */
	void *(*realloc_fn)(void *p, size_t n);
	void (*free_fn)(void *p);
};

/** blobcr_enc_init() - start a frame; reserves the header.  Return: 0 or -ENOMEM. */
int blobcr_enc_init(struct blobcr_enc *e, size_t payload_hint);
/**
 * blobcr_enc_init_with() - the same with another allocator, e.g. one whose
 * buffers a transport can take over without a copy.
 */
int blobcr_enc_init_with(struct blobcr_enc *e, size_t payload_hint,
			 void *(*realloc_fn)(void *, size_t),
			 void (*free_fn)(void *));
void blobcr_enc_u8(struct blobcr_enc *e, uint8_t v);
void blobcr_enc_u16(struct blobcr_enc *e, uint16_t v);
void blobcr_enc_u32(struct blobcr_enc *e, uint32_t v);
void blobcr_enc_u64(struct blobcr_enc *e, uint64_t v);
void blobcr_enc_bytes(struct blobcr_enc *e, const void *p, size_t n);
/** blobcr_enc_str() - a u16 length then the bytes, no NUL. */
void blobcr_enc_str(struct blobcr_enc *e, const char *s);
/**
 * blobcr_enc_grow() - make room for @n more bytes at once, so that the
 * appends that follow do not reallocate (and copy) step by step.
 * Return: 0, -ENOMEM or -EMSGSIZE (also recorded in @e->err).
 */
int blobcr_enc_grow(struct blobcr_enc *e, size_t n);
/** blobcr_enc_reserve() - append @n bytes and return where they start, or NULL. */
uint8_t *blobcr_enc_reserve(struct blobcr_enc *e, size_t n);
/**
 * blobcr_enc_finish() - fill in the header (request fields from @h, length
 * and CRCs computed here).  Return: 0, -ENOMEM or -EMSGSIZE.
 */
int blobcr_enc_finish(struct blobcr_enc *e, const struct blobcr_hdr *h);
void blobcr_enc_free(struct blobcr_enc *e);

/* Payload decoder over a received payload; underflow is sticky. */
struct blobcr_dec {
	const uint8_t *p;
	size_t left;
	int err; /* -EBADMSG once a read ran past the end */
};

void blobcr_dec_init(struct blobcr_dec *d, const void *p, size_t len);
uint8_t blobcr_dec_u8(struct blobcr_dec *d);
uint16_t blobcr_dec_u16(struct blobcr_dec *d);
uint32_t blobcr_dec_u32(struct blobcr_dec *d);
uint64_t blobcr_dec_u64(struct blobcr_dec *d);
/** blobcr_dec_bytes() - return a pointer to the next @n bytes, or NULL on underflow. */
const uint8_t *blobcr_dec_bytes(struct blobcr_dec *d, size_t n);
/**
 * blobcr_dec_str() - read a string field into @out (size @cap, NUL added).
 * Return: 0, or -EBADMSG on underflow, an embedded NUL or a string that
 * does not fit.
 */
int blobcr_dec_str(struct blobcr_dec *d, char *out, size_t cap);
/** blobcr_dec_end() - Return: 0 if the payload was consumed exactly, else -EBADMSG. */
int blobcr_dec_end(const struct blobcr_dec *d);

/**
 * blobcr_domain_hash() - the 32-bit name of failure domain @name, as
 * metad and clients compare domains.  Two names that collide are taken for
 * one domain, which only ever makes placement more cautious.
 */
uint32_t blobcr_domain_hash(const char *name);
/** blobcr_label_valid() - 0 to 127 printable ASCII characters. */
bool blobcr_label_valid(const char *s);
/**
 * blobcr_addr_valid() - "tcp://HOST:PORT": HOST a DNS name, an IPv4 address
 * (not 0.0.0.0) or a bracketed IPv6 address, PORT 1 to 65535.
 */
bool blobcr_addr_valid(const char *s);
/**
 * blobcr_printable() - @s for a log or a terminal: bytes outside printable
 * ASCII (escape sequences, newlines) and backslashes as \xNN, into @out
 * (cut to @len).  Return: @out.
 */
const char *blobcr_printable(const char *s, char *out, size_t len);

/** blobcr_op_name() - a short printable name for an opcode ("?" if unknown). */
const char *blobcr_op_name(unsigned int op);

#endif /* BLOBCR_WIRE_H */
