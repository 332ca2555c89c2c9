// SPDX-License-Identifier: GPL-2.0
/*
 * sessions.c - the commits in flight, and the chunks they count on
 * (metad.h): gc never deletes those, so that it never fails a commit.
 *
 * A commit (libblobcr's changeset) has a random session id; every
 * CHUNK_LOCATE it sends names the session and the chunks it is about to
 * rely on, present (dedup) or about to be uploaded.  Those chunks are
 * *wanted* until the session publishes, or stays idle --gc-grace-s (its
 * client died).  gc spares wanted chunks; a chunk a gc is deleting
 * already is answered "wait" to the locate, and the commit asks again
 * once the gc is done, then uploads it afresh.  Sessions live in memory:
 * a restarted metad does not know the commits in flight, so it collects
 * nothing for --gc-grace-s.
 *
 * A gc marks from a snapshot: a version published after it refers to
 * chunks the mark did not see, and its session ends.  So while a gc runs,
 * every publish adds its chunks to the gc's own session (late), which
 * lasts until that gc ends; mark_rw orders the snapshot against
 * publishes: one is either in the snapshot or noted.
 *
 * Chunks are known by the first 8 bytes of their id: two chunks sharing
 * them only keep each other a little longer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

static uint64_t key_of(const uint8_t *id)
{
	uint64_t k = 0;

	for (int i = 0; i < 8; i++)
		k = k << 8 | id[i];
	return k;
}

/*
 * The slot of @key in the wanted table: its own, or the free one where it
 * would go.  A slot stays taken (counts 0) once used, until the table is
 * rebuilt, so that probing finds the keys placed past it.
 */
static size_t slot_of(const struct wanted *w, uint64_t key)
{
	size_t s = (size_t)(key * 0x9e3779b97f4a7c15ull) & (w->cap - 1);

	while (w->taken[s] && w->keys[s] != key)
		s = (s + 1) & (w->cap - 1);
	return s;
}

/* Room for one more key, dropping those no session wants any more. */
static int table_grow(struct wanted *w)
{
	size_t cap = w->cap ? w->cap : 4096, old_cap = w->cap, live = 0;
	uint64_t *keys = w->keys;
	uint32_t *counts = w->counts;
	uint8_t *taken = w->taken;

	for (size_t s = 0; s < old_cap; s++)
		live += counts[s] != 0;
	while (2 * (live + 1) > cap)
		cap *= 2;
	w->keys = calloc(cap, sizeof(*w->keys));
	w->counts = calloc(cap, sizeof(*w->counts));
	w->taken = calloc(cap, 1);
	if (!w->keys || !w->counts || !w->taken) {
		free(w->keys);
		free(w->counts);
		free(w->taken);
		w->keys = keys;
		w->counts = counts;
		w->taken = taken;
		return -ENOMEM;
	}
	w->cap = cap;
	w->used = 0;
	for (size_t s = 0; s < old_cap; s++) {
		size_t t;

		if (!counts[s])
			continue;
		t = slot_of(w, keys[s]);
		w->keys[t] = keys[s];
		w->counts[t] = counts[s];
		w->taken[t] = 1;
		w->used++;
	}
	free(keys);
	free(counts);
	free(taken);
	return 0;
}

static int want(struct wanted *w, uint64_t key)
{
	size_t s;

	if (2 * (w->used + 1) > w->cap) {
		int err = table_grow(w);

		if (err)
			return err;
	}
	s = slot_of(w, key);
	if (!w->taken[s]) {
		w->keys[s] = key;
		w->taken[s] = 1;
		w->used++;
	}
	w->counts[s]++;
	return 0;
}

static void unwant(struct wanted *w, uint64_t key)
{
	size_t s = slot_of(w, key);

	if (w->taken[s] && w->counts[s])
		w->counts[s]--;
}

/* Room in @s for @n more keys. */
static int session_room(struct session *s, size_t n)
{
	size_t cap = s->cap ? s->cap : 1024;
	uint64_t *nv;

	if (s->n + n <= s->cap)
		return 0;
	while (cap < s->n + n)
		cap *= 2;
	nv = realloc(s->keys, cap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->keys = nv;
	s->cap = cap;
	return 0;
}

static struct session *find(struct wanted *w, uint64_t id)
{
	for (struct session *s = w->sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void end_session(struct wanted *w, struct session **pp)
{
	struct session *s = *pp;

	for (size_t i = 0; i < s->n; i++)
		unwant(w, s->keys[i]);
	*pp = s->next;
	free(s->keys);
	free(s);
}

/* End the sessions idle longer than the grace period.  Caller holds mu. */
static void expire(struct metad *m)
{
	uint64_t now = blobcr_now_ms();

	for (struct session **pp = &m->wanted.sessions; *pp;) {
		if (now - (*pp)->touched > m->gc_grace_ms) {
			log_warn("commit session %016llx idle for %llu s: its chunks "
				 "are no longer kept for it",
				 (unsigned long long)(*pp)->id,
				 (unsigned long long)m->gc_grace_ms / 1000);
			end_session(&m->wanted, pp);
		} else {
			pp = &(*pp)->next;
		}
	}
}

int session_want(struct metad *m, uint64_t session, const uint8_t *ids,
		 size_t n)
{
	struct wanted *w = &m->wanted;
	struct session *s;
	int err = 0;

	if (!session)
		return 0;
	pthread_mutex_lock(&w->mu);
	expire(m);
	s = find(w, session);
	if (!s && (s = calloc(1, sizeof(*s)))) {
		s->id = session;
		s->next = w->sessions;
		w->sessions = s;
	}
	if (!s)
		err = -ENOMEM;
	if (!err)
		err = session_room(s, n);
	for (size_t i = 0; i < n && !err; i++) {
		err = want(w, key_of(ids + i * BLOBCR_ID_SIZE));
		if (!err)
			s->keys[s->n++] = key_of(ids + i * BLOBCR_ID_SIZE);
	}
	if (s)
		s->touched = blobcr_now_ms();
	pthread_mutex_unlock(&w->mu);
	return err;
}

void session_end(struct metad *m, uint64_t session)
{
	struct wanted *w = &m->wanted;

	if (!session)
		return;
	pthread_mutex_lock(&w->mu);
	for (struct session **pp = &w->sessions; *pp; pp = &(*pp)->next)
		if ((*pp)->id == session) {
			end_session(w, pp);
			break;
		}
	pthread_mutex_unlock(&w->mu);
}

void sessions_publish_begin(struct metad *m)
{
	pthread_rwlock_rdlock(&m->wanted.mark_rw);
}

int sessions_published(struct metad *m, const struct mentry *e, size_t n)
{
	struct wanted *w = &m->wanted;
	struct session *s = &w->late;
	int err;

	pthread_mutex_lock(&w->mu);
	if (!w->gc_running) {
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	err = session_room(s, n);
	for (size_t i = 0; i < n && !err; i++) {
		if (e[i].kind != BLOBCR_EXT_DATA)
			continue;
		err = want(w, key_of(e[i].id));
		if (!err)
			s->keys[s->n++] = key_of(e[i].id);
	}
	pthread_mutex_unlock(&w->mu);
	return err;
}

void sessions_publish_end(struct metad *m)
{
	pthread_rwlock_unlock(&m->wanted.mark_rw);
}

int sessions_gc_mark(struct metad *m, MDB_txn **txn)
{
	struct wanted *w = &m->wanted;
	int err;

	pthread_rwlock_wrlock(&w->mark_rw);
	pthread_mutex_lock(&w->mu);
	w->gc_running = true;
	pthread_mutex_unlock(&w->mu);
	err = txn_begin(m, MDB_RDONLY, txn);
	pthread_rwlock_unlock(&w->mark_rw);
	return err;
}

void sessions_gc_done(struct metad *m)
{
	struct wanted *w = &m->wanted;

	pthread_mutex_lock(&w->mu);
	w->gc_running = false;
	for (size_t i = 0; i < w->late.n; i++)
		unwant(w, w->late.keys[i]);
	w->late.n = 0;
	pthread_mutex_unlock(&w->mu);
}

void sessions_lock(struct metad *m)
{
	pthread_mutex_lock(&m->wanted.mu);
	expire(m);
}

void sessions_unlock(struct metad *m)
{
	pthread_mutex_unlock(&m->wanted.mu);
}

bool session_wanted_locked(struct metad *m, const uint8_t *id)
{
	struct wanted *w = &m->wanted;

	size_t s;

	if (!w->cap)
		return false;
	s = slot_of(w, key_of(id));
	return w->taken[s] && w->counts[s];
}

void sessions_free(struct metad *m)
{
	while (m->wanted.sessions)
		end_session(&m->wanted, &m->wanted.sessions);
	free(m->wanted.late.keys);
	free(m->wanted.keys);
	free(m->wanted.counts);
	free(m->wanted.taken);
}
