// SPDX-License-Identifier: GPL-2.0
/*
 * hash.c - chunk ids: SHA-256 through OpenSSL's EVP interface.
 */
#include <errno.h>

#include <openssl/evp.h>

#include "blobcr.h"

int blobcr_chunk_id(const void *data, size_t len, uint8_t id[BLOBCR_ID_SIZE])
{
	unsigned int n = 0;

	/* EVP_Digest picks the SHA-NI code path when the CPU has it. */
	if (!EVP_Digest(data, len, id, &n, EVP_sha256(), NULL) ||
	    n != BLOBCR_ID_SIZE)
		return -EIO;
	return 0;
}

void blobcr_id_hex(const uint8_t id[BLOBCR_ID_SIZE], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < BLOBCR_ID_SIZE; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 15];
	}
	out[64] = 0;
}
