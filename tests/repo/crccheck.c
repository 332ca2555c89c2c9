// SPDX-License-Identifier: GPL-2.0
/*
 * crccheck - blobcr_crc32c() (ISA-L's) against a bit-at-a-time CRC32C and
 * against the library's own code before it (one stream of SSE4.2's crc32,
 * which wrote the CRCs of the stores made so far), over many lengths and
 * alignments, whole and in pieces.  Prints "pass: WHAT" or "FAIL: WHAT"
 * per check; exit 1 on any failure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_wire.h"

static int failed;

static void verdict(int good, const char *what)
{
	printf("%s: %s\n", good ? "pass" : "FAIL", what);
	failed |= !good;
}

/* The definition: one bit at a time, reflected polynomial 0x82f63b78. */
static uint32_t crc_bits(uint32_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

#if defined(__x86_64__)
/* The library's CRC32C until ISA-L's, as it ran on x86 with SSE4.2. */
__attribute__((target("sse4.2")))
static uint32_t crc_before(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = ~crc;

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
	return ~crc;
}
#endif

int main(void)
{
	static const size_t lens[] = {
		0, 1, 7, 8, 9, 63, 4096, 8191, 8192, 24575, 24576, 24577,
		49152 + 13, 65536, 262144 - 1, 262144, 262144 + 5, (1u << 20) + 3,
	};
	size_t max = (1u << 20) + 3 + 8, bad = 0, checks = 0;
	uint8_t *buf = malloc(max);
	char what[128];

	if (!buf)
		return 1;
	srandom(14);
	for (size_t i = 0; i < max; i++)
		buf[i] = (uint8_t)random();
	verdict(blobcr_crc32c(0, "123456789", 9) == 0xe3069283u,
		"the check value of \"123456789\" is e3069283");
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (size_t off = 0; off < 8; off++, checks++)
			bad += blobcr_crc32c(0, buf + off, lens[l]) !=
			       crc_bits(0, buf + off, lens[l]);
	snprintf(what, sizeof(what), "%zu lengths at 8 alignments match the "
		 "bitwise CRC (%zu differ)", checks / 8, bad);
	verdict(!bad, what);
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		bad = 0;
		checks = 0;
		for (size_t l = 0; l <= 300000; l += 1 + l / 3)
			for (size_t off = 0; off < 8; off++, checks++) {
				uint32_t seed = (uint32_t)random();

				bad += blobcr_crc32c(seed, buf + off, l) !=
				       crc_before(seed, buf + off, l);
			}
		snprintf(what, sizeof(what), "%zu lengths at 8 alignments, random "
			 "seeds, match the code before (%zu differ)", checks / 8, bad);
		verdict(!bad, what);
	}
#endif
	/* A CRC carried from one piece to the next, as the store's header. */
	bad = 0;
	checks = 0;
	for (size_t cut = 0; cut <= 262144; cut += 4099, checks++) {
		uint32_t a = blobcr_crc32c(0, buf, cut);

		bad += blobcr_crc32c(a, buf + cut, 262144 - cut) !=
		       crc_bits(0, buf, 262144);
	}
	snprintf(what, sizeof(what), "a CRC of 256 KiB in two pieces, %zu cuts, "
		 "is the whole one (%zu differ)", checks, bad);
	verdict(!bad, what);
	free(buf);
	return failed;
}
