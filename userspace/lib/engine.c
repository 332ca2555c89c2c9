// SPDX-License-Identifier: GPL-2.0
/*
 * engine.c - many chunk requests in flight over the node socket pools.
 *
 * A batch of operations (GETs or PUTs) runs as a state machine in one
 * thread: each op is queued on the node it targets; each node has up to
 * `inflight` REQ sockets, each carrying one request; nn_poll() waits for
 * sockets to become writable (connect pending) or readable (reply).  An op
 * that fails, times out, or reads a corrupt chunk moves to its next
 * candidate node.  A node that times out is skipped for a while by every op.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "blobcr_util.h"
#include "client_internal.h"

#define NODE_BACKOFF_MS 3000
#define CONNECT_TIMEOUT_MS 2000
#define MAX_CANDS (BLOBCR_MAX_REPLICAS * 2)

enum op_state { OP_QUEUED, OP_SENDING, OP_SENT, OP_DONE };

struct eop {
	uint8_t opcode; /* BLOBCR_OP_GET or BLOBCR_OP_PUT */
	uint8_t state;
	size_t item; /* index into the caller's array */
	uint32_t node; /* current target */
	int status;
	int next; /* next op in its node's queue, -1: last */
	uint64_t deadline;
	uint64_t req_id;
	struct blobcr_enc req; /* PUT: the frame, built once */
	int cand; /* GET: index into cands */
	int ncands; /* GET: replicas to try, usable ones first */
	uint32_t cands[BLOBCR_MAX_REPLICAS];
};

struct engine {
	struct blobcr_client *c;
	struct eop *ops;
	size_t nops, ndone;
	struct blobcr_get *gets;
	struct blobcr_put *puts;
	uint32_t (*put_cands)[MAX_CANDS]; /* PUT: ranking per item */
	int *put_ncands, *put_next; /* PUT: ranking length, next spare */
	struct { uint8_t id[BLOBCR_ID_SIZE]; uint32_t node; } *bad;
	size_t nbad;
};

static void queue_op(struct engine *en, int i)
{
	struct node_conn *n = client_node(en->c, en->ops[i].node);

	en->ops[i].state = OP_QUEUED;
	en->ops[i].next = -1;
	if (n->qtail >= 0)
		en->ops[n->qtail].next = i;
	else
		n->qhead = i;
	n->qtail = i;
}

static void finish_op(struct engine *en, struct eop *op, int status)
{
	op->state = OP_DONE;
	op->status = status;
	en->ndone++;
}

/* Pick the op's next candidate node, or finish it with @status. */
static void failover(struct engine *en, int i, int status)
{
	struct eop *op = &en->ops[i];
	struct node_conn *n = NULL;

	for (;;) {
		uint32_t node;

		if (op->opcode == BLOBCR_OP_GET) {
			if (++op->cand >= op->ncands)
				break;
			node = op->cands[op->cand];
		} else {
			int *next = &en->put_next[op->item];

			if (*next >= en->put_ncands[op->item])
				break;
			node = en->put_cands[op->item][(*next)++];
		}
		n = client_node(en->c, node);
		if (client_node_usable(n)) {
			op->node = node;
			queue_op(en, i);
			return;
		}
	}
	finish_op(en, op, status);
}

static int build_request(struct engine *en, struct eop *op)
{
	struct blobcr_hdr h = { .opcode = op->opcode };
	int err;

	op->req_id = blobcr_next_req_id();
	h.req_id = op->req_id;
	if (op->opcode == BLOBCR_OP_GET) {
		blobcr_enc_free(&op->req);
		err = blobcr_enc_init(&op->req, BLOBCR_ID_SIZE);
		if (err)
			return err;
		blobcr_enc_bytes(&op->req, en->gets[op->item].loc->id,
				 BLOBCR_ID_SIZE);
	} else if (!op->req.buf) {
		const struct blobcr_put *p = &en->puts[op->item];

		err = blobcr_enc_init(&op->req, BLOBCR_ID_SIZE + 4 + p->len);
		if (err)
			return err;
		blobcr_enc_bytes(&op->req, p->id, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&op->req, p->len);
		blobcr_enc_bytes(&op->req, p->data, p->len);
	}
	return blobcr_enc_finish(&op->req, &h);
}

static int open_sock(struct blobcr_client *c, struct node_conn *n, int k)
{
	int resend = 3600 * 1000; /* we time out and fail over ourselves */
	int s;

	if (n->socks[k] >= 0)
		return n->socks[k];
	s = blobcr_req_socket(n->addr, c->timeout_ms);
	if (s < 0)
		return s;
	if (nn_setsockopt(s, NN_REQ, NN_REQ_RESEND_IVL, &resend,
			  sizeof(resend)) < 0) {
		nn_close(s);
		return -nn_errno();
	}
	n->socks[k] = s;
	return s;
}

/* Try to put the op's frame on the wire.  Return: 0 sent, 1 not yet. */
static int try_send(struct eop *op, int sock)
{
	if (nn_send(sock, op->req.buf, op->req.len, NN_DONTWAIT) >= 0)
		return 0;
	return nn_errno() == EAGAIN ? 1 : -nn_errno();
}

static void start_op(struct engine *en, struct node_conn *n, int k, int i)
{
	struct eop *op = &en->ops[i];
	uint64_t now = blobcr_now_ms();
	int sock = open_sock(en->c, n, k);
	int r = sock < 0 ? sock : build_request(en, op);

	if (!r)
		r = try_send(op, sock);
	if (r < 0) {
		failover(en, i, r);
		return;
	}
	n->sock_op[k] = i;
	op->state = r ? OP_SENDING : OP_SENT;
	op->deadline = now + (r ? CONNECT_TIMEOUT_MS : (uint64_t)en->c->timeout_ms);
}

static void dispatch(struct engine *en)
{
	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		struct node_conn *n = &en->c->nodes[ni];

		for (int k = 0; k < en->c->inflight && n->qhead >= 0; k++) {
			int i = n->qhead;

			if (n->sock_op[k] >= 0)
				continue;
			n->qhead = en->ops[i].next;
			if (n->qhead < 0)
				n->qtail = -1;
			if (!client_node_usable(n)) {
				failover(en, i, -EHOSTDOWN);
				continue;
			}
			start_op(en, n, k, i);
		}
	}
}

/* A GET reply: verify the bytes against the id before accepting them. */
static int get_done(struct engine *en, struct eop *op, int status,
		    struct blobcr_dec *d)
{
	struct blobcr_get *g = &en->gets[op->item];
	uint8_t id[BLOBCR_ID_SIZE];
	char hex[65];
	size_t len = d->left;

	if (status)
		goto bad;
	if ((g->len && len != g->len) || (!g->len && len > BLOBCR_MAX_EXTENT) ||
	    blobcr_chunk_id(d->p, len, id) ||
	    memcmp(id, g->loc->id, BLOBCR_ID_SIZE)) {
		status = -EUCLEAN;
		goto bad;
	}
	memcpy(g->buf, d->p, len);
	g->len = (uint32_t)len;
	return 0;
bad:
	if (status == -EUCLEAN) {
		blobcr_id_hex(g->loc->id, hex);
		log_warn("chunk %s from node %" PRIu32 " is corrupt: trying another replica",
			 hex, op->node);
		if (en->nbad < en->nops) {
			memcpy(en->bad[en->nbad].id, g->loc->id, BLOBCR_ID_SIZE);
			en->bad[en->nbad++].node = op->node;
		}
	}
	return status;
}

static void reply_received(struct engine *en, struct node_conn *n, int k,
			   void *buf, int len)
{
	int i = n->sock_op[k];
	struct eop *op = &en->ops[i];
	struct blobcr_dec d;
	/* A GET's bytes are checked against their SHA-256: skip the CRC. */
	int status = blobcr_check_reply_flags(buf, (size_t)len, op->opcode,
					      op->req_id, &d,
					      op->opcode == BLOBCR_OP_GET ?
					      BLOBCR_DECODE_SKIP_PAYLOAD_CRC : 0);

	n->sock_op[k] = -1;
	if (op->opcode == BLOBCR_OP_GET)
		status = get_done(en, op, status, &d);
	if (!status) {
		if (op->opcode == BLOBCR_OP_PUT) {
			struct blobcr_put *p = &en->puts[op->item];

			p->replicas[p->nreplicas++] = op->node;
		}
		finish_op(en, op, 0);
	} else {
		if (status != -EUCLEAN && status != -ENOENT)
			log_warn("%s on node %" PRIu32 " failed: %s",
				 blobcr_op_name(op->opcode), op->node,
				 blobcr_strerror(status));
		failover(en, i, status);
	}
}

/* Time out overdue requests: the node is skipped for a while. */
static void expire(struct engine *en, uint64_t now)
{
	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		struct node_conn *n = &en->c->nodes[ni];

		for (int k = 0; k < en->c->inflight; k++) {
			int i = n->sock_op[k];

			if (i < 0 || en->ops[i].deadline > now)
				continue;
			if (n->down_until <= now)
				log_warn("node %" PRIu32 " (%s) does not answer: skipping it for %d ms",
					 n->id, n->addr, NODE_BACKOFF_MS);
			n->down_until = now + NODE_BACKOFF_MS;
			n->sock_op[k] = -1;
			/* A REQ socket drops a late reply to an old request. */
			failover(en, i, -ETIMEDOUT);
		}
	}
}

static int poll_once(struct engine *en)
{
	struct nn_pollfd *pfd;
	struct { struct node_conn *n; int k; } *who;
	size_t cnt = 0, max = en->c->nnodes * MAX_INFLIGHT + 1;
	int r;

	pfd = calloc(max, sizeof(*pfd));
	who = calloc(max, sizeof(*who));
	if (!pfd || !who) {
		free(pfd);
		free(who);
		return -ENOMEM;
	}
	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		struct node_conn *n = &en->c->nodes[ni];

		for (int k = 0; k < en->c->inflight; k++) {
			int i = n->sock_op[k];

			if (i < 0)
				continue;
			pfd[cnt].fd = n->socks[k];
			pfd[cnt].events = en->ops[i].state == OP_SENDING ?
						  NN_POLLOUT : NN_POLLIN;
			who[cnt].n = n;
			who[cnt++].k = k;
		}
	}
	r = cnt ? nn_poll(pfd, (int)cnt, 20) : 0;
	for (size_t j = 0; r > 0 && j < cnt; j++) {
		struct node_conn *n = who[j].n;
		int k = who[j].k, i = n->sock_op[k];

		if (pfd[j].revents & NN_POLLOUT) {
			int s = try_send(&en->ops[i], n->socks[k]);

			if (s == 0) {
				en->ops[i].state = OP_SENT;
				en->ops[i].deadline = blobcr_now_ms() +
						      (uint64_t)en->c->timeout_ms;
			}
		} else if (pfd[j].revents & NN_POLLIN) {
			void *buf = NULL;
			int len = nn_recv(n->socks[k], &buf, NN_MSG, NN_DONTWAIT);

			if (len >= 0) {
				reply_received(en, n, k, buf, len);
				nn_freemsg(buf);
			}
		}
	}
	free(pfd);
	free(who);
	return r < 0 && nn_errno() != EINTR ? -nn_errno() : 0;
}

static int run(struct engine *en)
{
	int err = 0;

	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		en->c->nodes[ni].qhead = en->c->nodes[ni].qtail = -1;
		for (int k = 0; k < MAX_INFLIGHT; k++)
			en->c->nodes[ni].sock_op[k] = -1;
	}
	for (size_t i = 0; i < en->nops; i++) {
		if (en->ops[i].state == OP_DONE)
			continue;
		if (client_node_usable(client_node(en->c, en->ops[i].node)))
			queue_op(en, (int)i);
		else
			failover(en, (int)i, -EHOSTDOWN);
	}
	while (en->ndone < en->nops && !err) {
		dispatch(en);
		err = poll_once(en);
		expire(en, blobcr_now_ms());
	}
	for (size_t i = 0; i < en->nbad; i++)
		report_corrupt(en->c, en->bad[i].id, en->bad[i].node);
	return err;
}

static void engine_free(struct engine *en)
{
	for (size_t i = 0; i < en->nops; i++)
		blobcr_enc_free(&en->ops[i].req);
	free(en->ops);
	free(en->bad);
	free(en->put_cands);
	free(en->put_ncands);
	free(en->put_next);
}

/* ---- GET ---- */

/*
 * Usable replicas first, each group by rendezvous score: the node a chunk
 * was placed on first is read first, which spreads reads like placement.
 * Nodes this client does not know are dropped.
 */
static void order_replicas(struct blobcr_client *c,
			   const struct blobcr_extent_loc *l, struct eop *op)
{
	op->ncands = 0;
	for (int pass = 0; pass < 2; pass++) {
		int first = op->ncands;

		for (int i = 0; i < l->nreplicas && i < BLOBCR_MAX_REPLICAS; i++) {
			struct node_conn *n = client_node(c, l->replicas[i]);
			uint32_t id = l->replicas[i];
			int j;

			if (!n || client_node_usable(n) != (pass == 0))
				continue;
			/* insertion sort, highest score first */
			for (j = op->ncands; j > first &&
			     rendezvous_score(l->id, op->cands[j - 1]) <
			     rendezvous_score(l->id, id); j--)
				op->cands[j] = op->cands[j - 1];
			op->cands[j] = id;
			op->ncands++;
		}
	}
}

int blobcr_get_chunks(struct blobcr_client *c, struct blobcr_get *gets, size_t n)
{
	struct engine en = { .c = c, .gets = gets, .nops = n };
	int err = 0;

	if (!n)
		return 0;
	en.ops = calloc(n, sizeof(*en.ops));
	en.bad = calloc(n, sizeof(*en.bad));
	if (!en.ops || !en.bad) {
		engine_free(&en);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct eop *op = &en.ops[i];

		op->opcode = BLOBCR_OP_GET;
		op->item = i;
		order_replicas(c, gets[i].loc, op);
		if (!op->ncands) {
			finish_op(&en, op, -EHOSTDOWN);
			continue;
		}
		op->node = op->cands[0];
	}
	err = run(&en);
	for (size_t i = 0; i < n; i++) {
		gets[i].status = en.ops[i].state == OP_DONE ? en.ops[i].status : -EIO;
		if (!err && gets[i].status)
			err = gets[i].status;
	}
	engine_free(&en);
	return err;
}

/* ---- PUT ---- */

/* One op per missing replica; the ranking leaves out the holders. */
static int put_prepare(struct engine *en, struct blobcr_put *puts, size_t n)
{
	int r = en->c->replicas;

	for (size_t i = 0; i < n; i++) {
		struct blobcr_put *p = &puts[i];
		int need = r - p->nhave;

		p->nreplicas = p->nhave;
		p->status = 0;
		en->put_ncands[i] = place_chunk(en->c, p->id, p->replicas,
						p->nhave, en->put_cands[i],
						MAX_CANDS);
		en->put_next[i] = need > 0 ? need : 0;
		for (int k = 0; k < need; k++) {
			struct eop *op = &en->ops[en->nops++];

			op->opcode = BLOBCR_OP_PUT;
			op->item = i;
			if (k < en->put_ncands[i]) {
				op->node = en->put_cands[i][k];
			} else {
				op->state = OP_DONE;
				op->status = -EHOSTDOWN;
				en->ndone++;
			}
		}
	}
	return 0;
}

int blobcr_put_chunks(struct blobcr_client *c, struct blobcr_put *puts, size_t n)
{
	struct engine en = { .c = c, .puts = puts };
	size_t maxops = n * (size_t)c->replicas;
	int err;

	if (!n)
		return 0;
	en.ops = calloc(maxops ? maxops : 1, sizeof(*en.ops));
	en.put_cands = calloc(n, sizeof(*en.put_cands));
	en.put_ncands = calloc(n, sizeof(int));
	en.put_next = calloc(n, sizeof(int));
	if (!en.ops || !en.put_cands || !en.put_ncands || !en.put_next) {
		engine_free(&en);
		return -ENOMEM;
	}
	put_prepare(&en, puts, n);
	err = run(&en);
	for (size_t i = 0; i < en.nops; i++) {
		struct blobcr_put *p = &puts[en.ops[i].item];

		if (en.ops[i].state != OP_DONE)
			p->status = -EIO;
		else if (en.ops[i].status && !p->status)
			p->status = en.ops[i].status;
	}
	for (size_t i = 0; i < n; i++) {
		if (puts[i].nreplicas >= c->replicas)
			puts[i].status = 0;
		else if (!puts[i].status)
			puts[i].status = -EHOSTDOWN;
		if (!err && puts[i].status)
			err = puts[i].status;
	}
	engine_free(&en);
	return err;
}
