// SPDX-License-Identifier: GPL-2.0
/*
 * replicas.c - how well a chunk is kept: its holders, their failure
 * domains and the domains of the hosts that published it (metad.h).
 *
 * A copy counts towards R when its node is live and active, and copies in
 * one failure domain count once.  A checkpoint must survive its own host:
 * for a writer in domain W, the copies that count are those outside W.
 * A chunk several hosts published must survive each of them, so it is
 * short when |D| - [D meets the writers' domains] < R, D being the
 * domains of the counting copies.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

static bool has_u32(const uint32_t *v, int n, uint32_t x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

int holders_load(struct metad *m, MDB_cursor *ccur, MDB_cursor *wcur,
		 const uint8_t *id, uint32_t except, struct holders *h)
{
	uint32_t all[MAX_HOLDERS];
	int n = db_chunk_nodes(ccur, id, all, MAX_HOLDERS);

	memset(h, 0, offsetof(struct holders, nodes));
	if (n < 0)
		return n;
	/* Copies known lost (LOC_LOST) are no holders. */
	for (int i = 0; i < n; i++)
		if (!(all[i] & LOC_LOST))
			h->nodes[h->n++] = all[i];
	for (int i = 0; i < h->n; i++) {
		struct node *nd = node_find(m, h->nodes[i]);
		uint32_t dom;

		if (!nd || h->nodes[i] == except)
			continue;
		h->nlive += node_live(m, h->nodes[i]);
		if (!node_counts(m, h->nodes[i]))
			continue;
		h->ncounting++;
		dom = __atomic_load_n(&nd->domain_hash, __ATOMIC_RELAXED);
		if (!has_u32(h->domains, h->ndomains, dom))
			h->domains[h->ndomains++] = dom;
	}
	if (wcur) {
		n = db_chunk_writers(wcur, id, h->writers, MAX_WRITERS);
		if (n < 0)
			return n;
		h->nwriters = n;
	}
	return 0;
}

int holder_walk_open(MDB_txn *txn, struct metad *m, MDB_dbi dbi,
		     struct holder_walk *w)
{
	int err = db_err(mdb_cursor_open(txn, dbi, &w->walk));

	w->chunks = w->writers = NULL;
	if (err)
		w->walk = NULL;
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.chunks, &w->chunks));
	if (!err)
		err = db_err(mdb_cursor_open(txn, m->db.writers, &w->writers));
	if (err)
		holder_walk_close(w);
	return err;
}

void holder_walk_close(struct holder_walk *w)
{
	if (w->writers)
		mdb_cursor_close(w->writers);
	if (w->chunks)
		mdb_cursor_close(w->chunks);
	if (w->walk)
		mdb_cursor_close(w->walk);
	w->walk = w->chunks = w->writers = NULL;
}

int holders_replicas_for(const struct holders *h, uint32_t writer)
{
	return h->ndomains - has_u32(h->domains, h->ndomains, writer);
}

int holders_replicas(const struct holders *h)
{
	for (int i = 0; i < h->nwriters; i++)
		if (has_u32(h->domains, h->ndomains, h->writers[i]))
			return h->ndomains - 1;
	return h->ndomains;
}

bool holders_in_domain(const struct holders *h, uint32_t domain)
{
	return has_u32(h->domains, h->ndomains, domain);
}

bool holders_writer(const struct holders *h, uint32_t domain)
{
	return has_u32(h->writers, h->nwriters, domain);
}

/* Sort @v (@n node ids) by rendezvous score for @id, best first. */
static void by_score(const uint8_t *id, uint32_t *v, int n)
{
	for (int i = 1; i < n; i++) {
		uint32_t x = v[i];
		int j = i;

		for (; j > 0 && blobcr_rendezvous_score(id, v[j - 1]) <
				blobcr_rendezvous_score(id, x); j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

int holders_extras(struct metad *m, const uint8_t *id, const struct holders *h,
		   uint32_t *extra)
{
	uint32_t order[MAX_HOLDERS], kept[MAX_HOLDERS], kdom[MAX_HOLDERS];
	int nk = 0, ne = 0, count;
	bool writer_kept = false;

	/* A copy that is dead, draining or removed may be needed: wait. */
	if (h->ncounting != h->n || h->n <= m->replicas)
		return 0;
	memcpy(order, h->nodes, (size_t)h->n * sizeof(*order));
	by_score(id, order, h->n);
	/* The best copy of each domain stays; others in a domain are extra. */
	for (int i = 0; i < h->n; i++) {
		uint32_t dom = __atomic_load_n(&node_find(m, order[i])->domain_hash,
					       __ATOMIC_RELAXED);

		if (has_u32(kdom, nk, dom)) {
			extra[ne++] = order[i];
			continue;
		}
		writer_kept |= holders_writer(h, dom);
		kdom[nk] = dom;
		kept[nk++] = order[i];
	}
	/* Then the worst outside writers' domains, down to R that count. */
	count = nk - writer_kept;
	for (int i = nk - 1; i >= 0 && count > m->replicas; i--) {
		if (holders_writer(h, kdom[i]))
			continue; /* a writer's own copy: kept, as its read cache */
		extra[ne++] = kept[i];
		count--;
	}
	return ne;
}

int place_nodes(struct metad *m, const uint8_t *id, uint32_t *out, int max)
{
	size_t count = node_count(m);
	int k = 0;

	for (size_t i = 0; i < count; i++) {
		uint32_t nid = m->nodes[i].id;
		int j;

		if (!node_counts(m, nid))
			continue;
		for (j = k; j > 0 && blobcr_rendezvous_score(id, out[j - 1]) <
				     blobcr_rendezvous_score(id, nid); j--)
			if (j < max)
				out[j] = out[j - 1];
		if (j < max) {
			out[j] = nid;
			k += k < max;
		}
	}
	return k;
}
