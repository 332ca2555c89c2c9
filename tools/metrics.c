// SPDX-License-Identifier: GPL-2.0
/*
 * metrics.c - blobcrctl metrics: the repository's health in the Prometheus
 * text exposition format, to standard output or into node_exporter's
 * textfile directory (Documentation/man/blobcrctl.8.rst lists the series).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

const char *const node_stat_names[NODE_STATS] = {
	"chunks", "live_bytes", "used_bytes", "capacity", "segments_open",
	"corrupt", "requests", "malformed", "scrubbed", "scrub_passes",
	"manifests", "manifest_bytes", "put_bytes", "put_fwd_bytes",
	"forwarded_bytes"
};

enum { ST_CORRUPT = 5, ST_REQUESTS = 6, ST_SCRUBBED = 8, ST_PASSES = 9 };

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels of node @n: id, address, failure domain (valid names). */
static void node_labels(const struct blobcr_node_info *n, char *out,
			size_t len)
{
	snprintf(out, len, "node=\"%" PRIu32 "\",addr=\"%s\",domain=\"%s\"",
		 n->id, n->addr, n->domain);
}

static void node_gauges(FILE *f, const struct blobcr_node_info *nodes,
			size_t n)
{
	static const struct {
		const char *name, *help;
	} g[] = {
		{ "blobcr_node_up", "1 if the node is live (heartbeats), else 0." },
		{ "blobcr_node_draining", "1 if the node is being drained." },
		{ "blobcr_node_chunks", "Chunks the node holds." },
		{ "blobcr_node_used_bytes", "Bytes in the node's segment files." },
		{ "blobcr_node_capacity_bytes", "The node's capacity, 0: unlimited." },
		{ "blobcr_node_heartbeat_age_seconds", "Since the node's last heartbeat." },
	};
	char l[BLOBCR_ADDR_MAX + BLOBCR_DOMAIN_MAX + 64];

	for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
		family(f, g[k].name, "gauge", g[k].help);
		for (size_t i = 0; i < n; i++) {
			const struct blobcr_node_info *x = &nodes[i];
			double v[] = { x->state == BLOBCR_NODE_LIVE,
				       x->role == BLOBCR_NODE_DRAINING,
				       (double)x->chunks, (double)x->used,
				       (double)x->capacity,
				       x->heartbeat_age_ms / 1000.0 };

			if (x->role == BLOBCR_NODE_REMOVED)
				continue;
			node_labels(x, l, sizeof(l));
			fprintf(f, "%s{%s} %.15g\n", g[k].name, l, v[k]);
		}
	}
}

/* The live nodes' own counters; a node that does not answer: scrape 0. */
static void node_counters(FILE *f, const struct blobcr_node_info *nodes,
			  size_t n, node_stat_fn stat, void *arg)
{
	static const struct {
		const char *name, *help;
		int idx;
	} c[] = {
		{ "blobcr_node_corrupt_chunks_total",
		  "Chunks found corrupt (scrub or read) and dropped.", ST_CORRUPT },
		{ "blobcr_node_scrubbed_chunks_total",
		  "Chunks re-read and verified by the scrubber.", ST_SCRUBBED },
		{ "blobcr_node_scrub_passes_total",
		  "Complete passes of the scrubber over the store.", ST_PASSES },
		{ "blobcr_node_requests_total", "Requests served.", ST_REQUESTS },
	};
	uint64_t (*vals)[NODE_STATS] = calloc(n ? n : 1, sizeof(*vals));
	bool *ok = calloc(n ? n : 1, sizeof(*ok));
	char l[BLOBCR_ADDR_MAX + BLOBCR_DOMAIN_MAX + 64];

	if (!vals || !ok) {
		free(vals);
		free(ok);
		return;
	}
	family(f, "blobcr_node_scrape_ok", "gauge",
	       "1 if the live node answered its STAT, else 0.");
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].state != BLOBCR_NODE_LIVE ||
		    nodes[i].role == BLOBCR_NODE_REMOVED)
			continue;
		ok[i] = !stat(nodes[i].addr, vals[i], arg);
		node_labels(&nodes[i], l, sizeof(l));
		fprintf(f, "blobcr_node_scrape_ok{%s} %d\n", l, ok[i]);
	}
	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		family(f, c[k].name, "counter", c[k].help);
		for (size_t i = 0; i < n; i++) {
			if (!ok[i])
				continue;
			node_labels(&nodes[i], l, sizeof(l));
			fprintf(f, "%s{%s} %" PRIu64 "\n", c[k].name, l,
				vals[i][c[k].idx]);
		}
	}
	free(vals);
	free(ok);
}

int metrics_write(struct blobcr_client *c, FILE *f, node_stat_fn stat,
		  void *arg)
{
	struct blobcr_node_info *nodes = NULL;
	struct blobcr_image_info *images = NULL;
	size_t nn = 0, ni = 0, live = 0, dead = 0;
	uint64_t under = 0;
	int err = blobcr_node_list(c, &nodes, &nn);

	if (!err)
		err = blobcr_image_list(c, &images, &ni);
	if (!err)
		err = blobcr_under_replicated(c, &under);
	if (err) {
		free(nodes);
		free(images);
		return err;
	}
	for (size_t i = 0; i < nn; i++) {
		if (nodes[i].role == BLOBCR_NODE_REMOVED)
			continue;
		live += nodes[i].state == BLOBCR_NODE_LIVE;
		dead += nodes[i].state != BLOBCR_NODE_LIVE;
	}
	family(f, "blobcr_nodes", "gauge", "Storage nodes, by state.");
	fprintf(f, "blobcr_nodes{state=\"live\"} %zu\n", live);
	fprintf(f, "blobcr_nodes{state=\"dead\"} %zu\n", dead);
	family(f, "blobcr_replicas", "gauge", "Replicas each chunk should have.");
	fprintf(f, "blobcr_replicas %d\n", blobcr_replicas(c));
	family(f, "blobcr_under_replicated_chunks", "gauge",
	       "Chunks with fewer live replicas than blobcr_replicas.");
	fprintf(f, "blobcr_under_replicated_chunks %" PRIu64 "\n", under);
	family(f, "blobcr_images", "gauge", "Images in the repository.");
	fprintf(f, "blobcr_images %zu\n", ni);
	node_gauges(f, nodes, nn);
	node_counters(f, nodes, nn, stat, arg);
	free(nodes);
	free(images);
	return ferror(f) ? -EIO : 0;
}

int metrics_textfile(struct blobcr_client *c, const char *dir,
		     node_stat_fn stat, void *arg)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	FILE *f;
	int err;

	/* node_exporter reads *.prom only: the file in progress is not one. */
	snprintf(path, sizeof(path), "%s/blobcr.prom", dir);
	snprintf(tmp, sizeof(tmp), "%s/.blobcr.prom.%d", dir, (int)getpid());
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	err = metrics_write(c, f, stat, arg);
	if (!err && (fflush(f) || fsync(fileno(f))))
		err = -errno;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
