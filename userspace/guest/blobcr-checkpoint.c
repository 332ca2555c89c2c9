// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-checkpoint - ask the host for a checkpoint of this VM's disks,
 * from a shell script or a job script (the guest library's command line).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr-guest.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONFLICT = 4, EXIT_UNAVAIL = 5 };

static void usage(FILE *f)
{
	fprintf(f,
"Usage: blobcr-checkpoint [OPTIONS]              checkpoint this VM\n"
"       blobcr-checkpoint [OPTIONS] --wait ID    wait for a cut checkpoint\n"
"       blobcr-checkpoint [OPTIONS] --status | --cost\n"
"       blobcr-checkpoint [OPTIONS] --group NAME IMAGE@VERSION... | --next-group\n"
"\n"
"Syncs the file systems and asks the host's checkpointing proxy, on this\n"
"VM's channel, for a snapshot of every disk of the VM in one pause.  Prints\n"
"IMAGE@VERSION for each disk once the versions are published (the pause,\n"
"the freeze and the publication times go to stderr).\n"
"\n"
"Options:\n"
"  -c, --channel CH   virtio:PATH, vsock:[CID:]PORT or unix:PATH (default:\n"
"                     $BLOBCR_CHANNEL, else " BLOBCR_GUEST_VIRTIO_PORT "\n"
"                     if it exists, else vsock:2:%d)\n"
"  -l, --label TEXT   label the versions (1 to %d characters)\n"
"      --cut          answer as soon as the snapshot is cut and the VM goes\n"
"                     on; print the checkpoint's ID for --wait\n"
"      --wait ID      wait until checkpoint ID is durable, print its versions\n"
"      --no-sync      do not sync first (the caller did)\n"
"      --status       the VM's name, quiesce mode, and per disk its image, last\n"
"                     version and bytes written since (key=value lines)\n"
"      --cost         the bytes a checkpoint would upload now (of what has\n"
"                     reached the disks: sync first to count the page cache)\n"
"      --group NAME   publish the checkpoint group NAME of these versions (one\n"
"                     global checkpoint of this VM's job, named JOB.N) at the\n"
"                     repository, whole or not at all; prints NAME\n"
"      --next-group   print the name the job's next group takes\n"
"  -k, --keys         print results as key=value lines\n"
"  -t, --timeout SEC  give up waiting after SEC seconds (default 600)\n"
"  -h, --help         this help\n"
"\n"
"Exit status: 0 done, 1 failed, 2 usage, 4 busy (--group: the group\n"
"exists), 5 proxy unreachable or timed out.\n", BLOBCR_GUEST_VSOCK_PORT, BLOBCR_GUEST_LABEL_MAX);
}

static int exit_code(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -EBUSY:
		return EXIT_CONFLICT;
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ENOENT:
	case -ENODEV:
		return EXIT_UNAVAIL;
	default:
		return EXIT_FAIL;
	}
}

static void print_result(const struct blobcr_guest_checkpoint *c, int keys)
{
	if (keys) {
		printf("id=%" PRIu64 "\ndurable=%d\nheld_ms=%.3f\npaused_ms=%.3f\n"
		       "frozen_ms=%.3f\npublished_ms=%.1f\ndisks=%u\n", c->id,
		       c->durable, c->held_ms, c->paused_ms, c->frozen_ms,
		       c->published_ms, c->ndisks);
		for (unsigned int i = 0; i < c->ndisks; i++)
			printf("disk%u=%s %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			       i, c->disks[i].device, c->disks[i].image,
			       c->disks[i].version, c->disks[i].extents,
			       c->disks[i].bytes);
		return;
	}
	if (!c->durable)
		printf("%" PRIu64 "\n", c->id);
	else
		for (unsigned int i = 0; i < c->ndisks; i++)
			printf("%s@%" PRIu64 "\n", c->disks[i].image,
			       c->disks[i].version);
	fprintf(stderr, "blobcr-checkpoint: checkpoint %" PRIu64 ": writes held %.3f ms",
		c->id, c->held_ms);
	if (c->paused_ms > 0)
		fprintf(stderr, ", VM paused %.1f ms", c->paused_ms);
	if (c->frozen_ms > 0)
		fprintf(stderr, ", file systems frozen %.1f ms", c->frozen_ms);
	if (c->durable)
		fprintf(stderr, ", published after %.1f ms", c->published_ms);
	fputc('\n', stderr);
	for (unsigned int i = 0; i < c->ndisks; i++)
		fprintf(stderr, "blobcr-checkpoint:   %s: %" PRIu64 " extents, %.1f MiB\n",
			c->disks[i].device, c->disks[i].extents,
			(double)c->disks[i].bytes / (1 << 20));
}

static void print_status(const struct blobcr_guest_status *s)
{
	printf("vm=%s\nmode=%s\ndirty_bytes=%" PRIu64 "\ndisks=%u\n", s->vm,
	       s->mode, s->dirty_bytes, s->ndisks);
	for (unsigned int i = 0; i < s->ndisks; i++)
		printf("disk%u=%s %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", i,
		       s->disks[i].device, s->disks[i].image,
		       s->disks[i].last_version, s->disks[i].dirty_bytes,
		       s->disks[i].committing);
}

/* --group NAME IMAGE@VERSION... (@n of them), or --next-group (@n 0). */
static int do_group(struct blobcr_guest *g, const char *name, int n,
		    char **refs)
{
	struct blobcr_guest_member *m = calloc((size_t)n + 1, sizeof(*m));
	char out[128];
	int err = 0;

	if (!m)
		return -ENOMEM;
	for (int i = 0; i < n && !err; i++) {
		char *at = strrchr(refs[i], '@'), *end;

		m[i].image = refs[i];
		if (at) {
			*at = '\0';
			m[i].version = strtoull(at + 1, &end, 10);
		}
		if (!at || at == refs[i] || *end || !m[i].version) {
			fprintf(stderr, "blobcr-checkpoint: not IMAGE@VERSION: %s\n", refs[i]);
			err = -EINVAL;
		}
	}
	if (!err) {
		err = blobcr_guest_group(g, name, (unsigned int)n, m, out, sizeof(out));
		if (err)
			fprintf(stderr, "blobcr-checkpoint: %s\n", blobcr_guest_error(g));
		else
			printf("%s\n", out);
	}
	free(m);
	return err;
}

int main(int argc, char **argv)
{
	enum { O_CUT = 256, O_WAIT, O_NOSYNC, O_STATUS, O_COST, O_GROUP, O_NEXT };
	static const struct option opts[] = {
		{ "channel", required_argument, NULL, 'c' },
		{ "label", required_argument, NULL, 'l' },
		{ "cut", no_argument, NULL, O_CUT },
		{ "wait", required_argument, NULL, O_WAIT },
		{ "no-sync", no_argument, NULL, O_NOSYNC },
		{ "status", no_argument, NULL, O_STATUS },
		{ "cost", no_argument, NULL, O_COST },
		{ "group", required_argument, NULL, O_GROUP },
		{ "next-group", no_argument, NULL, O_NEXT },
		{ "keys", no_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *channel = NULL, *label = NULL, *wait_id = NULL, *group = NULL;
	int keys = 0, status = 0, cost = 0, next = 0, timeout_s = 0, c, err;
	unsigned int flags = 0;
	struct blobcr_guest *g;
	char *end;

	while ((c = getopt_long(argc, argv, "c:l:kt:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': channel = optarg; break;
		case 'l': label = optarg; break;
		case O_CUT: flags |= BLOBCR_GUEST_CUT; break;
		case O_WAIT: wait_id = optarg; break;
		case O_NOSYNC: flags |= BLOBCR_GUEST_NOSYNC; break;
		case O_STATUS: status = 1; break;
		case O_COST: cost = 1; break;
		case O_GROUP: group = optarg; break;
		case O_NEXT: next = 1; break;
		case 'k': keys = 1; break;
		case 't':
			timeout_s = (int)strtol(optarg, &end, 10);
			if (*end || timeout_s <= 0 || timeout_s > 86400) {
				fprintf(stderr, "blobcr-checkpoint: bad --timeout %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if ((optind != argc && !group) || (group && optind == argc) ||
	    status + cost + !!wait_id + !!group + next > 1 ||
	    ((status || cost || wait_id || group || next) && (flags || label))) {
		fprintf(stderr, "blobcr-checkpoint: one of checkpoint, --wait, --status, --cost, --group, --next-group (see --help)\n");
		return EXIT_USAGE;
	}

	err = blobcr_guest_open(channel, &g);
	if (err) {
		fprintf(stderr, "blobcr-checkpoint: bad channel '%s': %s\n",
			channel ? channel : getenv("BLOBCR_CHANNEL"), strerror(-err));
		return EXIT_USAGE;
	}
	if (timeout_s)
		blobcr_guest_set_timeout(g, timeout_s * 1000);
	if (group || next) {
		err = do_group(g, group, argc - optind, argv + optind);
		blobcr_guest_close(g);
		/* -ENOENT here is a missing version, not a missing proxy. */
		return err == -EINVAL ? EXIT_USAGE : err == -EEXIST ? EXIT_CONFLICT :
		       err == -ENOENT ? EXIT_FAIL : exit_code(err);
	} else if (status || cost) {
		struct blobcr_guest_status s;

		err = blobcr_guest_status(g, &s);
		if (!err && cost)
			printf("%" PRIu64 "\n", s.dirty_bytes);
		else if (!err)
			print_status(&s);
	} else {
		struct blobcr_guest_checkpoint r;
		uint64_t id = 0;

		if (wait_id) {
			id = strtoull(wait_id, &end, 10);
			if (*end || !id) {
				fprintf(stderr, "blobcr-checkpoint: bad checkpoint ID %s\n", wait_id);
				blobcr_guest_close(g);
				return EXIT_USAGE;
			}
			err = blobcr_guest_wait(g, id, &r);
		} else {
			err = blobcr_guest_checkpoint(g, label, flags, &r);
		}
		if (!err)
			print_result(&r, keys);
	}
	if (err)
		fprintf(stderr, "blobcr-checkpoint: %s\n", blobcr_guest_error(g));
	blobcr_guest_close(g);
	return exit_code(err);
}
