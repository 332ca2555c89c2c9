// SPDX-License-Identifier: GPL-2.0
/*
 * job.c - blobcrctl's job verbs.
 *
 * A job's global checkpoints are the checkpoint groups JOB.1, JOB.2, ...
 * (one version per VM of the job each).  metad publishes a group in one
 * transaction, and only if every member version exists, so a group is
 * whole or absent; a group can still lose a member later (an image or
 * version deleted), so "the latest complete group" of JOB is the one with
 * the greatest N whose members all still exist.  A restart is planned on
 * one host (which VM goes where, as which fresh clone) and applied on each
 * host (deploy that host's VMs), which is what a cloud middleware drives.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "deploy.h"
#include "job.h"
#include "linux/dm-blobcr.h"

#define PLAN_KEY_MAX 16
#define PLAN_VAL_MAX (BLOBCR_NAME_MAX + 16)

static int repo_status(int err)
{
	return err == -ENOENT ? EXIT_NOTFOUND :
	       err == -ETIMEDOUT || err == -ECONNREFUSED ? EXIT_UNAVAIL :
	       EXIT_FAIL;
}

/*
 * Whether every member of @g still exists.  Return: 1 complete, 0 not
 * (*@gone names a missing member), or -errno.
 */
static int group_complete(struct blobcr_client *c,
			  const struct blobcr_group_info *g,
			  const struct blobcr_group_member **gone)
{
	for (uint32_t i = 0; i < g->nmembers; i++) {
		struct blobcr_version_info *v;
		size_t n;
		bool found = false;
		int err = blobcr_version_list(c, g->members[i].image, &v, &n);

		if (err == -ENOENT) {
			*gone = &g->members[i];
			return 0;
		}
		if (err)
			return err;
		for (size_t k = 0; k < n; k++)
			found |= v[k].version == g->members[i].version;
		free(v);
		if (!found) {
			*gone = &g->members[i];
			return 0;
		}
	}
	return 1;
}

/*
 * The group named @ref if there is one (it must be complete), else the
 * latest complete group of the job @ref.  Return: an exit status; 0 and
 * *@out on success.
 */
static int resolve_group(struct blobcr_client *c, const char *ref,
			 const struct blobcr_group_info *g, size_t n,
			 const struct blobcr_group_info **out)
{
	const struct blobcr_group_member *gone;
	uint64_t best = 0, seq;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(g[i].name, ref))
			continue;
		r = group_complete(c, &g[i], &gone);
		if (r < 0)
			return say(repo_status(r), "group %s: %s", ref,
				   blobcr_strerror(r));
		if (!r)
			return say(EXIT_NOTFOUND, "group %s is incomplete: %s@%" PRIu32
				   " no longer exists", ref, gone->image, gone->version);
		*out = &g[i];
		return 0;
	}
	/* Newest first: every round takes the greatest N below the last. */
	for (;;) {
		const struct blobcr_group_info *cand = NULL;
		uint64_t cseq = 0;

		for (size_t i = 0; i < n; i++)
			if (blobcr_group_seq(g[i].name, ref, &seq) &&
			    (!best || seq < best) && (!cand || seq > cseq)) {
				cand = &g[i];
				cseq = seq;
			}
		if (!cand)
			return say(EXIT_NOTFOUND, "no complete checkpoint group "
				   "of job %s (groups %s.1, %s.2, ...)", ref, ref, ref);
		r = group_complete(c, cand, &gone);
		if (r < 0)
			return say(repo_status(r), "group %s: %s", cand->name,
				   blobcr_strerror(r));
		if (r) {
			*out = cand;
			return 0;
		}
		say(0, "skipping %s: %s@%" PRIu32 " no longer exists",
		    cand->name, gone->image, gone->version);
		best = cseq;
	}
}

int job_cmd_latest(struct blobcr_client *c, int argc, char **argv)
{
	const struct blobcr_group_info *g;
	struct blobcr_group_info *all;
	size_t n;
	int r = blobcr_group_list(c, &all, &n);

	(void)argc;
	if (r)
		return say(repo_status(r), "group list: %s", blobcr_strerror(r));
	r = resolve_group(c, argv[1], all, n, &g);
	if (!r) {
		printf("%s", g->name);
		for (uint32_t i = 0; i < g->nmembers; i++)
			printf(" %s@%" PRIu32, g->members[i].image,
			       g->members[i].version);
		putchar('\n');
	}
	blobcr_group_list_free(all, n);
	return r;
}

/* Split "a,b,c" in place into at most @max non-empty names. */
static int split_hosts(char *list, char **hosts, int max)
{
	int n = 0;

	for (char *save, *h = strtok_r(list, ",", &save); h;
	     h = strtok_r(NULL, ",", &save)) {
		if (n == max)
			return -1;
		hosts[n++] = h;
	}
	return n;
}

int job_cmd_plan(struct blobcr_client *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hosts", required_argument, NULL, 'H' },
		{ "as", required_argument, NULL, 'a' },
		{ 0 }
	};
	const struct blobcr_group_info *g;
	struct blobcr_group_info *all;
	char *hostlist = NULL, *hosts[256];
	const char *run = NULL;
	size_t n;
	int nhosts, r, o;

	while ((o = getopt_long(argc, argv, "H:a:", opts, NULL)) != -1) {
		switch (o) {
		case 'H': hostlist = optarg; break;
		case 'a': run = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !hostlist || !run)
		return say(EXIT_USAGE, "job plan needs GROUP|JOB --hosts H1,H2,... --as RUN");
	nhosts = split_hosts(hostlist, hosts, 256);
	if (nhosts <= 0)
		return say(EXIT_USAGE, "--hosts wants 1 to 256 names, comma-separated");
	if (strlen(run) + 7 > BLOBCR_CHANNEL_MAX || strchr(run, '/'))
		return say(EXIT_USAGE, "--as '%s': at most %d characters, no '/'",
			   run, BLOBCR_CHANNEL_MAX - 7);
	r = blobcr_group_list(c, &all, &n);
	if (r)
		return say(repo_status(r), "group list: %s", blobcr_strerror(r));
	r = resolve_group(c, argv[optind], all, n, &g);
	/* Fresh clones only: an existing one would carry another run's commits. */
	for (uint32_t i = 0; !r && i < g->nmembers; i++) {
		struct blobcr_image_info ii;
		char name[BLOBCR_NAME_MAX];
		int err;

		snprintf(name, sizeof(name), "%s-%" PRIu32, run, i);
		err = blobcr_image_info(c, name, &ii);
		if (!err)
			r = say(EXIT_CONFLICT, "image %s exists: give another --as", name);
		else if (err != -ENOENT)
			r = say(repo_status(err), "image %s: %s", name,
				blobcr_strerror(err));
	}
	for (uint32_t i = 0; !r && i < g->nmembers; i++)
		printf("%sgroup=%s\nrank=%" PRIu32 "\nhost=%s\nfrom=%s@%" PRIu32
		       "\nimage=%s-%" PRIu32 "\ndevice=%s-%" PRIu32 "\n",
		       i ? "\n" : "", g->name, i, hosts[i % (uint32_t)nhosts],
		       g->members[i].image, g->members[i].version, run, i, run, i);
	blobcr_group_list_free(all, n);
	return r;
}

/* One VM of a plan. */
struct plan_rank {
	char group[PLAN_VAL_MAX];
	char rank[PLAN_VAL_MAX], host[PLAN_VAL_MAX], from[PLAN_VAL_MAX];
	char image[PLAN_VAL_MAX], device[PLAN_VAL_MAX];
};

/* Store "key=value" of @line into @p; unknown keys are ignored. */
static int plan_field(struct plan_rank *p, const char *line)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "group", offsetof(struct plan_rank, group) },
		{ "rank", offsetof(struct plan_rank, rank) },
		{ "host", offsetof(struct plan_rank, host) },
		{ "from", offsetof(struct plan_rank, from) },
		{ "image", offsetof(struct plan_rank, image) },
		{ "device", offsetof(struct plan_rank, device) },
	};
	const char *eq = strchr(line, '=');

	if (!eq || eq == line || strlen(eq + 1) >= PLAN_VAL_MAX)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].key) == (size_t)(eq - line) &&
		    !strncmp(line, keys[i].key, (size_t)(eq - line)))
			strcpy((char *)p + keys[i].off, eq + 1);
	return 0;
}

static bool plan_rank_whole(const struct plan_rank *p)
{
	return p->rank[0] && p->host[0] && p->from[0] && p->image[0] &&
	       p->device[0];
}

/* Read a plan: a malloc'ed array of *@n ranks in *@out.  An exit status. */
static int read_plan(const char *path, struct plan_rank **out, size_t *n)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	struct plan_rank *v = NULL, cur = { 0 };
	char line[PLAN_KEY_MAX + PLAN_VAL_MAX + 2];
	size_t cnt = 0, lineno = 0;
	int r = 0;

	if (!f)
		return say(EXIT_NOTFOUND, "plan %s: %s", path, strerror(errno));
	while (!r) {
		bool eof = !fgets(line, sizeof(line), f);

		if (!eof) {
			lineno++;
			line[strcspn(line, "\n")] = '\0';
			if (line[0]) {
				if (plan_field(&cur, line))
					r = say(EXIT_USAGE, "plan %s, line %zu: not "
						"key=value: %s", path, lineno, line);
				continue;
			}
		}
		/* An empty line or the end closes a rank's block. */
		if (memcmp(&cur, &(struct plan_rank){ 0 }, sizeof(cur))) {
			struct plan_rank *nv = realloc(v, (cnt + 1) * sizeof(*v));

			if (!plan_rank_whole(&cur))
				r = say(EXIT_USAGE, "plan %s, line %zu: the rank ending "
					"here needs rank, host, from, image and device",
					path, lineno);
			else if (!nv)
				r = say(EXIT_FAIL, "out of memory");
			else
				v = nv, v[cnt++] = cur;
			memset(&cur, 0, sizeof(cur));
		}
		if (eof)
			break;
	}
	if (f != stdin)
		fclose(f);
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * The deploy command line of rank @p: with @vm, the device is also VM
 * DEVICE of the proxy, in the job of the plan's group, taking @vmargs
 * (--quiesce, --mount).  Return: argc.
 */
static int apply_argv(const struct plan_rank *p, const char *cache, bool vm,
		      char *job, size_t joblen, char **vmargs, int nvmargs,
		      char **argv)
{
	char *dot;
	int n = 0;

	argv[n++] = "deploy";
	argv[n++] = "--cache";
	argv[n++] = (char *)cache;
	argv[n++] = "--as";
	argv[n++] = (char *)p->device;
	argv[n++] = "--commit-to";
	argv[n++] = (char *)p->image;
	if (vm) {
		snprintf(job, joblen, "%s", p->group);
		dot = strrchr(job, '.');
		if (dot)
			*dot = '\0';
		argv[n++] = "--vm";
		argv[n++] = (char *)p->device;
		if (job[0]) {
			argv[n++] = "--job";
			argv[n++] = job;
		}
		for (int i = 0; i < nvmargs; i++)
			argv[n++] = vmargs[i];
	}
	argv[n++] = (char *)p->from;
	argv[n] = NULL;
	return n;
}

int job_cmd_apply(struct blobcr_client *c, const char *meta,
		  int helper_wait_ms, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "vm", no_argument, NULL, 'V' },
		{ "quiesce", required_argument, NULL, 'q' },
		{ "mount", required_argument, NULL, 'm' },
		{ 0 }
	};
	const char *host = NULL, *cachedir = NULL, *plan;
	char *vmargs[4];
	struct plan_rank *p = NULL;
	size_t n = 0, done = 0, mine = 0;
	int r, o, nvmargs = 0;
	bool vm = false, mount = false;

	while ((o = getopt_long(argc, argv, "H:C:", opts, NULL)) != -1) {
		switch (o) {
		case 'H': host = optarg; break;
		case 'C': cachedir = optarg; break;
		case 'V': vm = true; break;
		case 'q':
		case 'm':
			if ((o == 'm' && mount) || nvmargs == 4)
				return say(EXIT_USAGE, "one --quiesce and one --mount at most");
			mount |= o == 'm';
			vmargs[nvmargs++] = o == 'q' ? "--quiesce" : "--mount";
			vmargs[nvmargs++] = optarg;
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !host || !cachedir)
		return say(EXIT_USAGE, "job apply needs PLAN --host HOST --cache-dir DIR");
	if (nvmargs && !vm)
		return say(EXIT_USAGE, "--quiesce and --mount go with --vm");
	plan = argv[optind];
	r = read_plan(plan, &p, &n);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++)
		mine += !strcmp(p[i].host, host);
	/* A mount point is one VM's: a host job with fsfreeze is one rank. */
	if (mount && mine > 1)
		r = say(EXIT_USAGE, "--mount: plan %s puts %zu ranks on %s, each "
			"needs a mount point of its own", plan, mine, host);
	for (size_t i = 0; i < n && !r; i++) {
		char cache[PATH_MAX], job[PLAN_VAL_MAX], *dargv[20];
		int dargc;

		if (strcmp(p[i].host, host))
			continue;
		snprintf(cache, sizeof(cache), "%s/%s.cache", cachedir, p[i].device);
		dargc = apply_argv(&p[i], cache, vm, job, sizeof(job), vmargs,
				   nvmargs, dargv);
		optind = 0;
		r = deploy_cmd_deploy(c, meta, helper_wait_ms, dargc, dargv);
		if (!r) {
			say(0, "rank %s: %s on /dev/mapper/%s, commits to %s",
			    p[i].rank, p[i].from, p[i].device, p[i].image);
			done = i + 1;
		}
	}
	/* All of this host's VMs or none: take down what came up. */
	for (size_t i = 0; r && i < done; i++) {
		char *uargv[] = { "undeploy", p[i].device, NULL };

		if (strcmp(p[i].host, host))
			continue;
		optind = 0;
		deploy_cmd_undeploy(helper_wait_ms, 2, uargv);
	}
	if (!r && !mine)
		r = say(EXIT_NOTFOUND, "plan %s has no rank for host %s",
			plan, host);
	free(p);
	return r;
}
