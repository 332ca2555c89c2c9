// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_frame - libFuzzer target for the frame decoder and the field codec:
 * any input must decode or be refused without crashing; a frame that
 * decodes must re-encode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "blobcr_wire.h"

static void walk_payload(const uint8_t *p, size_t n)
{
	struct blobcr_dec d;
	char s[BLOBCR_NAME_MAX];

	/* The shapes the services decode: strings, counts, ids, integers. */
	blobcr_dec_init(&d, p, n);
	while (!d.err && d.left) {
		switch (blobcr_dec_u8(&d) % 6) {
		case 0: blobcr_dec_str(&d, s, sizeof(s)); break;
		case 1: blobcr_dec_u16(&d); break;
		case 2: blobcr_dec_u32(&d); break;
		case 3: blobcr_dec_u64(&d); break;
		case 4: blobcr_dec_bytes(&d, BLOBCR_ID_SIZE); break;
		default: blobcr_dec_bytes(&d, blobcr_dec_u32(&d)); break;
		}
	}
	(void)blobcr_dec_end(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blobcr_hdr h;
	const uint8_t *payload;
	struct blobcr_enc e;

	walk_payload(data, size);
	/* A session's frame is checked by its tag (fuzz_server.c), not here. */
	if (blobcr_frame_decode(data, size, &h, &payload) ||
	    (h.flags & BLOBCR_F_AUTH))
		return 0;
	if (blobcr_enc_init(&e, h.payload_len))
		return 0;
	blobcr_enc_bytes(&e, payload, h.payload_len);
	if (blobcr_enc_finish(&e, &h) || e.len != size || memcmp(e.buf, data, size))
		abort(); /* decode and encode disagree */
	blobcr_enc_free(&e);
	return 0;
}
