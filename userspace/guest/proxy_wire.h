/* SPDX-License-Identifier: GPL-2.0 */
/*
 * proxy_wire.h - the protocol between a VM (the guest library) and the
 * host's checkpointing proxy, on a byte stream: a virtio-serial port, an
 * AF_VSOCK or AF_UNIX stream socket.  Shared by the guest library and
 * blobcr-proxyd; Documentation/checkpoint-restart.rst is the contract.
 *
 * A frame is a 32-byte header and a payload, every number big-endian:
 *
 *   0  magic    u32  PROXY_MAGIC
 *   4  version  u8   PROXY_VERSION
 *   5  op       u8   PROXY_OP_*
 *   6  flags    u16  PROXY_F_REPLY in replies, else zero
 *   8  status   s32  replies: 0 or a negative Linux errno; requests: zero
 *  12  length   u32  payload bytes, at most PROXY_MAX_PAYLOAD
 *  16  id       u64  chosen by the requester, echoed in the reply
 *  24  crc      u32  CRC-32C of the header (this field zero) and payload
 *  28  reserved u32  zero
 *
 * Payload fields are encoded one after the other: u32/u64 big-endian,
 * strings as a u16 length and that many bytes (no NUL).  A failed reply's
 * payload is one string, the proxy's message.  A byte stream can carry
 * garbage (a guest process killed mid-write): a reader looks for the magic,
 * and drops a byte and looks again when the header or the checksum is
 * wrong.
 */
#ifndef PROXY_WIRE_H
#define PROXY_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_MAGIC		0x42435058u	/* "BCPX" */
#define PROXY_VERSION		1
#define PROXY_HDR_LEN		32
#define PROXY_MAX_PAYLOAD	65536

/* Operations.  Replies carry the request's op. */
#define PROXY_OP_QUERY		1	/* -> vm, mode, per disk: versions, dirty */
#define PROXY_OP_CHECKPOINT	2	/* flags, label -> result */
#define PROXY_OP_WAIT		3	/* checkpoint id -> result */
#define PROXY_OP_GROUP		4	/* name, members -> (reserved: MPI jobs) */
/*
 * 128 and up: frames the proxy sends on its own, with PROXY_F_REPLY and
 * id 0.  HELLO (no payload) opens every connection: on a virtio-serial
 * port, whose stream outlives the proxy's connections to it, a guest
 * waiting for a reply learns that the proxy (re)connected and sends its
 * request again; the proxy answers a request sent again with what the
 * first one started.
 */
#define PROXY_OP_HELLO		128

#define PROXY_F_REPLY		(1U << 0)

/* PROXY_OP_CHECKPOINT request flags */
#define PROXY_CKPT_CUT		(1U << 0)	/* reply once cut, not durable */

/* result state */
#define PROXY_STATE_CUT		1
#define PROXY_STATE_DURABLE	2

struct proxy_hdr {
	uint8_t op;
	uint16_t flags;
	int32_t status;
	uint32_t length;
	uint64_t id;
};

/* A growing output buffer; @err is set (sticky) when it cannot grow. */
struct proxy_enc {
	uint8_t *buf;
	size_t len, cap;
	int err;
};

/* A bounded reader over a payload; @err is set (sticky) on a short read. */
struct proxy_dec {
	const uint8_t *p;
	size_t left;
	int err;
};

/** proxy_crc32c() - CRC-32C of @len bytes at @p, continuing from @crc (0 first). */
uint32_t proxy_crc32c(uint32_t crc, const void *p, size_t len);

/**
 * proxy_enc_start() - start a frame in @e (reusing its buffer): header
 * space, then payload fields with the proxy_put_*() calls, then
 * proxy_enc_finish().
 */
void proxy_enc_start(struct proxy_enc *e);
void proxy_put_u32(struct proxy_enc *e, uint32_t v);
void proxy_put_u64(struct proxy_enc *e, uint64_t v);
void proxy_put_str(struct proxy_enc *e, const char *s);
/**
 * proxy_enc_finish() - write the header of @h into @e's frame (length and
 * checksum computed here).  Return: 0, -ENOMEM, or -EMSGSIZE for a payload
 * over PROXY_MAX_PAYLOAD.
 */
int proxy_enc_finish(struct proxy_enc *e, const struct proxy_hdr *h);
void proxy_enc_free(struct proxy_enc *e);

uint32_t proxy_get_u32(struct proxy_dec *d);
uint64_t proxy_get_u64(struct proxy_dec *d);
/* A string into @out (@len with its NUL); -EMSGSIZE in @d->err if longer. */
void proxy_get_str(struct proxy_dec *d, char *out, size_t len);

/**
 * proxy_find_frame() - look for one whole, valid frame at the start of
 * @buf[0..@len).  Return: its total length (header and payload) with the
 * header in *@h and the payload at @buf + PROXY_HDR_LEN; 0 when more bytes
 * are needed; -N to drop N bytes of garbage first.
 */
long proxy_find_frame(const uint8_t *buf, size_t len, struct proxy_hdr *h);

#endif /* PROXY_WIRE_H */
