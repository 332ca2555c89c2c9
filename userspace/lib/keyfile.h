/* SPDX-License-Identifier: GPL-2.0 */
/*
 * keyfile.h - what auth.c uses of keyfile.c: the public keys keys.pub
 * lists, signing with our own key, the key derivation both use.
 */
#ifndef BLOBCR_KEYFILE_H
#define BLOBCR_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blobcr_auth.h"

#define SAME_NAME_MAX 8 /* public keys per name (rotations) */

/*
 * keyfile_pubs_of() - the public keys keys.pub lists for @name with a role
 * in @roles, into @out (at most SAME_NAME_MAX).  With @fresh, keys.pub is
 * looked at first (a key just added or rotated works at once).
 * Return: how many; *@role their role, *@gen (if not NULL) the generation
 * of keys.pub they come from.
 */
int keyfile_pubs_of(struct blobcr_key *k, const char *name, unsigned int roles,
		    uint8_t (*out)[32], unsigned int *role, uint64_t *gen,
		    bool fresh);

/** keyfile_sign() - Ed25519 signature of @msg with our private key, newest. */
int keyfile_sign(struct blobcr_key *k, const void *msg, size_t len,
		 uint8_t sig[64]);

/** keyfile_generation() - bumped each time keys.pub changes (looked at once a second). */
uint64_t keyfile_generation(struct blobcr_key *k);

/** keyfile_pubs_path() - where keys.pub is, for messages. */
const char *keyfile_pubs_path(const struct blobcr_key *k);

/** keyfile_hkdf() - HKDF-SHA256 (RFC 5869), one 32-byte block of output. */
int keyfile_hkdf(const uint8_t *salt, size_t slen, const uint8_t *ikm,
		 size_t ilen, const char *info, uint8_t out[32]);

#endif /* BLOBCR_KEYFILE_H */
