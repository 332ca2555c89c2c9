// SPDX-License-Identifier: GPL-2.0
/*
 * serve.c - blobcrd's answers to the target's requests.
 *
 * FETCH: look the extents up at the version manager, get the data chunks
 * from their replicas in parallel (holes need no traffic), write them into
 * the cache device with libaio, reply.
 *
 * COMMIT: read the commit set's extents from the cache device, hand each to
 * the repository's commit (hash, dedup, upload to R replicas; a batch
 * uploads while the next is read and hashed) and tell the kernel at once
 * that it may let writes to them go on (UPLOADED: the bytes are in our
 * memory now), publish the version in one transaction, reply
 * with its number.  If we die before publishing, the target fails the
 * commit and merges the set back into its dirty set: a half-written version
 * is never visible.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_util.h"
#include "blobcrd.h"

static void reply(struct worker *w, const struct blobcr_request *rq,
		  uint16_t op, int status, uint64_t extent, uint64_t n,
		  uint64_t version)
{
	struct blobcr_reply rp = {
		.id = rq->id,
		.op = op,
		.status = status,
		.extent = extent,
		.nr_extents = n,
		.version = version,
	};
	int err = channel_reply(w->d->chfd, &rp);

	if (err)
		logmsg(w->d, "reply to request %llu failed: %s",
		       (unsigned long long)rq->id, strerror(-err));
}

/* Get the data extents of w->exts and w->locs into w->bufs. */
static int get_data(struct worker *w, uint64_t *data_exts, size_t *ng,
		    size_t n)
{
	struct deployment *d = w->d;
	int err = 0;

	*ng = 0;
	for (size_t i = 0; !err && i < n; i++) {
		if (w->locs[i].kind != BLOBCR_EXT_DATA) {
			err = cacheio_zero(&w->io, w->exts[i]);
			if (!err)
				atomic_fetch_add(&d->zero_extents, 1);
			continue;
		}
		w->gets[*ng] = (struct blobcr_get){
			.loc = &w->locs[i],
			.buf = w->bufs[*ng],
			.len = d->extent_size,
		};
		data_exts[(*ng)++] = w->exts[i];
	}
	return err || !*ng ? err : blobcr_get_chunks(w->cl, w->gets, *ng);
}

/* Fill the @n extents from @first in the cache device. */
static int fetch_batch(struct worker *w, uint64_t first, size_t n)
{
	struct deployment *d = w->d;
	uint64_t data_exts[BLOBCRD_BATCH];
	size_t ng;
	int err;

	for (size_t i = 0; i < n; i++)
		w->exts[i] = first + i;
	err = extmap_get(d, w->cl, w->exts, n, w->locs);
	if (!err)
		err = get_data(w, data_exts, &ng, n);
	if (err && err != -ERANGE) {
		/* Every replica failed: maybe they moved since our lookup. */
		extmap_forget(d, w->exts, n);
		err = extmap_get(d, w->cl, w->exts, n, w->locs);
		if (!err)
			err = get_data(w, data_exts, &ng, n);
	}
	if (err || !ng)
		return err;
	err = cacheio_rw(&w->io, true, data_exts, w->bufs, ng);
	if (!err)
		atomic_fetch_add(&d->fetched_extents, ng);
	return err;
}

/* The repository did not answer, as opposed to answering that it cannot. */
static bool unreachable(int err)
{
	switch (-err) {
	case ETIMEDOUT:
	case EHOSTDOWN:		/* no live replica in reach */
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ECONNREFUSED:
	case ECONNRESET:
	case ENOTCONN:
	case EAGAIN:		/* metad rebuilding */
		return true;
	}
	return false;
}

/*
 * fetch_batch(), tried again while the repository is out of reach, for up
 * to --fetch-retry-s: the read waits (as multipath queues I/O with no path
 * up) instead of failing at the first network blip.  Waits double from
 * half a second to 5 s; a stop ends them.
 */
static int fetch_retrying(struct worker *w, uint64_t first, size_t n)
{
	struct deployment *d = w->d;
	int err = fetch_batch(w, first, n), tries = 1;
	uint64_t start = blobcr_now_ms(), wait = 500;

	if (!unreachable(err) || !d->fetch_retry_ms)
		return err;
	logmsg(d, "fetch of extents %llu+%zu: %s; trying again for up to %u s",
	       (unsigned long long)first, n, blobcr_strerror(err),
	       d->fetch_retry_ms / 1000);
	while (unreachable(err) &&
	       blobcr_now_ms() + wait <= start + d->fetch_retry_ms) {
		struct pollfd stop = { .fd = d->stop_fd, .events = POLLIN };

		if (poll(&stop, 1, (int)wait) > 0 || atomic_load(&d->stopping))
			return err;
		wait = wait * 2 > 5000 ? 5000 : wait * 2;
		err = fetch_batch(w, first, n);
		tries++;
	}
	if (!err)
		logmsg(d, "fetch of extents %llu+%zu done at try %d, %llu ms later",
		       (unsigned long long)first, n, tries,
		       (unsigned long long)(blobcr_now_ms() - start));
	return err;
}

void serve_fetch(struct worker *w, const struct blobcr_request *rq)
{
	struct deployment *d = w->d;
	uint64_t first = rq->extent, n = rq->nr_extents;
	int err = 0;

	/* The kernel checks its numbers; so do we, before touching the disk. */
	if (!n || first >= d->info.nr_extents || n > d->info.nr_extents - first)
		err = -ERANGE;
	/* Read ahead while this miss is served, not after. */
	if (!err && !(rq->flags & BLOBCR_REQ_F_PREFETCH))
		readahead_on_miss(d, first, n);
	for (uint64_t done = 0; !err && done < n; done += BLOBCRD_BATCH) {
		size_t batch = n - done < BLOBCRD_BATCH ? n - done : BLOBCRD_BATCH;

		err = fetch_retrying(w, first + done, batch);
	}
	if (err) {
		atomic_fetch_add(&d->fetch_failures, 1);
		logmsg(d, "fetch of extents %llu+%llu failed: %s",
		       (unsigned long long)first, (unsigned long long)n,
		       blobcr_strerror(err));
	} else if (d->verbose) {
		logmsg(d, "fetched extents %llu+%llu%s",
		       (unsigned long long)first, (unsigned long long)n,
		       rq->flags & BLOBCR_REQ_F_PREFETCH ? " (prefetch)" : "");
	}
	reply(w, rq, BLOBCR_OP_FETCH, err, rq->extent, rq->nr_extents, 0);
	if (!err && !(rq->flags & BLOBCR_REQ_F_PREFETCH)) {
		atomic_fetch_add(&d->misses, 1);
		prefetch_on_miss(d, first, n);
	}
}

#define PROOF_HEX 16

/*
 * Our mark on a version built on @base: 16 hex digits of a MAC, under this
 * host's key, of the image, @base and our tag.  A label can be copied by
 * anyone who lists versions, but not onto another base, and nobody
 * without our key can make one for a base of their choosing.
 */
static int label_proof(const struct deployment *d, uint32_t base,
		       char out[PROOF_HEX + 1])
{
	char msg[2 * BLOBCR_NAME_MAX + 16];
	uint8_t mac[32];
	int n = snprintf(msg, sizeof(msg), "%s@%u %s", d->commit_image, base,
			 d->tag);

	if (!d->key || n < 0 || (size_t)n >= sizeof(msg) ||
	    blobcr_key_mac(d->key, "blobcrd version label", msg, (size_t)n, mac))
		return -EIO;
	for (int i = 0; i < PROOF_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

/*
 * The label of the version we publish on @base: our tag and our mark,
 * after the operator's label when `blobcrctl commit --label` left one:
 * "LABEL [TAG/MARK]".  Labels are printable ASCII: other bytes become '?'.
 */
static void version_label(const struct deployment *d, uint32_t base,
			  char *out, size_t len)
{
	char user[BLOBCR_NAME_MAX] = "", mark[BLOBCR_NAME_MAX], proof[PROOF_HEX + 1];
	FILE *f = d->label_file ? fopen(d->label_file, "r") : NULL;

	if (f) {
		if (!fgets(user, sizeof(user), f))
			user[0] = '\0';
		user[strcspn(user, "\n")] = '\0';
		fclose(f);
	}
	for (char *p = user; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	if (!d->tag) {
		snprintf(out, len, "%s", user);
		return;
	}
	if (label_proof(d, base, proof))
		proof[0] = 0; /* then nobody adopts it, not even us */
	snprintf(mark, sizeof(mark), "[%s/%s]", d->tag, proof);
	if (user[0] && strlen(mark) + 2 < len)
		snprintf(out, len, "%.*s %s", (int)(len - strlen(mark) - 2), user,
			 mark);
	else
		snprintf(out, len, "%s", mark);
}

/* @label is ours on @base: it ends with "[TAG/MARK]" and the mark is right. */
static bool label_is_ours(const struct deployment *d, const char *label,
			  uint32_t base)
{
	size_t n = strlen(label), t = strlen(d->tag);
	char proof[PROOF_HEX + 1];
	const char *m = label + n - PROOF_HEX - 1;

	if (n < t + PROOF_HEX + 3 || label[n - 1] != ']' ||
	    label[n - t - PROOF_HEX - 3] != '[' || m[-1] != '/' ||
	    strncmp(label + n - t - PROOF_HEX - 2, d->tag, t) ||
	    label_proof(d, base, proof))
		return false;
	return !strncmp(m, proof, PROOF_HEX);
}

/*
 * Versions (@base, @latest] all published by this deployment (their label
 * carries our tag and our mark): a helper before us published and died
 * before the kernel heard of it.  Those versions are whole; the next
 * commit builds on them.
 */
static bool ours_since(struct worker *w, uint32_t base, uint32_t latest)
{
	struct blobcr_version_info *v;
	size_t n, mine = 0;

	if (!w->d->tag || blobcr_version_list(w->cl, w->d->commit_image, &v, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i].version <= base || v[i].version > latest)
			continue;
		if (label_is_ours(w->d, v[i].label, v[i].base)) {
			mine++;
		} else if (strstr(v[i].label, w->d->tag)) {
			char shown[4 * BLOBCR_NAME_MAX];

			logmsg(w->d, "%s@%u names this deployment but lacks its mark: "
			       "not adopted (label '%s')", w->d->commit_image,
			       v[i].version, blobcr_printable(v[i].label, shown,
							      sizeof(shown)));
		}
	}
	free(v);
	return mine == latest - base;
}

/*
 * The version a commit builds on: the last one this target committed, or
 * the one the deployment started from.  Publishing on top of anyone else's
 * would mix their changes into ours.
 */
static int check_base(struct worker *w, uint32_t *base)
{
	struct deployment *d = w->d;
	struct blobcr_image_info ii;
	struct blobcr_info info;
	int err;

	err = channel_info(d->chfd, &info);
	if (err)
		return err;
	*base = info.last_version ? (uint32_t)info.last_version : d->commit_base;
	err = blobcr_image_info(w->cl, d->commit_image, &ii);
	if (err)
		return err;
	if (ii.latest == *base)
		return 0;
	if (ii.latest > *base && ours_since(w, *base, ii.latest)) {
		logmsg(d, "adopting %s@%u, published by an earlier helper of this deployment",
		       d->commit_image, ii.latest);
		*base = ii.latest;
		return 0;
	}
	logmsg(d, "commit refused: %s is at version %u, this deployment is based on %u (deploy with --commit-to to commit into a clone)",
	       d->commit_image, ii.latest, *base);
	return -ESTALE;
}

/* Where one commit's time went, in milliseconds, for the log. */
struct commit_times {
	uint64_t start, first_uploaded, read, hash_upload, publish;
	bool any_uploaded;
};

/* Read the @n extents in w->exts and hand them to the commit. */
static int commit_batch(struct worker *w, const struct blobcr_request *rq,
			struct blobcr_changeset *cm, size_t n,
			struct commit_times *ct)
{
	uint64_t t0 = blobcr_now_ms(), t1;
	int err = cacheio_rw(&w->io, false, w->exts, w->bufs, n);

	t1 = blobcr_now_ms();
	ct->read += t1 - t0;
	if (err)
		return err;
	/*
	 * The bytes are ours now: writes to these extents may go on, before
	 * the hashing and the upload (a failed commit re-dirties them all).
	 */
	for (size_t i = 0; i < n;) {
		size_t run = 1;

		while (i + run < n && w->exts[i + run] == w->exts[i] + run)
			run++;
		reply(w, rq, BLOBCR_OP_UPLOADED, 0, w->exts[i], run, 0);
		i += run;
	}
	if (!ct->any_uploaded) {
		ct->any_uploaded = true;
		ct->first_uploaded = t1 - ct->start;
	}
	for (size_t i = 0; !err && i < n; i++) {
		uint32_t len = cacheio_extent_len(&w->io, w->exts[i]);

		/* A short last extent is stored padded with zeros. */
		memset((char *)w->bufs[i] + len, 0, w->d->extent_size - len);
		err = blobcr_commit_extent(cm, w->exts[i], w->bufs[i]);
	}
	ct->hash_upload += blobcr_now_ms() - t1;
	return err;
}

static int commit_set(struct worker *w, const struct blobcr_request *rq,
		      const uint64_t *set, uint32_t *version,
		      struct commit_times *ct)
{
	struct deployment *d = w->d;
	struct blobcr_changeset *cm;
	char label[BLOBCR_NAME_MAX];
	uint64_t taken = 0;
	uint32_t base;
	size_t n = 0;
	int err;

	err = check_base(w, &base);
	if (err)
		return err;
	err = blobcr_commit_begin(w->cl, d->commit_image, &cm);
	if (err)
		return err;
	/* Until the publish, nothing here uses w->cl: the upload may. */
	blobcr_commit_overlap(cm);
	for (uint64_t e = 0; !err && e < d->info.nr_extents; e++) {
		if (!bitmap_test(set, e))
			continue;
		w->exts[n++] = e;
		taken++;
		if (n == BLOBCRD_BATCH) {
			err = commit_batch(w, rq, cm, n, ct);
			n = 0;
		}
	}
	if (!err && n)
		err = commit_batch(w, rq, cm, n, ct);
	if (!err && taken != rq->nr_extents)
		err = -EPROTO;	/* the set changed under us: never publish */
	if (!err) {
		uint64_t t0 = blobcr_now_ms();

		version_label(d, base, label, sizeof(label));
		/* The last batch's upload, then the publish itself. */
		err = blobcr_commit_publish(cm, label[0] ? label : NULL, version);
		ct->publish = blobcr_now_ms() - t0;
	}
	blobcr_commit_free(cm);
	return err;
}

void serve_commit(struct worker *w, const struct blobcr_request *rq)
{
	struct deployment *d = w->d;
	size_t words = (d->info.nr_extents + 63) / 64;
	uint64_t *set = calloc(words ? words : 1, sizeof(*set));
	struct commit_times ct = { .start = blobcr_now_ms() };
	uint32_t version = 0;
	int err;

	if (!set)
		err = -ENOMEM;
	else
		err = channel_get_bitmap(d->chfd, BLOBCR_BITMAP_COMMIT,
					 d->info.nr_extents, set);
	if (!err)
		err = commit_set(w, rq, set, &version, &ct);
	free(set);
	if (err) {
		logmsg(d, "commit of %llu extents failed: %s",
		       (unsigned long long)rq->nr_extents, blobcr_strerror(err));
		atomic_fetch_add(&d->commit_failures, 1);
	} else {
		uint64_t ms = blobcr_now_ms() - ct.start;

		atomic_fetch_add(&d->commits, 1);
		atomic_fetch_add(&d->commit_ms, ms);
		atomic_fetch_add(&d->commit_extents, rq->nr_extents);
		atomic_store(&d->last_commit_ms, ms);
		logmsg(d, "committed %llu extents as %s@%u in %llu ms: writes held until %llu ms, read %llu ms, hash and upload %llu ms, upload rest and publish %llu ms",
		       (unsigned long long)rq->nr_extents, d->commit_image,
		       version,
		       (unsigned long long)ms,
		       (unsigned long long)ct.first_uploaded,
		       (unsigned long long)ct.read,
		       (unsigned long long)ct.hash_upload,
		       (unsigned long long)ct.publish);
	}
	reply(w, rq, BLOBCR_OP_COMMIT, err, 0, 0, version);
	metrics_write(d);
	/* After the reply: storing the recorded order is not the commit's. */
	if (!err)
		prefetch_save(d, w->cl);
}
