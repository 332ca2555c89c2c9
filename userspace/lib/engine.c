// SPDX-License-Identifier: GPL-2.0
/*
 * engine.c - many chunk requests in flight over the node socket pools.
 *
 * A batch of operations (GETs or PUTs) runs as a state machine in one
 * thread: each op is queued on the node it targets; each node has up to
 * `inflight` REQ sockets, each carrying one request (a PUT, or a GETV of
 * up to 4 MiB of queued GETs); nn_poll() waits for
 * sockets to become writable (connect pending) or readable (reply).  An op
 * that fails, times out, or reads a corrupt chunk moves to its next
 * candidate node.  A node shown dead (see below) is skipped for a while by
 * every op.
 * Every request is sealed in the client's session with its node; the
 * sessions of the nodes a batch needs are opened first, all at once.
 *
 * A chunk's copies are sent once: to the first node chosen, as PUT_FWD
 * naming the others, which that node sends them to.  Those other ops
 * (riders) wait for its reply, which says which of them now hold a copy;
 * a rider whose copy failed is placed again like any failed PUT (one its
 * node could not reach goes to that node directly), and if the first node
 * fails, every rider goes to its node directly.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <openssl/crypto.h>

#include "blobcr_util.h"
#include "client_internal.h"

#define NODE_BACKOFF_MS 3000
#define MAX_REKEYS 2 /* sessions an op sees lost before it fails over */
/*
 * A slow reply is not a dead node: a node is skipped on evidence only.
 * A request unanswered PROBE_AFTER_MS, from a node silent as long (a
 * handshake unanswered PROBE_AFTER_MS + PROBE_TIMEOUT_MS), sends the node
 * a PING; a PING unanswered PROBE_TIMEOUT_MS has the client try a TCP
 * connection to its port (for up to LISTEN_CHECK_MS).  Refused: the node
 * is dead (killed), at the cost of one short probe.  Accepted (a stopped
 * or overloaded node), or not answered in time (an unreachable host, but
 * also an overloaded one, or a client itself starved of CPU, as in a
 * loaded guest): no evidence, the node is slow and probed again later.
 * A node is also dead when it has answered none of our requests for the
 * whole request timeout since one was sent: that is the bound of a slow
 * node, and it scales with the caller's timeout.
 */
#define PROBE_AFTER_MS 1000
#define PROBE_TIMEOUT_MS 2000
#define LISTEN_CHECK_MS 1000
#define MAX_CANDS (BLOBCR_MAX_REPLICAS * 2)

#define GETV_BYTES (4u << 20) /* chunk bytes asked for in one GETV */

enum op_state { OP_NEW, OP_QUEUED, OP_INFLIGHT, OP_DONE };
enum slot_state { SLOT_IDLE, SLOT_SENDING, SLOT_SENT };

struct eop {
	uint8_t opcode; /* BLOBCR_OP_GET or BLOBCR_OP_PUT */
	uint8_t state;
	size_t item; /* index into the caller's array */
	uint32_t node; /* current target */
	int status;
	int next; /* next op in its node's queue, -1: last */
	int rekeys; /* sessions lost under it (a node restarted) */
	struct blobcr_enc req; /* PUT: the frame, sealed for its node */
	bool rider; /* PUT: sent on by another op's node, waits for it */
	int nriders; /* PUT: ops whose copies this one's node sends on */
	int riders[BLOBCR_MAX_REPLICAS];
	int cand; /* GET: index into cands */
	int ncands; /* GET: replicas to try, usable ones first */
	uint32_t cands[BLOBCR_MAX_REPLICAS];
};

/*
 * One request on one socket: a PUT, or a GETV for up to BLOBCR_GETV_MAX
 * GETs queued on the same node, so that one message carries many chunks.
 */
struct slot {
	uint8_t state;
	uint8_t opcode;
	uint8_t wire_op; /* the request's opcode: PUT_FWD for a PUT with riders */
	int nops;
	int ops[BLOBCR_GETV_MAX];
	uint64_t req_id;
	uint64_t sent; /* blobcr_now_ms() when started */
	uint64_t sid, seq; /* the node's session, when it was sent */
	struct blobcr_enc getv; /* GETV: the frame */
	const struct blobcr_enc *wire; /* the frame being sent */
};

#define MAX_TAKEN (BLOBCR_MAX_REPLICAS * 3)

/*
 * PUT: where one chunk may go.  A domain is taken by a counting copy, by
 * an exclusion, or by a PUT under way or done: one copy per domain.
 */
struct put_plan {
	uint32_t cands[MAX_CANDS]; /* ranking (place_chunk()) */
	bool tried[MAX_CANDS];
	int ncands;
	uint32_t taken[MAX_TAKEN];
	int ntaken;
	int counted; /* copies it had that count */
};

struct engine {
	struct blobcr_client *c;
	struct eop *ops;
	size_t nops, ndone;
	struct slot *slots; /* node index * MAX_INFLIGHT + socket index */
	struct blobcr_get *gets;
	struct blobcr_put *puts;
	struct put_plan *plans; /* PUT: one per item */
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

static bool taken(const struct put_plan *pl, uint32_t domain)
{
	for (int i = 0; i < pl->ntaken; i++)
		if (pl->taken[i] == domain)
			return true;
	return false;
}

static void take(struct put_plan *pl, uint32_t domain)
{
	if (pl->ntaken < MAX_TAKEN && !taken(pl, domain))
		pl->taken[pl->ntaken++] = domain;
}

static void release(struct put_plan *pl, uint32_t domain)
{
	for (int i = 0; i < pl->ntaken; i++)
		if (pl->taken[i] == domain) {
			pl->taken[i] = pl->taken[--pl->ntaken];
			return;
		}
}

/* The best untried writable candidate in a domain not taken (taken now). */
static bool next_cand(struct blobcr_client *c, struct put_plan *pl,
		      uint32_t *node)
{
	for (int i = 0; i < pl->ncands; i++) {
		struct node_conn *n = client_node(c, pl->cands[i]);

		if (pl->tried[i] || !client_node_writable(n) || taken(pl, n->domain))
			continue;
		pl->tried[i] = true;
		take(pl, n->domain);
		*node = n->id;
		return true;
	}
	return false;
}

/* The riders of @op are sent to their nodes directly from now on. */
static void release_riders(struct engine *en, struct eop *op)
{
	for (int j = 0; j < op->nriders; j++) {
		en->ops[op->riders[j]].rider = false;
		queue_op(en, op->riders[j]);
	}
	op->nriders = 0;
}

/* Pick the op's next candidate node, or finish it with @status. */
static void failover(struct engine *en, int i, int status)
{
	struct eop *op = &en->ops[i];
	struct node_conn *n = NULL;

	if (op->opcode == BLOBCR_OP_PUT) {
		struct put_plan *pl = &en->plans[op->item];
		bool had_riders = op->nriders > 0;

		release_riders(en, op);
		n = client_node(en->c, op->node);
		/*
		 * An older node (-EOPNOTSUPP), a full queue of forwarding
		 * requests (-ENOBUFS) or a forward list it refused (-ENXIO:
		 * it knows the nodes from an older list than ours): it
		 * stored nothing, so it gets a plain PUT.
		 */
		if (had_riders && n && (status == -EOPNOTSUPP ||
					status == -ENOBUFS || status == -ENXIO)) {
			if (status == -EOPNOTSUPP)
				n->no_fwd = true;
			queue_op(en, i);
			return;
		}
		/* Another node of the failed one's domain may take its place. */
		if (n)
			release(pl, n->domain);
		if (next_cand(en->c, pl, &op->node)) {
			queue_op(en, i);
			return;
		}
		finish_op(en, op, status);
		return;
	}
	while (++op->cand < op->ncands) {
		n = client_node(en->c, op->cands[op->cand]);
		if (client_node_usable(n)) {
			op->node = op->cands[op->cand];
			queue_op(en, i);
			return;
		}
	}
	finish_op(en, op, status);
}

/* The PUT frame of op @i, built again for each node it is sent to. */
static int build_put(struct engine *en, struct eop *op)
{
	const struct blobcr_put *p = &en->puts[op->item];
	int err;

	blobcr_enc_free(&op->req); /* sealed for another session */
	err = blobcr_enc_init(&op->req, BLOBCR_ID_SIZE + 4 + p->len);
	if (err)
		return err;
	if (op->nriders) {
		int wait = en->c->timeout_ms / 2;

		blobcr_enc_u8(&op->req, BLOBCR_PUT_FWD_FORMAT);
		wait = wait < BLOBCR_FWD_WAIT_MIN_MS ? BLOBCR_FWD_WAIT_MIN_MS :
		       wait > BLOBCR_FWD_WAIT_MAX_MS ? BLOBCR_FWD_WAIT_MAX_MS : wait;
		blobcr_enc_bytes(&op->req, p->id, BLOBCR_ID_SIZE);
		blobcr_enc_u32(&op->req, p->len);
		blobcr_enc_bytes(&op->req, p->data, p->len);
		/* the node's wait for the others: it answers within ours */
		blobcr_enc_u32(&op->req, (uint32_t)wait);
		blobcr_enc_u8(&op->req, (uint8_t)op->nriders);
		for (int j = 0; j < op->nriders; j++)
			blobcr_enc_u32(&op->req, en->ops[op->riders[j]].node);
		return op->req.err;
	}
	blobcr_enc_bytes(&op->req, p->id, BLOBCR_ID_SIZE);
	blobcr_enc_u32(&op->req, p->len);
	blobcr_enc_bytes(&op->req, p->data, p->len);
	return op->req.err;
}

/* Fill @sl from node @n's queue: one PUT, or as many GETs as fit a GETV. */
static int build_slot(struct engine *en, struct node_conn *n, struct slot *sl)
{
	struct blobcr_hdr h = { .req_id = blobcr_next_req_id() };
	struct eop *first = &en->ops[n->qhead];
	size_t bytes = 0;
	int err;

	sl->nops = 0;
	sl->opcode = first->opcode == BLOBCR_OP_PUT ? BLOBCR_OP_PUT : BLOBCR_OP_GETV;
	while (n->qhead >= 0 && sl->nops < BLOBCR_GETV_MAX) {
		struct eop *op = &en->ops[n->qhead];
		size_t len = op->opcode == BLOBCR_OP_GET ?
			(en->gets[op->item].len ? en->gets[op->item].len :
						  BLOBCR_MAX_EXTENT) : 0;

		if ((op->opcode == BLOBCR_OP_PUT) != (sl->opcode == BLOBCR_OP_PUT) ||
		    (sl->nops && (sl->opcode == BLOBCR_OP_PUT ||
				  bytes + len > GETV_BYTES)))
			break;
		bytes += len;
		sl->ops[sl->nops++] = n->qhead;
		op->state = OP_INFLIGHT;
		n->qhead = op->next;
		if (n->qhead < 0)
			n->qtail = -1;
	}
	h.opcode = sl->opcode;
	sl->req_id = h.req_id;
	if (sl->opcode == BLOBCR_OP_PUT) {
		if (first->nriders)
			h.opcode = BLOBCR_OP_PUT_FWD;
		sl->wire_op = h.opcode;
		err = build_put(en, first);
		sl->wire = &first->req;
		sl->sid = n->sess.sid;
		return err ? err : blobcr_seal_request(&n->sess, &first->req, &h,
						       &sl->seq);
	}
	sl->wire_op = h.opcode;
	blobcr_enc_free(&sl->getv);
	err = blobcr_enc_init(&sl->getv, 4 + (size_t)sl->nops * BLOBCR_ID_SIZE);
	if (err)
		return err;
	blobcr_enc_u32(&sl->getv, (uint32_t)sl->nops);
	for (int j = 0; j < sl->nops; j++)
		blobcr_enc_bytes(&sl->getv, en->gets[en->ops[sl->ops[j]].item].loc->id,
				 BLOBCR_ID_SIZE);
	sl->wire = &sl->getv;
	sl->sid = n->sess.sid;
	return blobcr_seal_request(&n->sess, &sl->getv, &h, &sl->seq);
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

/* Try to put the slot's frame on the wire.  Return: 0 sent, 1 not yet. */
static int try_send(const struct slot *sl, int sock)
{
	if (nn_send(sock, sl->wire->buf, sl->wire->len, NN_DONTWAIT) >= 0)
		return 0;
	return nn_errno() == EAGAIN ? 1 : -nn_errno();
}

static struct slot *slot_of(struct engine *en, struct node_conn *n, int k)
{
	return &en->slots[(size_t)(n - en->c->nodes) * MAX_INFLIGHT + (size_t)k];
}

/* Every op of @sl moves on to its next candidate, @status if none. */
static void slot_failover(struct engine *en, struct slot *sl, int status)
{
	for (int j = 0; j < sl->nops; j++)
		failover(en, sl->ops[j], status);
	sl->nops = 0;
	sl->state = SLOT_IDLE;
}

static void start_slot(struct engine *en, struct node_conn *n, int k)
{
	struct slot *sl = slot_of(en, n, k);
	uint64_t now = blobcr_now_ms();
	int sock = open_sock(en->c, n, k);
	int r = build_slot(en, n, sl);

	if (!r)
		r = sock < 0 ? sock : try_send(sl, sock);
	if (r < 0) {
		slot_failover(en, sl, r);
		return;
	}
	sl->state = r ? SLOT_SENDING : SLOT_SENT;
	sl->sent = now;
}

static void dispatch(struct engine *en)
{
	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		struct node_conn *n = &en->c->nodes[ni];

		for (int k = 0; k < en->c->inflight && n->qhead >= 0; k++) {
			if (slot_of(en, n, k)->state != SLOT_IDLE)
				continue;
			if (!client_node_usable(n)) {
				/* Drain the queue to other nodes. */
				while (n->qhead >= 0) {
					int i = n->qhead;

					n->qhead = en->ops[i].next;
					failover(en, i, n->down_err ? n->down_err :
								      -EHOSTDOWN);
				}
				n->qtail = -1;
				break;
			}
			if (!n->sess.sid)
				break; /* engine_sessions() opens it first */
			start_slot(en, n, k);
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
	/* The node's word or our check: a copy to report (metad asks the node). */
	if (status == -EUCLEAN || status == -ENOENT) {
		blobcr_id_hex(g->loc->id, hex);
		log_warn("chunk %s from node %" PRIu32 " is %s: trying another replica",
			 hex, op->node, status == -ENOENT ? "missing" : "corrupt");
		if (en->nbad < en->nops) {
			memcpy(en->bad[en->nbad].id, g->loc->id, BLOBCR_ID_SIZE);
			en->bad[en->nbad++].node = op->node;
		}
	}
	return status;
}

static void put_done(struct engine *en, struct eop *op)
{
	struct blobcr_put *p = &en->puts[op->item];

	if (p->nreplicas < BLOBCR_MAX_REPLICAS)
		p->replicas[p->nreplicas++] = op->node;
	finish_op(en, op, 0);
}

/*
 * A PUT_FWD's reply, its node's copy durable: each rider's copy is too, or
 * is placed again.  A node the forwarding one could not reach (dead to it,
 * or slow) gets the copy from us directly: a node is found dead, or slow,
 * on our own evidence, as for any PUT.
 */
static void riders_done(struct engine *en, struct eop *op, struct blobcr_dec *d)
{
	uint8_t n = blobcr_dec_u8(d);

	for (int j = 0; j < op->nriders; j++) {
		int r = op->riders[j];
		struct eop *rop = &en->ops[r];
		uint32_t node = blobcr_dec_u32(d);
		int status = (int32_t)blobcr_dec_u32(d);
		/* Not reached from there: we try ourselves, and judge it so. */
		bool unreached = status == -ETIMEDOUT || status == -EHOSTDOWN ||
				 status == -ECONNREFUSED;

		if (d->err || n != op->nriders || node != rop->node ||
		    status > 0 || status < -4095)
			status = -EBADMSG;
		rop->rider = false;
		if (!status) {
			put_done(en, rop);
			continue;
		}
		log_warn("PUT via node %" PRIu32 " to node %" PRIu32 " failed: %s%s",
			 op->node, rop->node, blobcr_strerror(status),
			 unreached ? ": sending it there directly" : "");
		if (unreached)
			queue_op(en, r);
		else
			failover(en, r, status);
	}
	op->nriders = 0;
}

static void op_result(struct engine *en, int i, int status,
		      struct blobcr_dec *d)
{
	struct eop *op = &en->ops[i];

	if (op->opcode == BLOBCR_OP_GET)
		status = get_done(en, op, status, d);
	if (!status) {
		if (op->opcode == BLOBCR_OP_PUT) {
			riders_done(en, op, d);
			put_done(en, op);
		} else {
			finish_op(en, op, 0);
		}
		return;
	}
	if (status != -EUCLEAN && status != -ENOENT)
		log_warn("%s on node %" PRIu32 " failed: %s",
			 blobcr_op_name(op->opcode), op->node,
			 blobcr_strerror(status));
	failover(en, i, status);
}

/* A GETV reply: per chunk, a status, a length and the bytes. */
static void getv_done(struct engine *en, struct slot *sl, struct blobcr_dec *d)
{
	uint32_t n = blobcr_dec_u32(d);
	int j;

	if (d->err || n != (uint32_t)sl->nops) {
		slot_failover(en, sl, -EBADMSG);
		return;
	}
	for (j = 0; j < sl->nops; j++) {
		int status = (int32_t)blobcr_dec_u32(d);
		uint32_t len = blobcr_dec_u32(d);
		const uint8_t *p = blobcr_dec_bytes(d, len);
		struct blobcr_dec one;

		if (!p)
			break;
		blobcr_dec_init(&one, p, len);
		if (status > 0 || status < -4095)
			status = -EBADMSG;
		op_result(en, sl->ops[j], status, &one);
	}
	for (; j < sl->nops; j++)
		failover(en, sl->ops[j], -EBADMSG); /* a truncated reply */
}

/* The node lost our session (a restart): its ops wait for a new one. */
static void slot_rekey(struct engine *en, struct node_conn *n,
		       struct slot *sl)
{
	if (sl->sid == n->sess.sid) /* not already replaced */
		memset(&n->sess, 0, sizeof(n->sess));
	for (int j = 0; j < sl->nops; j++) {
		struct eop *op = &en->ops[sl->ops[j]];

		if (++op->rekeys > MAX_REKEYS)
			failover(en, sl->ops[j], -EKEYEXPIRED);
		else
			queue_op(en, sl->ops[j]);
	}
	sl->nops = 0;
	sl->state = SLOT_IDLE;
}

/*
 * A reply whose tag (or, unsealed, CRC) fails was damaged or forged on the
 * way: the ops fail over and nothing is reported, the node's copies are not
 * at fault.  A chunk whose SHA-256 then fails was served bad by its node.
 */
static void reply_received(struct engine *en, struct node_conn *n, int k,
			   void *buf, int len)
{
	struct slot *sl = slot_of(en, n, k);
	struct blobcr_dec d;
	int status = blobcr_check_reply(&n->sess, sl->seq, buf, (size_t)len,
					sl->wire_op, sl->req_id, &d);

	n->last_reply = n->last_served = blobcr_now_ms();
	sl->state = SLOT_IDLE;
	if (status == -EBADMSG || status == -EPROTO || status == -EMSGSIZE)
		log_warn("%s reply from node %" PRIu32 " damaged (%s): trying "
			 "another replica", blobcr_op_name(sl->opcode), n->id,
			 blobcr_strerror(status));
	if (status == -EKEYEXPIRED)
		slot_rekey(en, n, sl);
	else if (sl->opcode == BLOBCR_OP_PUT)
		op_result(en, sl->ops[0], status, &d);
	else if (status)
		slot_failover(en, sl, status);
	else
		getv_done(en, sl, &d);
	sl->nops = 0;
}

/* Node @n is dead: skip it a while, its requests fail over. */
static void node_down(struct engine *en, struct node_conn *n, uint64_t now,
		      const char *why)
{
	if (n->down_until <= now)
		log_warn("node %" PRIu32 " (%s) %s: skipping it for %d ms", n->id,
			 n->addr, why, NODE_BACKOFF_MS);
	n->down_until = now + NODE_BACKOFF_MS;
	/* A REQ socket drops a late reply to an old request. */
	for (int k = 0; k < en->c->inflight; k++)
		if (slot_of(en, n, k)->state != SLOT_IDLE)
			slot_failover(en, slot_of(en, n, k), -ETIMEDOUT);
}

/* PING @n on its probe socket, unless one is in flight. */
static void probe(struct engine *en, struct node_conn *n, uint64_t now)
{
	struct blobcr_hdr h = { .opcode = BLOBCR_OP_PING,
				.req_id = blobcr_next_req_id() };
	int sock = open_sock(en->c, n, PROBE_SOCK);
	struct blobcr_enc e;

	/* A node is probed while a request is in flight: it has a session. */
	if (n->probe_sent || !n->sess.sid || blobcr_enc_init(&e, 0))
		return;
	n->probe_sent = now;
	n->probe_id = h.req_id;
	/* Not even sent (no connection): it times out like an unanswered one. */
	if (sock >= 0 && !blobcr_seal_request(&n->sess, &e, &h, &n->probe_seq))
		nn_send(sock, e.buf, e.len, NN_DONTWAIT);
	blobcr_enc_free(&e);
}

static void probe_reply(struct node_conn *n, void *buf, int len)
{
	struct blobcr_dec d;

	if (!blobcr_check_reply(&n->sess, n->probe_seq, buf, (size_t)len,
				BLOBCR_OP_PING, n->probe_id, &d)) {
		n->last_reply = blobcr_now_ms();
		n->probe_sent = 0;
		n->slow = false;
	}
}

/*
 * @n left a PING or a handshake unanswered: dead, or only slow?  Only a
 * refused (or unreachable) connection says dead; a slow node keeps its
 * requests and their deadlines, and is probed again later.
 * Return: 0 if it may be alive, else the connection's -errno.
 */
static int node_alive(struct node_conn *n, uint64_t now)
{
	int r = blobcr_tcp_listening(n->addr, LISTEN_CHECK_MS);

	if (r < 0)
		return r;
	if (!n->slow)
		log_warn("node %" PRIu32 " (%s) is slow: no answer in %d ms, %s: "
			 "waiting for it up to the request timeout", n->id,
			 n->addr, PROBE_AFTER_MS + PROBE_TIMEOUT_MS,
			 r ? "but its port accepts connections" :
			     "nor a TCP handshake (a loaded node or client)");
	n->slow = true;
	n->last_reply = now; /* the next PING in PROBE_AFTER_MS */
	return 0;
}

/*
 * Time out the requests of a node that has answered none for the request
 * timeout, and probe the nodes that keep a request waiting without a word:
 * a node found dead either way is skipped for a while.  A node that
 * answers some keeps the others: slow, it works through its queue.
 */
static void expire(struct engine *en, uint64_t now)
{
	uint64_t timeout = (uint64_t)en->c->timeout_ms;

	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		struct node_conn *n = &en->c->nodes[ni];
		uint64_t oldest = 0;
		int err;

		for (int k = 0; k < en->c->inflight; k++) {
			struct slot *sl = slot_of(en, n, k);

			if (sl->state == SLOT_IDLE)
				continue;
			if (now - sl->sent >= timeout &&
			    now - n->last_served >= timeout) {
				node_down(en, n, now, "answered none of our "
					  "requests in the request timeout");
				break;
			}
			if (!oldest || sl->sent < oldest)
				oldest = sl->sent;
		}
		if (n->probe_sent && now - n->probe_sent > PROBE_TIMEOUT_MS) {
			n->probe_sent = 0;
			/* Its REQ socket may hold the lost PING: start afresh. */
			nn_close(n->socks[PROBE_SOCK]);
			n->socks[PROBE_SOCK] = -1;
			err = node_alive(n, now);
			if (err)
				node_down(en, n, now, err == -ECONNREFUSED ?
					  "refuses connections" : "is unreachable");
		} else if (oldest && now - oldest > PROBE_AFTER_MS &&
			   now - n->last_reply > PROBE_AFTER_MS) {
			probe(en, n, now);
		}
	}
}

static int poll_once(struct engine *en)
{
	struct nn_pollfd *pfd;
	struct { struct node_conn *n; int k; } *who;
	size_t cnt = 0, max = en->c->nnodes * (MAX_INFLIGHT + 1) + 1;
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
			struct slot *sl = slot_of(en, n, k);

			if (sl->state == SLOT_IDLE)
				continue;
			pfd[cnt].fd = n->socks[k];
			pfd[cnt].events = sl->state == SLOT_SENDING ? NN_POLLOUT :
								     NN_POLLIN;
			who[cnt].n = n;
			who[cnt++].k = k;
		}
		if (n->probe_sent && n->socks[PROBE_SOCK] >= 0) {
			pfd[cnt].fd = n->socks[PROBE_SOCK];
			pfd[cnt].events = NN_POLLIN;
			who[cnt].n = n;
			who[cnt++].k = PROBE_SOCK;
		}
	}
	r = cnt ? nn_poll(pfd, (int)cnt, 20) : 0;
	for (size_t j = 0; r > 0 && j < cnt; j++) {
		struct node_conn *n = who[j].n;
		int k = who[j].k;
		struct slot *sl;

		if (k == PROBE_SOCK) {
			void *buf = NULL;
			int len = nn_recv(n->socks[k], &buf, NN_MSG, NN_DONTWAIT);

			if (len >= 0) {
				probe_reply(n, buf, len);
				nn_freemsg(buf);
			}
			continue;
		}
		sl = slot_of(en, n, k);
		if (pfd[j].revents & NN_POLLOUT) {
			if (try_send(sl, n->socks[k]) == 0)
				sl->state = SLOT_SENT;
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

/* A handshake with one node, in flight. */
struct hello_op {
	struct node_conn *n;
	struct blobcr_hello st;
	struct blobcr_enc frame;
	uint64_t req_id, check_at, deadline;
	bool sent, done;
};

static void hello_failed(struct node_conn *n, int err)
{
	if (blobcr_auth_error(err)) {
		log_warn("node %" PRIu32 " (%s) refused our key: %s", n->id,
			 n->addr, blobcr_auth_detail());
		n->down_err = err;
	} else if (err == -ETIMEDOUT) {
		log_warn("node %" PRIu32 " (%s) did not answer its handshake in "
			 "the request timeout: skipping it for %d ms", n->id,
			 n->addr, NODE_BACKOFF_MS);
	} else if (err == -ECONNREFUSED) {
		log_warn("node %" PRIu32 " (%s) refuses connections: skipping it "
			 "for %d ms", n->id, n->addr, NODE_BACKOFF_MS);
	} else {
		log_warn("node %" PRIu32 " (%s): no session: %s: skipping it for %d ms",
			 n->id, n->addr, blobcr_strerror(err), NODE_BACKOFF_MS);
	}
	n->down_until = blobcr_now_ms() + NODE_BACKOFF_MS;
	/* The REQ socket may hold the unanswered request. */
	if (n->auth_sock >= 0)
		nn_close(n->auth_sock);
	n->auth_sock = -1;
}

static int hello_start(struct blobcr_client *c, struct hello_op *h)
{
	struct blobcr_hdr hdr = { .opcode = BLOBCR_OP_AUTH,
				  .req_id = blobcr_next_req_id() };
	int err = 0;

	if (h->n->auth_sock < 0) {
		h->n->auth_sock = blobcr_req_socket(h->n->addr, c->timeout_ms);
		if (h->n->auth_sock < 0)
			return h->n->auth_sock;
	}
	h->req_id = hdr.req_id;
	err = blobcr_enc_init(&h->frame, 256);
	if (!err)
		err = blobcr_hello_begin(c->key, c->sess_flags, &h->st, &h->frame);
	if (!err)
		err = blobcr_enc_finish(&h->frame, &hdr);
	/* The handshake is the node's probe: checked like an unanswered PING. */
	h->check_at = blobcr_now_ms() + PROBE_AFTER_MS + PROBE_TIMEOUT_MS;
	h->deadline = blobcr_now_ms() + (uint64_t)c->timeout_ms;
	return err;
}

static void hello_reply(struct blobcr_client *c, struct hello_op *h)
{
	struct blobcr_dec d;
	void *buf = NULL;
	int len = nn_recv(h->n->auth_sock, &buf, NN_MSG, NN_DONTWAIT);
	int err;

	if (len < 0)
		return;
	h->done = true;
	err = blobcr_check_reply(NULL, 0, buf, (size_t)len, BLOBCR_OP_AUTH,
				 h->req_id, &d);
	if (!err)
		err = blobcr_hello_finish(c->key, &h->st, BLOBCR_ROLE_NODE, &d,
					  &h->n->sess);
	nn_freemsg(buf);
	if (err) {
		hello_failed(h->n, err);
		return;
	}
	h->n->down_err = 0;
}

/*
 * Open sessions with the usable nodes that have ops queued and none yet,
 * all at once; a node that refuses our key or connections, or does not
 * answer within the request timeout, is skipped for a while (its ops fail
 * over).
 */
static int engine_sessions(struct engine *en)
{
	struct blobcr_client *c = en->c;
	struct hello_op *hv;
	struct nn_pollfd *pfd;
	size_t n = 0, left;

	for (size_t i = 0; i < c->nnodes; i++)
		n += c->nodes[i].qhead >= 0 && !c->nodes[i].sess.sid &&
		     client_node_usable(&c->nodes[i]);
	if (!n)
		return 0;
	hv = calloc(n, sizeof(*hv));
	pfd = calloc(n, sizeof(*pfd));
	if (!hv || !pfd) {
		free(hv);
		free(pfd);
		return -ENOMEM;
	}
	n = 0;
	for (size_t i = 0; i < c->nnodes; i++) {
		struct node_conn *nc = &c->nodes[i];
		int err;

		if (nc->qhead < 0 || nc->sess.sid || !client_node_usable(nc))
			continue;
		hv[n].n = nc;
		err = hello_start(c, &hv[n]);
		if (err) {
			hello_failed(nc, err);
			blobcr_enc_free(&hv[n].frame);
			continue;
		}
		n++;
	}
	for (left = n; left;) {
		uint64_t now = blobcr_now_ms();
		size_t cnt = 0;
		int r;

		for (size_t j = 0; j < n; j++) {
			struct hello_op *h = &hv[j];

			if (h->done)
				continue;
			if (now >= h->deadline) {
				h->done = true;
				hello_failed(h->n, -ETIMEDOUT);
				continue;
			}
			if (now >= h->check_at) {
				int err = node_alive(h->n, now);

				h->check_at = now + PROBE_AFTER_MS + PROBE_TIMEOUT_MS;
				if (err) {
					h->done = true;
					hello_failed(h->n, err);
					continue;
				}
			}
			if (!h->sent) {
				if (nn_send(h->n->auth_sock, h->frame.buf,
					    h->frame.len, NN_DONTWAIT) >= 0) {
					h->sent = true;
				} else if (nn_errno() != EAGAIN) {
					h->done = true;
					hello_failed(h->n, -nn_errno());
					continue;
				}
			}
			pfd[cnt].fd = h->n->auth_sock;
			pfd[cnt].events = h->sent ? NN_POLLIN : NN_POLLOUT;
			cnt++;
		}
		if (!cnt)
			break;
		r = nn_poll(pfd, (int)cnt, 20);
		if (r < 0 && nn_errno() != EINTR)
			break;
		for (size_t j = 0; j < n; j++)
			if (!hv[j].done && hv[j].sent)
				hello_reply(c, &hv[j]);
		left = 0;
		for (size_t j = 0; j < n; j++)
			left += !hv[j].done;
	}
	for (size_t j = 0; j < n; j++) {
		if (!hv[j].done)
			hello_failed(hv[j].n, -ETIMEDOUT);
		blobcr_enc_free(&hv[j].frame);
	}
	OPENSSL_cleanse(hv, n * sizeof(*hv));
	free(hv);
	free(pfd);
	return 0;
}

static int run(struct engine *en)
{
	int err = 0;

	en->slots = calloc(en->c->nnodes * MAX_INFLIGHT + 1, sizeof(*en->slots));
	if (!en->slots)
		return -ENOMEM;
	for (size_t ni = 0; ni < en->c->nnodes; ni++) {
		en->c->nodes[ni].qhead = en->c->nodes[ni].qtail = -1;
		en->c->nodes[ni].probe_sent = 0; /* a new PING cancels an old one */
	}
	for (size_t i = 0; i < en->nops; i++) {
		/* not riders, nor the ones a failover below queued already */
		if (en->ops[i].state != OP_NEW || en->ops[i].rider)
			continue;
		if (client_node_usable(client_node(en->c, en->ops[i].node)))
			queue_op(en, (int)i);
		else
			failover(en, (int)i, -EHOSTDOWN);
	}
	while (en->ndone < en->nops && !err) {
		err = engine_sessions(en);
		if (err)
			break;
		dispatch(en);
		err = poll_once(en);
		expire(en, blobcr_now_ms());
	}
	for (size_t i = 0; i < en->nbad; i++)
		report_suspect(en->c, en->bad[i].id, en->bad[i].node);
	return err;
}

static void engine_free(struct engine *en)
{
	for (size_t i = 0; en->slots && i < en->c->nnodes * MAX_INFLIGHT; i++)
		blobcr_enc_free(&en->slots[i].getv);
	free(en->slots);
	for (size_t i = 0; i < en->nops; i++)
		blobcr_enc_free(&en->ops[i].req);
	free(en->ops);
	free(en->bad);
	free(en->plans);
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
			     blobcr_rendezvous_score(l->id, op->cands[j - 1]) <
			     blobcr_rendezvous_score(l->id, id); j--)
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

/*
 * One op per missing copy.  The copies that count are those of the live,
 * active holders, one per domain, less one if some are in the writers'
 * (excluded) domains.  New copies go to domains not holding one, outside
 * the writers' unless a copy there already paid that one.
 */
static void put_prepare(struct engine *en, struct blobcr_put *puts, size_t n)
{
	int r = en->c->replicas;

	for (size_t i = 0; i < n; i++) {
		struct blobcr_put *p = &puts[i];
		struct put_plan *pl = &en->plans[i];
		int nexcl = p->nexclude < BLOBCR_MAX_REPLICAS ? p->nexclude :
			    BLOBCR_MAX_REPLICAS;
		uint32_t avoid[MAX_TAKEN];
		bool paid = false;
		int navoid, need;

		p->nreplicas = p->nhave;
		p->status = 0;
		for (int k = 0; k < p->nhave; k++) {
			struct node_conn *nc = client_node(en->c, p->replicas[k]);

			if (!nc || nc->state != BLOBCR_NODE_LIVE ||
			    nc->role != BLOBCR_NODE_ACTIVE || taken(pl, nc->domain))
				continue;
			take(pl, nc->domain);
			for (int x = 0; x < nexcl; x++)
				paid |= p->exclude[x] == nc->domain;
		}
		pl->counted = pl->ntaken - paid;
		navoid = pl->ntaken;
		memcpy(avoid, pl->taken, sizeof(avoid));
		for (int x = 0; !paid && x < nexcl && navoid < MAX_TAKEN; x++)
			avoid[navoid++] = p->exclude[x];
		pl->ncands = place_chunk(en->c, p->id, p->replicas, p->nhave,
					 avoid, navoid, pl->cands, MAX_CANDS);
		need = r - pl->counted;
		for (int k = 0, first = -1; k < need; k++) {
			int j = (int)en->nops++;
			struct eop *op = &en->ops[j];

			op->opcode = BLOBCR_OP_PUT;
			op->item = i;
			if (!next_cand(en->c, pl, &op->node)) {
				op->state = OP_DONE;
				op->status = -EHOSTDOWN;
				en->ndone++;
			} else if (first < 0) {
				first = j;
			} else if (en->c->forward &&
				   !client_node(en->c, en->ops[first].node)->no_fwd) {
				op->rider = true;
				en->ops[first].riders[en->ops[first].nriders++] = j;
			}
		}
	}
}

int blobcr_put_chunks(struct blobcr_client *c, struct blobcr_put *puts, size_t n)
{
	struct engine en = { .c = c, .puts = puts };
	size_t maxops = n * (size_t)c->replicas;
	int err;

	if (!n)
		return 0;
	en.ops = calloc(maxops ? maxops : 1, sizeof(*en.ops));
	en.plans = calloc(n, sizeof(*en.plans));
	if (!en.ops || !en.plans) {
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
		int have = en.plans[i].counted + puts[i].nreplicas - puts[i].nhave;

		/* Short of copies for want of nodes that answer: say so. */
		if (have >= c->replicas)
			puts[i].status = 0;
		else if (!puts[i].status || puts[i].status == -ETIMEDOUT ||
			 puts[i].status == -ECONNREFUSED)
			puts[i].status = -EHOSTDOWN;
		if (!err && puts[i].status)
			err = puts[i].status;
	}
	engine_free(&en);
	return err;
}
