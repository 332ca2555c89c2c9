// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_noded - libFuzzer target: blobcr-noded's whole request handling
 * (fuzz_server.h), over a real chunk store in a scratch directory.  The
 * daemon's handlers and role table are noded.c's own: it is included here
 * with its main() renamed.
 */
#include "fuzz_server.h"

#define main noded_main
#include "../../userspace/noded/noded.c"
#undef main

static struct noded nd;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct store_opts so = { .segment_size = 1 << 20 };
	struct store_opts mo = { .segment_size = 1 << 20 };
	static char mdir[4200];

	(void)argc, (void)argv;
	so.dir = fz_init(&nd.srv, BLOBCR_ROLE_NODE);
	snprintf(mdir, sizeof(mdir), "%s/manifests", so.dir);
	mo.dir = mdir; /* metad's manifests, as noded.c keeps them */
	/* no metad: every forward list is refused, as it must be */
	if (store_open(&so, &nd.st) || store_open(&mo, &nd.mst) ||
	    fwd_new(NULL, NULL, NULL, "fuzz", false, &nd.fwd))
		abort();
	server_setup(&nd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_one(&nd.srv, data, size);
	return 0;
}
