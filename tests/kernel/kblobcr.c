// SPDX-License-Identifier: GPL-2.0
/*
 * kblobcr: the reference helper as a command, for benchmarks and manual
 * use (as selftests/ublk has kublk).
 *
 *   kblobcr serve -c CHANNEL -d CACHE_DEV [-r REMOTE] [-C COMMIT_DIR] [-u]
 *                 [-t THREADS]
 *   kblobcr commit CHANNEL
 *   kblobcr info CHANNEL
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blobcr_helper.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: kblobcr serve -c CHANNEL -d CACHE_DEV [-r REMOTE] [-C COMMIT_DIR] [-u] [-t THREADS]\n"
		"       kblobcr commit CHANNEL\n"
		"       kblobcr info CHANNEL\n");
	return 2;
}

static int serve(int argc, char **argv)
{
	struct helper_opts o = { 0 };
	struct helper_stats *stats = helper_stats_new();
	int c, r;

	while ((c = getopt(argc, argv, "c:d:r:C:ut:")) != -1) {
		switch (c) {
		case 'c': o.channel = optarg; break;
		case 'd': o.cache = optarg; break;
		case 'r': o.remote = optarg; break;
		case 'C': o.commit_dir = optarg; break;
		case 'u': o.uploaded_replies = true; break;
		case 't': o.threads = atoi(optarg); break;
		default: return usage();
		}
	}
	if (!o.channel || !o.cache || !stats)
		return usage();
	r = helper_serve(&o, stats, -1);
	fprintf(stderr, "kblobcr: %llu fetch requests, %llu extents, %llu commits\n",
		(unsigned long long)stats->fetch_reqs,
		(unsigned long long)stats->fetch_extents,
		(unsigned long long)stats->commits);
	if (r)
		fprintf(stderr, "kblobcr: %s\n", strerror(-r));
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct blobcr_commit c;
	struct blobcr_info i;
	int r;

	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "serve"))
		return serve(argc - 1, argv + 1);
	if (argc != 3)
		return usage();
	if (!strcmp(argv[1], "commit")) {
		r = channel_commit(argv[2], &c);
		if (r) {
			fprintf(stderr, "kblobcr: commit: %s\n", strerror(-r));
			return 1;
		}
		printf("version %llu extents %llu pause_us %llu\n",
		       (unsigned long long)c.version,
		       (unsigned long long)c.nr_extents,
		       (unsigned long long)c.pause_ns / 1000);
		return 0;
	}
	if (!strcmp(argv[1], "info")) {
		r = channel_info(argv[2], &i);
		if (r) {
			fprintf(stderr, "kblobcr: info: %s\n", strerror(-r));
			return 1;
		}
		printf("extents %llu extent_sectors %u present %llu dirty %llu committing %llu commits %llu last_version %llu helpers %u fetches %u+%u mode %u\n",
		       (unsigned long long)i.nr_extents, i.extent_sectors,
		       (unsigned long long)i.nr_present,
		       (unsigned long long)i.nr_dirty,
		       (unsigned long long)i.nr_committing,
		       (unsigned long long)i.commits_done,
		       (unsigned long long)i.last_version, i.nr_helpers,
		       i.fetches_queued, i.fetches_inflight, i.mode);
		return 0;
	}
	return usage();
}
