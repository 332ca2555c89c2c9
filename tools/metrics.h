/* SPDX-License-Identifier: GPL-2.0 */
/*
 * metrics.h - the repository's health in the Prometheus text format
 * (blobcrctl metrics): nodes, chunks short of replicas, scrub findings.
 */
#ifndef BLOBCR_METRICS_H
#define BLOBCR_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "blobcr.h"

/* The counters of a storage node's STAT reply, in wire order. */
#define NODE_STATS 15
extern const char *const node_stat_names[NODE_STATS];

/* Fill @vals with node @addr's STAT counters; 0 or -errno. */
typedef int (*node_stat_fn)(const char *addr, uint64_t vals[NODE_STATS],
			    void *arg);

/**
 * metrics_write() - the repository's metrics, as seen through @c and each
 * live node's STAT (@stat), to @f.  Return: 0, or -errno if metad could
 * not be asked (a node that does not answer is reported as such).
 */
int metrics_write(struct blobcr_client *c, FILE *f, node_stat_fn stat,
		  void *arg);

/**
 * metrics_textfile() - the same, atomically replacing @dir/blobcr.prom
 * (written beside it, then renamed), for node_exporter's textfile
 * collector.  Return: 0 or -errno.
 */
int metrics_textfile(struct blobcr_client *c, const char *dir,
		     node_stat_fn stat, void *arg);

#endif
