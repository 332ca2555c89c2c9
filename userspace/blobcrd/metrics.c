// SPDX-License-Identifier: GPL-2.0
/*
 * metrics.c - a deployment's counters for Prometheus: node_exporter's
 * textfile collector reads DIR/blobcrd-DMNAME.prom, which is replaced
 * whole (written under a name it ignores, then renamed).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blobcrd.h"

/* One family per counter, each with the deployment's one sample. */
static void write_counters(FILE *f, struct deployment *d, const char *labels)
{
	double ext = d->extent_size;
	const struct {
		const char *name, *type, *help;
		double v;
	} m[] = {
		{ "misses_total", "counter",
		  "Demand fetches: reads that waited for the repository.",
		  (double)atomic_load(&d->misses) },
		{ "fetched_bytes_total", "counter",
		  "Bytes fetched from the repository (demand and prefetch).",
		  (double)atomic_load(&d->fetched_extents) * ext },
		{ "zero_extents_total", "counter",
		  "Extents served as zeros (holes), nothing fetched.",
		  (double)atomic_load(&d->zero_extents) },
		{ "fetch_failures_total", "counter",
		  "Fetches that failed (the I/O got an error).",
		  (double)atomic_load(&d->fetch_failures) },
		{ "prefetched_extents_total", "counter",
		  "Extents asked for ahead of use, from the recorded access order.",
		  (double)__atomic_load_n(&d->pf.requested, __ATOMIC_RELAXED) },
		{ "commits_total", "counter", "Commits published as new versions.",
		  (double)atomic_load(&d->commits) },
		{ "commit_failures_total", "counter",
		  "Commits that failed (nothing published).",
		  (double)atomic_load(&d->commit_failures) },
		{ "commit_seconds_total", "counter",
		  "Time the published commits took, summed.",
		  atomic_load(&d->commit_ms) / 1000.0 },
		{ "commit_bytes_total", "counter",
		  "Bytes of the extents the published commits held, summed.",
		  (double)atomic_load(&d->commit_extents) * ext },
		{ "last_commit_seconds", "gauge",
		  "Time the last published commit took.",
		  atomic_load(&d->last_commit_ms) / 1000.0 },
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		fprintf(f, "# HELP blobcrd_%s %s\n# TYPE blobcrd_%s %s\n"
			   "blobcrd_%s{%s} %.15g\n", m[i].name, m[i].help,
			m[i].name, m[i].type, m[i].name, labels, m[i].v);
}

static void metrics_path(const struct deployment *d, char *path, size_t len)
{
	snprintf(path, len, "%s/blobcrd-%s.prom", d->metrics_dir, d->dm_name);
}

void metrics_remove(struct deployment *d)
{
	char path[PATH_MAX];

	if (!d->metrics_dir)
		return;
	metrics_path(d, path, sizeof(path));
	unlink(path);
}

void metrics_write(struct deployment *d)
{
	char tmp[PATH_MAX], path[PATH_MAX], labels[3 * BLOBCR_NAME_MAX];
	FILE *f;

	if (!d->metrics_dir)
		return;
	metrics_path(d, path, sizeof(path));
	/* One temporary per thread: a commit and the lease loop may race. */
	snprintf(tmp, sizeof(tmp), "%s/.blobcrd-%s.%d", d->metrics_dir,
		 d->dm_name, gettid());
	snprintf(labels, sizeof(labels), "device=\"%s\",image=\"%s\"",
		 d->dm_name, d->commit_image);
	f = fopen(tmp, "we");
	if (!f) {
		logmsg(d, "metrics: cannot write %s: %s", tmp, strerror(errno));
		return;
	}
	write_counters(f, d, labels);
	if (fclose(f) || rename(tmp, path)) {
		logmsg(d, "metrics: cannot replace %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}
