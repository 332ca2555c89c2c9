// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_metad - libFuzzer target: blobcr-metad's whole request handling
 * (fuzz_server.h), over a real LMDB database in a scratch directory.  The
 * daemon's dispatch and role table are metad.c's own: it is included here
 * with its main() renamed.
 */
#include <lmdb.h>

#include "fuzz_server.h"

#define main metad_main
#include "../../userspace/metad/metad.c"
#undef main

static struct metad m = { .replicas = 1, .dead_after_ms = 5000,
			  .node_timeout_ms = 50, /* gc: no waiting on nodes */
			  .list_page_bytes = LIST_PAGE_BYTES,
			  .map_bytes = (size_t)1 << 30 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char key[4200];
	const char *dir;

	(void)argc, (void)argv;
	dir = fz_init(&m.srv, BLOBCR_ROLE_METAD);
	/* metad's own key: it calls the nodes (gc, manifests) as metad. */
	snprintf(key, sizeof(key), "%s/metad.key", dir);
	m.nodes = calloc(MAX_NODES, sizeof(*m.nodes));
	if (!m.nodes || blobcr_key_load(key, &m.key) ||
	    pthread_mutex_init(&m.nodes_mu, NULL) ||
	    pthread_mutex_init(&m.gc_mu, NULL) ||
	    pthread_mutex_init(&m.upkeep_mu, NULL) ||
	    pthread_cond_init(&m.upkeep_cv, NULL) || db_open(dir, &m.db, m.map_bytes) ||
	    load_nodes(&m) || resume_gc(&m))
		abort();
	/* Speed, not durability: nothing here survives the run. */
	mdb_env_set_flags(m.db.env, MDB_NOSYNC, 1);
	server_setup(&m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_one(&m.srv, data, size);
	return 0;
}
