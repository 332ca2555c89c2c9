// SPDX-License-Identifier: GPL-2.0
/*
 * chunktool - requests a test needs to make by hand.
 *
 *   chunktool NODE list              the ids NODE holds, in hex, one a line
 *   chunktool NODE delete ID...      delete chunks on NODE behind metad's back
 *                                    (with metad's key in $BLOBCR_KEY)
 *   chunktool META suspect ID NODEID report NODEID's copy of ID as read bad,
 *                                    as a client does (CHUNK_SUSPECT)
 *   chunktool META access-put IMAGE@V E...
 *                                    record an access order, as blobcrd does
 *   chunktool META access-get IMAGE@V
 *                                    print it, one extent a line
 *   chunktool NODE put-fwd FORMAT WAIT_MS ID|- FILE [NODEID...]
 *                                    a PUT_FWD of FILE's bytes (id: their
 *                                    SHA-256 for -) to NODE naming the
 *                                    NODEIDs; prints "NODEID STATUS" per
 *                                    node of the reply
 *
 * Exit status 0 on success, 1 on an error (printed), 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"

static int parse_id(const char *hex, uint8_t id[BLOBCR_ID_SIZE])
{
	if (strlen(hex) != 2 * BLOBCR_ID_SIZE)
		return -EINVAL;
	for (int i = 0; i < BLOBCR_ID_SIZE; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &id[i]) != 1)
			return -EINVAL;
	return 0;
}

/*
 * One request in a fresh session with $BLOBCR_KEY (a delete needs metad's
 * key); @show (may be NULL) reads the reply.
 */
static int call(const char *addr, uint8_t op, struct blobcr_enc *e,
		int (*show)(struct blobcr_dec *d))
{
	struct blobcr_key *key = NULL;
	struct blobcr_peer peer = { .sock = -1 };
	struct blobcr_dec d;
	void *msg = NULL;
	int err = blobcr_key_load(NULL, &key);

	if (!err)
		err = blobcr_peer_open(&peer, addr, key,
				       BLOBCR_ROLE_METAD | BLOBCR_ROLE_NODE, 10000);
	if (!err)
		err = blobcr_peer_call(&peer, op, e, &msg, &d);
	if (err && blobcr_auth_error(err))
		fprintf(stderr, "chunktool: %s\n", blobcr_auth_detail());
	if (!err && show)
		err = show(&d);
	if (msg)
		nn_freemsg(msg);
	blobcr_peer_close(&peer);
	blobcr_key_free(key);
	return err;
}

static uint8_t after[BLOBCR_ID_SIZE];
static int has_after, more;

static int show_page(struct blobcr_dec *d)
{
	uint32_t n = blobcr_dec_u32(d);

	for (uint32_t i = 0; i < n && !d->err; i++) {
		const uint8_t *id = blobcr_dec_bytes(d, BLOBCR_ID_SIZE);
		char hex[65];

		if (!id)
			break;
		blobcr_id_hex(id, hex);
		puts(hex);
		memcpy(after, id, BLOBCR_ID_SIZE);
		has_after = 1;
	}
	more = blobcr_dec_u8(d);
	return blobcr_dec_end(d);
}

static int list(const char *addr)
{
	int err = 0;

	do {
		struct blobcr_enc e;

		err = blobcr_enc_init(&e, 64);
		if (err)
			break;
		blobcr_enc_u8(&e, (uint8_t)has_after);
		blobcr_enc_bytes(&e, after, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&e, 4096);
		err = call(addr, BLOBCR_OP_INVENTORY, &e, show_page);
		blobcr_enc_free(&e);
	} while (!err && more);
	return err;
}

static int show_fwd(struct blobcr_dec *d)
{
	uint8_t n = blobcr_dec_u8(d);

	for (uint8_t i = 0; i < n && !d->err; i++) {
		uint32_t node = blobcr_dec_u32(d);
		int32_t status = (int32_t)blobcr_dec_u32(d);

		if (!d->err)
			printf("%" PRIu32 " %" PRId32 "\n", node, status);
	}
	return blobcr_dec_end(d);
}

/* put-fwd: the request as a client builds it, every field from the caller */
static int put_fwd(const char *addr, char **argv, int nnodes)
{
	uint8_t id[BLOBCR_ID_SIZE], *data = malloc(BLOBCR_MAX_EXTENT);
	FILE *f = fopen(argv[2], "rb");
	size_t len = data && f ? fread(data, 1, BLOBCR_MAX_EXTENT, f) : 0;
	struct blobcr_enc e;
	int err = !data || !f ? -errno : 0;

	if (f)
		fclose(f);
	if (!err)
		err = strcmp(argv[1], "-") ? parse_id(argv[1], id) :
		      blobcr_chunk_id(data, len, id);
	if (!err)
		err = blobcr_enc_init(&e, 64 + len);
	if (!err) {
		blobcr_enc_u8(&e, (uint8_t)strtoul(argv[-1], NULL, 10));
		blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&e, (uint32_t)len);
		blobcr_enc_bytes(&e, data, len);
		blobcr_enc_u32(&e, (uint32_t)strtoul(argv[0], NULL, 10));
		blobcr_enc_u8(&e, (uint8_t)nnodes);
		for (int i = 0; i < nnodes; i++)
			blobcr_enc_u32(&e, (uint32_t)strtoul(argv[3 + i], NULL, 10));
		err = call(addr, BLOBCR_OP_PUT_FWD, &e, show_fwd);
		blobcr_enc_free(&e);
	}
	free(data);
	return err;
}

/* IMAGE@V into @image and *@ver; Return: 0 or -EINVAL. */
static int parse_ref(const char *s, char image[BLOBCR_NAME_MAX], uint32_t *ver)
{
	const char *at = strrchr(s, '@');

	if (!at || at == s || (size_t)(at - s) >= BLOBCR_NAME_MAX)
		return -EINVAL;
	memcpy(image, s, (size_t)(at - s));
	image[at - s] = 0;
	*ver = (uint32_t)strtoul(at + 1, NULL, 10);
	return 0;
}

/* access-put and access-get, through the client library */
static int access_order(const char *meta, int put, const char *ref, int n,
		  char **exts)
{
	char image[BLOBCR_NAME_MAX];
	struct blobcr_client *c;
	uint64_t *v = calloc(n ? (size_t)n : 1, sizeof(*v));
	size_t got;
	uint32_t ver;
	int err = v ? parse_ref(ref, image, &ver) : -ENOMEM;

	for (int i = 0; !err && i < n; i++)
		v[i] = strtoull(exts[i], NULL, 10);
	if (!err)
		err = blobcr_connect(meta, NULL, &c);
	if (err) {
		free(v);
		return err;
	}
	if (put) {
		err = blobcr_access_order_put(c, image, ver, v, (size_t)n);
	} else {
		free(v);
		v = NULL;
		err = blobcr_access_order_get(c, image, ver, &v, &got);
		for (size_t i = 0; !err && i < got; i++)
			printf("%" PRIu64 "\n", v[i]);
	}
	free(v);
	blobcr_close(c);
	return err;
}

int main(int argc, char **argv)
{
	uint8_t id[BLOBCR_ID_SIZE];
	struct blobcr_enc e;
	int err;

	if (argc >= 3 && !strcmp(argv[2], "list") && argc == 3) {
		err = list(argv[1]);
	} else if (argc >= 4 && !strcmp(argv[2], "delete")) {
		err = blobcr_enc_init(&e, 4 + (size_t)(argc - 3) * BLOBCR_ID_SIZE);
		if (!err)
			blobcr_enc_u32(&e, (uint32_t)(argc - 3));
		for (int i = 3; i < argc && !err; i++) {
			if (parse_id(argv[i], id))
				goto usage;
			blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
		}
		if (!err)
			err = call(argv[1], BLOBCR_OP_DELETE, &e, NULL);
		blobcr_enc_free(&e);
	} else if (argc == 5 && !strcmp(argv[2], "suspect")) {
		if (parse_id(argv[3], id))
			goto usage;
		err = blobcr_enc_init(&e, 40);
		if (!err) {
			blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
			blobcr_enc_u32(&e, (uint32_t)strtoul(argv[4], NULL, 10));
			err = call(argv[1], BLOBCR_OP_CHUNK_SUSPECT, &e, NULL);
			blobcr_enc_free(&e);
		}
	} else if (argc >= 5 && !strcmp(argv[2], "access-put")) {
		err = access_order(argv[1], 1, argv[3], argc - 4, argv + 4);
	} else if (argc == 4 && !strcmp(argv[2], "access-get")) {
		err = access_order(argv[1], 0, argv[3], 0, NULL);
	} else if (argc >= 7 && !strcmp(argv[2], "put-fwd")) {
		err = put_fwd(argv[1], argv + 4, argc - 7);
	} else {
		goto usage;
	}
	if (err)
		fprintf(stderr, "chunktool: %s (%d)\n", blobcr_strerror(err), err);
	return err ? 1 : 0;
usage:
	fprintf(stderr, "Usage: chunktool NODE list | NODE delete ID... | "
		"META suspect ID NODEID | META access-put IMAGE@V E... | "
		"META access-get IMAGE@V | NODE put-fwd FORMAT WAIT_MS ID|- FILE "
		"[NODEID...]\n");
	return 2;
}
