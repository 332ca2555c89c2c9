// SPDX-License-Identifier: GPL-2.0
/*
 * proxy_wire.c - frames of the guest <-> proxy protocol (proxy_wire.h):
 * encoding, decoding, and finding frames in a byte stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wire.h"

uint32_t proxy_crc32c(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;

	crc = ~crc;
	while (len--) {
		crc ^= *b++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & -(crc & 1));
	}
	return ~crc;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static uint8_t *enc_room(struct proxy_enc *e, size_t n)
{
	if (e->err)
		return NULL;
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		uint8_t *b;

		while (cap < e->len + n)
			cap *= 2;
		b = realloc(e->buf, cap);
		if (!b) {
			e->err = -ENOMEM;
			return NULL;
		}
		e->buf = b;
		e->cap = cap;
	}
	e->len += n;
	return e->buf + e->len - n;
}

void proxy_enc_start(struct proxy_enc *e)
{
	e->len = 0;
	e->err = 0;
	if (enc_room(e, PROXY_HDR_LEN))
		memset(e->buf, 0, PROXY_HDR_LEN);
}

void proxy_put_u32(struct proxy_enc *e, uint32_t v)
{
	uint8_t *p = enc_room(e, 4);

	if (p)
		put_be(p, v, 4);
}

void proxy_put_u64(struct proxy_enc *e, uint64_t v)
{
	uint8_t *p = enc_room(e, 8);

	if (p)
		put_be(p, v, 8);
}

void proxy_put_str(struct proxy_enc *e, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint8_t *p;

	if (n > 0xffff) {
		e->err = -EMSGSIZE;
		return;
	}
	p = enc_room(e, 2 + n);
	if (p) {
		put_be(p, n, 2);
		memcpy(p + 2, s, n);
	}
}

int proxy_enc_finish(struct proxy_enc *e, const struct proxy_hdr *h)
{
	size_t payload = e->len - PROXY_HDR_LEN;
	uint8_t *p = e->buf;

	if (e->err)
		return e->err;
	if (payload > PROXY_MAX_PAYLOAD)
		return -EMSGSIZE;
	put_be(p, PROXY_MAGIC, 4);
	p[4] = PROXY_VERSION;
	p[5] = h->op;
	put_be(p + 6, h->flags, 2);
	put_be(p + 8, (uint32_t)h->status, 4);
	put_be(p + 12, payload, 4);
	put_be(p + 16, h->id, 8);
	put_be(p + 24, 0, 8);
	put_be(p + 24, proxy_crc32c(0, p, e->len), 4);
	return 0;
}

void proxy_enc_free(struct proxy_enc *e)
{
	free(e->buf);
	*e = (struct proxy_enc){ 0 };
}

static const uint8_t *dec_take(struct proxy_dec *d, size_t n)
{
	const uint8_t *p = d->p;

	if (d->err || d->left < n) {
		d->err = -EBADMSG;
		return NULL;
	}
	d->p += n;
	d->left -= n;
	return p;
}

uint32_t proxy_get_u32(struct proxy_dec *d)
{
	const uint8_t *p = dec_take(d, 4);

	return p ? (uint32_t)get_be(p, 4) : 0;
}

uint64_t proxy_get_u64(struct proxy_dec *d)
{
	const uint8_t *p = dec_take(d, 8);

	return p ? get_be(p, 8) : 0;
}

void proxy_get_str(struct proxy_dec *d, char *out, size_t len)
{
	const uint8_t *p = dec_take(d, 2);
	size_t n = p ? (size_t)get_be(p, 2) : 0;

	out[0] = '\0';
	p = dec_take(d, n);
	if (!p)
		return;
	if (n >= len) {
		d->err = -EMSGSIZE;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

long proxy_find_frame(const uint8_t *buf, size_t len, struct proxy_hdr *h)
{
	uint8_t hdr[PROXY_HDR_LEN];
	size_t skip, total;
	uint32_t crc;

	/* Up to the first byte that can start the magic. */
	for (skip = 0; skip < len && buf[skip] != (PROXY_MAGIC >> 24); skip++)
		;
	if (skip)
		return -(long)skip;
	if (len < PROXY_HDR_LEN)
		return 0;
	if (get_be(buf, 4) != PROXY_MAGIC || buf[4] != PROXY_VERSION ||
	    get_be(buf + 12, 4) > PROXY_MAX_PAYLOAD || get_be(buf + 28, 4))
		return -1;
	total = PROXY_HDR_LEN + get_be(buf + 12, 4);
	if (len < total)
		return 0;
	memcpy(hdr, buf, PROXY_HDR_LEN);
	put_be(hdr + 24, 0, 4);
	crc = proxy_crc32c(0, hdr, PROXY_HDR_LEN);
	crc = proxy_crc32c(crc, buf + PROXY_HDR_LEN, total - PROXY_HDR_LEN);
	if (crc != get_be(buf + 24, 4))
		return -1;
	h->op = buf[5];
	h->flags = (uint16_t)get_be(buf + 6, 2);
	h->status = (int32_t)get_be(buf + 8, 4);
	h->length = (uint32_t)get_be(buf + 12, 4);
	h->id = get_be(buf + 16, 8);
	return (long)total;
}
