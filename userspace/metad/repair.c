// SPDX-License-Identifier: GPL-2.0
/*
 * repair.c - the re-replication thread of blobcr-metad (repair.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "repair.h"

static size_t dead_nodes(struct blobcr_client *c)
{
	struct blobcr_node_info *v;
	size_t n, dead = 0;

	if (blobcr_node_list(c, &v, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		dead += v[i].state != BLOBCR_NODE_LIVE;
	free(v);
	return dead;
}

/*
 * One round: repair if a node is dead or copies went missing since the
 * last round that repaired everything.  Logs only what changed.
 */
static void repair_round(struct repairer *r, struct blobcr_client *c,
			 uint64_t *seen, uint64_t *last_failed)
{
	uint64_t events = __atomic_load_n(r->events, __ATOMIC_RELAXED);
	struct blobcr_repair_stats st = { 0 };
	int err;

	if (events == *seen && !dead_nodes(c))
		return;
	err = blobcr_repair(c, &st);
	/* Copies that could not be made (their nodes not live yet) wait. */
	if (!err && !st.failed)
		*seen = events;
	if (st.repaired || (st.failed && st.failed != *last_failed))
		log_info("re-replication: %" PRIu64 " chunks under-replicated, %"
			 PRIu64 " repaired, %" PRIu64 " failed%s%s",
			 st.under_replicated, st.repaired, st.failed,
			 err ? ": " : "", err ? blobcr_strerror(err) : "");
	*last_failed = st.failed;
}

static void *repair_thread(void *p)
{
	struct repairer *r = p;
	struct blobcr_client_opts o = { .timeout_ms = 30000,
					.key_file = r->key_file };
	struct blobcr_client *c = NULL;
	/*
	 * The events of a previous run lived in its memory: the first round
	 * repairs whatever it left under-replicated.
	 */
	uint64_t last_failed = 0, seen = UINT64_MAX;

	while (!blobcr_stopping(r->stop)) {
		for (int t = 0; t < r->interval_s * 10 && !blobcr_stopping(r->stop); t++)
			usleep(100 * 1000);
		if (blobcr_stopping(r->stop))
			break;
		if (!c && blobcr_connect(r->self, &o, &c)) {
			c = NULL;
			continue;
		}
		repair_round(r, c, &seen, &last_failed);
	}
	blobcr_close(c);
	return NULL;
}

int repairer_start(struct repairer *r, const char *listen, const char *key_file,
		   int interval_s, const uint64_t *events,
		   volatile sig_atomic_t *stop)
{
	const char *port = strrchr(listen, ':');

	r->key_file = key_file;
	r->interval_s = interval_s;
	r->events = events;
	r->stop = stop;
	if (!strncmp(listen, "tcp://*:", 8) || !strncmp(listen, "tcp://0.0.0.0:", 14))
		snprintf(r->self, sizeof(r->self), "tcp://127.0.0.1%s", port);
	else
		snprintf(r->self, sizeof(r->self), "%s", listen);
	return -pthread_create(&r->tid, NULL, repair_thread, r);
}

void repairer_join(struct repairer *r)
{
	pthread_join(r->tid, NULL);
}
