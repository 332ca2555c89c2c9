// SPDX-License-Identifier: GPL-2.0
/*
 * forward.c - a node's copies to a chunk's other replicas (PUT_FWD).
 *
 * The node a client sends a chunk to (the primary) sends it on to the
 * other replicas as plain PUTs, all at once, with the node's own key:
 * never to an address the client names, only to nodes metad lists (asked
 * again when the list is a second old, or this node's id changed: a
 * rebuilt metad numbers the nodes anew).  A
 * PUT never waits on another node, so a node's workers can never all wait
 * on each other's: a chain of nodes that each forward and wait could.
 * Connections (a session each) are kept for the next chunk.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>

#include "blobcr_util.h"
#include "forward.h"

#define REFRESH_MS 1000 /* the node list is asked again once this old */
#define DEAD_MS 3000 /* a node found dead is not tried for this long */
#define POOL_MAX 64 /* idle connections kept */
#define LISTEN_CHECK_MS 1000

struct fwd_node {
	uint32_t id;
	char addr[BLOBCR_ADDR_MAX];
	uint64_t dead_until; /* blobcr_now_ms() */
};

struct fwd_conn {
	uint32_t node;
	struct blobcr_peer p;
	struct fwd_conn *next;
};

struct forwarder {
	pthread_mutex_t mu; /* everything below */
	const char *meta, *key_file, *domain;
	struct blobcr_key *key;
	bool encrypt;
	uint32_t self;
	struct blobcr_client *c; /* to metad, for its node list */
	struct fwd_node *nodes;
	size_t nnodes;
	uint64_t refreshed; /* blobcr_now_ms() of the last list */
	struct fwd_conn *idle;
	int nidle;
};

int fwd_new(const char *meta, const char *key_file, struct blobcr_key *key,
	    const char *domain, bool encrypt, struct forwarder **out)
{
	struct forwarder *f = calloc(1, sizeof(*f));

	if (!f || pthread_mutex_init(&f->mu, NULL)) {
		free(f);
		return -ENOMEM;
	}
	f->meta = meta;
	f->key_file = key_file;
	f->key = key;
	f->domain = domain;
	f->encrypt = encrypt;
	*out = f;
	return 0;
}

void fwd_free(struct forwarder *f)
{
	if (!f)
		return;
	while (f->idle) {
		struct fwd_conn *x = f->idle;

		f->idle = x->next;
		blobcr_peer_close(&x->p);
		free(x);
	}
	blobcr_close(f->c);
	free(f->nodes);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void fwd_set_self(struct forwarder *f, uint32_t id)
{
	pthread_mutex_lock(&f->mu);
	if (f->self != id)
		f->refreshed = 0; /* ids may all have changed */
	f->self = id;
	pthread_mutex_unlock(&f->mu);
}

static struct fwd_node *find(struct forwarder *f, uint32_t id)
{
	for (size_t i = 0; i < f->nnodes; i++)
		if (f->nodes[i].id == id)
			return &f->nodes[i];
	return NULL;
}

/* Learn the nodes again from metad; removed ones are left out.  Locked. */
static int refresh(struct forwarder *f)
{
	struct blobcr_client_opts o = { .key_file = f->key_file,
					.domain = f->domain,
					.encrypt = f->encrypt };
	struct blobcr_node_info *v;
	struct fwd_node *nv;
	size_t n, k = 0;
	int err;

	f->refreshed = blobcr_now_ms();
	if (!f->c && (err = blobcr_connect(f->meta, &o, &f->c)))
		return err;
	err = blobcr_node_list(f->c, &v, &n);
	if (err)
		return err;
	nv = calloc(n ? n : 1, sizeof(*nv));
	if (!nv) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct fwd_node *old = find(f, v[i].id);

		if (v[i].role == BLOBCR_NODE_REMOVED)
			continue;
		nv[k].id = v[i].id;
		snprintf(nv[k].addr, sizeof(nv[k].addr), "%s", v[i].addr);
		nv[k++].dead_until = old ? old->dead_until : 0;
	}
	free(v);
	free(f->nodes);
	f->nodes = nv;
	f->nnodes = k;
	return 0;
}

int fwd_check(struct forwarder *f, const uint32_t *ids, int n)
{
	int err = 0;

	pthread_mutex_lock(&f->mu);
	if (!f->meta) {
		log_warn("PUT_FWD refused: no --meta, no node is known");
		err = -ENXIO;
	} else if (blobcr_now_ms() - f->refreshed >= REFRESH_MS &&
		   (err = refresh(f))) {
		log_warn("PUT_FWD refused: no node list from %s: %s", f->meta,
			 blobcr_strerror(err));
		err = -ENXIO;
	}
	for (int i = 0; i < n && !err; i++) {
		for (int j = 0; j < i; j++)
			if (ids[j] == ids[i]) {
				log_warn("PUT_FWD refused: node %" PRIu32
					 " is named twice", ids[i]);
				err = -EINVAL;
			}
		if (!err && ids[i] == f->self) {
			log_warn("PUT_FWD refused: node %" PRIu32 " is this node",
				 ids[i]);
			err = -EINVAL;
		}
		if (!err && !find(f, ids[i])) {
			log_warn("PUT_FWD refused: node %" PRIu32 " is unknown "
				 "to metad or removed", ids[i]);
			err = -ENXIO;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return err;
}

/* A connection to @node: a kept one, or a new one.  NULL: none to be had. */
static struct fwd_conn *conn_get(struct forwarder *f, uint32_t node,
				 const char *addr)
{
	struct fwd_conn **pp, *x;

	pthread_mutex_lock(&f->mu);
	for (pp = &f->idle; *pp; pp = &(*pp)->next)
		if ((*pp)->node == node && !strcmp((*pp)->p.addr, addr))
			break;
	x = *pp;
	if (x) {
		*pp = x->next;
		f->nidle--;
	}
	pthread_mutex_unlock(&f->mu);
	if (x)
		return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->node = node;
	if (blobcr_peer_open(&x->p, addr, f->key, BLOBCR_ROLE_NODE, 1000)) {
		free(x);
		return NULL;
	}
	x->p.flags = f->encrypt ? BLOBCR_SESS_ENCRYPT : 0;
	return x;
}

static void conn_put(struct forwarder *f, struct fwd_conn *x, bool keep)
{
	pthread_mutex_lock(&f->mu);
	if (keep && f->nidle < POOL_MAX) {
		x->next = f->idle;
		f->idle = x;
		f->nidle++;
		x = NULL;
	}
	pthread_mutex_unlock(&f->mu);
	if (x) {
		blobcr_peer_close(&x->p);
		free(x);
	}
}

struct hop {
	struct forwarder *f;
	uint32_t node;
	char addr[BLOBCR_ADDR_MAX];
	const uint8_t *id, *data;
	uint32_t len;
	int wait_ms;
	int status;
	pthread_t tid;
	bool started;
};

/* A node that did not answer: dead (refuses connections) or only slow? */
static int unanswered(struct hop *h, int err)
{
	int r = blobcr_tcp_listening(h->addr, LISTEN_CHECK_MS);
	struct fwd_node *n;

	if (r >= 0)
		return err;
	pthread_mutex_lock(&h->f->mu);
	n = find(h->f, h->node);
	if (n)
		n->dead_until = blobcr_now_ms() + DEAD_MS;
	pthread_mutex_unlock(&h->f->mu);
	log_warn("PUT to node %" PRIu32 " (%s): %s: not forwarding to it for "
		 "%d ms", h->node, h->addr, blobcr_strerror(r), DEAD_MS);
	return r;
}

static void *hop_run(void *p)
{
	struct hop *h = p;
	struct fwd_conn *x = conn_get(h->f, h->node, h->addr);
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg = NULL;
	int err;

	if (!x) {
		h->status = -ENOMEM;
		return NULL;
	}
	blobcr_peer_set_timeout(&x->p, h->wait_ms);
	err = blobcr_enc_init(&e, BLOBCR_ID_SIZE + 4 + h->len);
	if (!err) {
		blobcr_enc_bytes(&e, h->id, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&e, h->len);
		blobcr_enc_bytes(&e, h->data, h->len);
		err = blobcr_peer_call(&x->p, BLOBCR_OP_PUT, &e, &msg, &d);
		blobcr_enc_free(&e);
	}
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	if (err == -ETIMEDOUT || err == -ECONNREFUSED)
		err = unanswered(h, err);
	else if (err)
		log_warn("PUT to node %" PRIu32 " (%s) failed: %s", h->node,
			 h->addr, blobcr_strerror(err));
	conn_put(h->f, x, !err);
	h->status = err;
	return NULL;
}

uint64_t fwd_put(struct forwarder *f, const uint32_t *ids, int n,
		 const uint8_t *id, const uint8_t *data, uint32_t len,
		 int wait_ms, int *status)
{
	struct hop hv[BLOBCR_MAX_REPLICAS];
	uint64_t now = blobcr_now_ms(), sent = 0;

	for (int i = 0; i < n; i++) {
		struct hop *h = &hv[i];
		struct fwd_node *nd;

		*h = (struct hop){ .f = f, .node = ids[i], .id = id,
				   .data = data, .len = len, .wait_ms = wait_ms };
		pthread_mutex_lock(&f->mu);
		nd = find(f, ids[i]);
		if (nd)
			snprintf(h->addr, sizeof(h->addr), "%s", nd->addr);
		h->status = !nd ? -ENXIO : nd->dead_until > now ? -EHOSTDOWN : 0;
		pthread_mutex_unlock(&f->mu);
		if (h->status)
			continue;
		/* The last one in this thread: one thread less to start. */
		if (i + 1 < n && !pthread_create(&h->tid, NULL, hop_run, h))
			h->started = true;
		else if (i + 1 < n)
			hop_run(h);
	}
	if (n && !hv[n - 1].status)
		hop_run(&hv[n - 1]);
	for (int i = 0; i < n; i++) {
		if (hv[i].started)
			pthread_join(hv[i].tid, NULL);
		status[i] = hv[i].status;
		if (hv[i].status != -ENXIO && hv[i].status != -EHOSTDOWN &&
		    hv[i].status != -ENOMEM)
			sent += len;
	}
	return sent;
}
