// SPDX-License-Identifier: GPL-2.0
/*
 * group.c - PROXY_OP_GROUP: rank 0 of an MPI job asks its own proxy to
 * name the job's next global checkpoint, or to publish one as a checkpoint
 * group.  The job is the one the VM file says the VM belongs to (its
 * "job" line), never one the request names: a VM can publish only groups
 * JOB.N of its own job, so it cannot make another job's latest group.  The
 * group is published at the repository of the VM's first disk, with its
 * helper's key, where metad checks in the same transaction that every
 * member version exists: a group is whole or absent.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "proxyd.h"

#define GROUP_MAX_MEMBERS 4096 /* what one request's payload can carry */

/*
 * A client of the repository @vm's first disk publishes to, with the key
 * its helper publishes with (the host's: a host key may publish groups).
 */
static int connect_repo(struct vm *vm, struct blobcr_client **c, char *msg,
			size_t len)
{
	struct blobcr_client_opts o = { 0 };
	char meta[256], key[PATH_MAX];
	int err = host_helper_arg(vm->cfg.disks[0], "--meta", meta, sizeof(meta));

	if (err) {
		snprintf(msg, len, "disk %s: no deployment found (%s)",
			 vm->cfg.disks[0], strerror(-err));
		return err;
	}
	if (!host_helper_arg(vm->cfg.disks[0], "--key", key, sizeof(key)))
		o.key_file = key;
	err = blobcr_connect(meta, &o, c);
	if (err)
		snprintf(msg, len, "cannot reach the repository at %s: %s", meta,
			 blobcr_strerror(err));
	return err;
}

/* The name of the job's next global checkpoint: JOB.N above every N. */
static int next_name(struct vm *vm, struct blobcr_client *c, char *name,
		     size_t namelen, char *msg, size_t len)
{
	struct blobcr_group_info *g;
	uint64_t top = 0, seq;
	size_t n;
	int err = blobcr_group_list(c, &g, &n);

	if (err) {
		snprintf(msg, len, "listing the groups: %s", blobcr_strerror(err));
		return err;
	}
	for (size_t i = 0; i < n; i++)
		if (blobcr_group_seq(g[i].name, vm->cfg.job, &seq) && seq > top)
			top = seq;
	blobcr_group_list_free(g, n);
	snprintf(name, namelen, "%s.%" PRIu64, vm->cfg.job, top + 1);
	return 0;
}

/*
 * Whether group @name exists with exactly these members: a GROUP request
 * sent again (after the proxy reconnected, or by a requester that lost
 * the answer) finds the group its first copy published.
 */
static bool published_as(struct blobcr_client *c, const char *name, uint32_t n,
			 const char **images, const uint32_t *versions)
{
	struct blobcr_group_info *g;
	bool same = false;
	size_t ng;

	if (blobcr_group_list(c, &g, &ng))
		return false;
	for (size_t i = 0; i < ng; i++) {
		if (strcmp(g[i].name, name))
			continue;
		same = g[i].nmembers == n;
		for (uint32_t k = 0; same && k < n; k++)
			same = !strcmp(g[i].members[k].image, images[k]) &&
			       g[i].members[k].version == versions[k];
		break;
	}
	blobcr_group_list_free(g, ng);
	return same;
}

/* Decode the members; @images point into @names. */
static int read_members(struct proxy_dec *d, uint32_t n, char (*names)[BLOBCR_NAME_MAX],
			const char **images, uint32_t *versions)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v;

		proxy_get_str(d, names[i], BLOBCR_NAME_MAX);
		v = proxy_get_u64(d);
		if (d->err || !v || v > UINT32_MAX ||
		    !blobcr_valid_name(names[i], BLOBCR_NAME_MAX))
			return -EBADMSG;
		images[i] = names[i];
		versions[i] = (uint32_t)v;
	}
	return d->left ? -EBADMSG : 0;
}

int group_serve(struct vm *vm, struct proxy_dec *d, struct proxy_enc *e,
		char *msg, size_t len)
{
	char name[BLOBCR_NAME_MAX], (*names)[BLOBCR_NAME_MAX] = NULL;
	struct blobcr_client *c = NULL;
	const char **images = NULL;
	uint32_t n, *versions = NULL;
	uint64_t seq;
	int err;

	proxy_get_str(d, name, sizeof(name));
	n = proxy_get_u32(d);
	if (d->err || n > GROUP_MAX_MEMBERS) {
		snprintf(msg, len, "malformed group request");
		return -EBADMSG;
	}
	if (!vm->cfg.job[0]) {
		snprintf(msg, len, "%s belongs to no job: deploy it with --job JOB",
			 vm->name);
		return -EPERM;
	}
	/* No members: the name the next group would take, nothing published. */
	if (n && !blobcr_group_seq(name, vm->cfg.job, &seq)) {
		snprintf(msg, len, "%s belongs to job %s: it may publish groups "
			 "%s.N only, not '%s'", vm->name, vm->cfg.job,
			 vm->cfg.job, name);
		log_warn("%s: refused group %s (not of job %s)", vm->name, name,
			 vm->cfg.job);
		return -EPERM;
	}
	names = calloc(n ? n : 1, sizeof(*names));
	images = calloc(n ? n : 1, sizeof(*images));
	versions = calloc(n ? n : 1, sizeof(*versions));
	if (!names || !images || !versions) {
		snprintf(msg, len, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	err = read_members(d, n, names, images, versions);
	if (err) {
		snprintf(msg, len, "malformed group request");
		goto out;
	}
	err = connect_repo(vm, &c, msg, len);
	if (err)
		goto out;
	if (!n) {
		err = next_name(vm, c, name, sizeof(name), msg, len);
		if (!err)
			proxy_put_str(e, name);
		goto out;
	}
	err = blobcr_group_publish(c, name, n, images, versions);
	if (err == -EEXIST && published_as(c, name, n, images, versions)) {
		log_info("%s: group %s was published already, as asked", vm->name,
			 name);
		proxy_put_str(e, name);
		err = 0;
		goto out;
	}
	if (err == -EEXIST)
		snprintf(msg, len, "group %s exists already", name);
	else if (err == -ENOENT)
		snprintf(msg, len, "group %s names a version that does not exist: "
			 "nothing published", name);
	else if (err)
		snprintf(msg, len, "publishing group %s: %s", name,
			 blobcr_strerror(err));
	if (!err) {
		log_info("%s: published group %s (%" PRIu32 " versions)", vm->name,
			 name, n);
		proxy_put_str(e, name);
	}
out:
	blobcr_close(c);
	free(names);
	free(images);
	free(versions);
	return err;
}
