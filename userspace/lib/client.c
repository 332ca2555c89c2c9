// SPDX-License-Identifier: GPL-2.0
/*
 * client.c - the client handle and the version manager's requests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/param.h>

#include <nanomsg/nn.h>

#include "blobcr_util.h"
#include "client_internal.h"

#define LOOKUP_BATCH 4096

int meta_call(struct blobcr_client *c, uint8_t op, struct blobcr_enc *e,
	      void **msg, struct blobcr_dec *d)
{
	return blobcr_peer_call(&c->meta, op, e, msg, d);
}

/* A call whose request is built by the caller and whose reply is empty. */
static int meta_simple(struct blobcr_client *c, uint8_t op, struct blobcr_enc *e)
{
	struct blobcr_dec d;
	void *msg;
	int err = meta_call(c, op, e, &msg, &d);

	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	blobcr_enc_free(e);
	return err;
}

static int enc_start(struct blobcr_enc *e, const char *name);

/*
 * How to read one kind of list reply, a page at a time: a count, that many
 * records, then whether more follow.
 */
struct list_kind {
	size_t size; /* of one decoded record */
	/* Rejects an impossible count before anything is allocated for it. */
	int (*check_count)(const struct blobcr_dec *d, uint32_t cnt);
	int (*decode)(struct blobcr_dec *d, void *rec);
	void (*release)(void *v, size_t n); /* NULL: free() */
	/* The request's cursor: the page after record @last (NULL: first). */
	void (*after)(struct blobcr_enc *e, const void *last);
};

/* Every record takes at least a byte: a larger count is a lie. */
static int count_fits_reply(const struct blobcr_dec *d, uint32_t cnt)
{
	return cnt > d->left ? -EBADMSG : 0;
}

/* Append a count and that many records to *@v (*@n of them so far). */
static int decode_records(struct blobcr_dec *d, const struct list_kind *k,
			  char **v, size_t *n)
{
	uint32_t cnt = blobcr_dec_u32(d);
	int err = d->err ? d->err : k->check_count(d, cnt);
	char *nv;

	if (err)
		return err;
	nv = realloc(*v, (*n + cnt ? *n + cnt : 1) * k->size);
	if (!nv)
		return -ENOMEM;
	/* Zeroed, so that @release may free a partly decoded array. */
	memset(nv + *n * k->size, 0, (size_t)cnt * k->size);
	*v = nv;
	for (uint32_t i = 0; !err && i < cnt; i++, (*n)++)
		err = k->decode(d, nv + *n * k->size);
	return err;
}

static void list_release(const struct list_kind *k, char *v, size_t n)
{
	if (k->release)
		k->release(v, n);
	else
		free(v);
}

/* A reply of one list, whole; on success *@out is the caller's. */
static int decode_list(struct blobcr_dec *d, const struct list_kind *k,
		       void **out, size_t *n)
{
	char *v = NULL;
	size_t total = 0;
	int err = decode_records(d, k, &v, &total);

	if (!err)
		err = blobcr_dec_end(d);
	if (err) {
		list_release(k, v, total);
		return err;
	}
	*out = v;
	*n = total;
	return 0;
}

/* Send @e (freed here) as @op and decode the reply as one list of @k. */
static int list_call_once(struct blobcr_client *c, uint8_t op,
			  struct blobcr_enc *e, const struct list_kind *k,
			  void **out, size_t *n)
{
	struct blobcr_dec d;
	void *msg;
	int err = meta_call(c, op, e, &msg, &d);

	blobcr_enc_free(e);
	if (!err)
		err = decode_list(&d, k, out, n);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/*
 * Every page of list @op (about image @name, or NULL) decoded as @k; on
 * success *@out is the caller's.
 */
static int list_call(struct blobcr_client *c, uint8_t op, const char *name,
		     const struct list_kind *k, void **out, size_t *n)
{
	char *v = NULL;
	size_t total = 0;
	bool more = true;
	int err = 0;

	while (!err && more) {
		size_t before = total;
		struct blobcr_enc e;
		struct blobcr_dec d;
		void *msg = NULL;

		err = enc_start(&e, name);
		if (err)
			break;
		k->after(&e, total ? v + (total - 1) * k->size : NULL);
		err = meta_call(c, op, &e, &msg, &d);
		blobcr_enc_free(&e);
		if (!err) {
			err = decode_records(&d, k, &v, &total);
			more = blobcr_dec_u8(&d);
			if (!err)
				err = blobcr_dec_end(&d);
		}
		if (!err && more && total == before)
			err = -EBADMSG; /* "more", and nothing: it would never end */
		if (msg)
			nn_freemsg(msg);
	}
	if (!err && !v)
		v = calloc(1, k->size);
	if (!err && !v)
		err = -ENOMEM;
	if (err) {
		list_release(k, v, total);
		return err;
	}
	*out = v;
	*n = total;
	return 0;
}

const char *blobcr_strerror(int err)
{
	switch (err) {
	case -EHOSTDOWN:
		return "not enough live storage nodes in distinct failure "
		       "domains hold the data";
	case -EAGAIN:
		return "try again (metad is rebuilding, or the commit outlasted "
		       "the gc grace period)";
	case -EBUSY:
		return "busy: another commit published first, a clone depends on "
		       "it, or it is deployed (a blobcrd holds a lease on it)";
	case -EUCLEAN:
		return "corrupt chunk";
	case -EFBIG:
		return "version too large for metad's --max-stage-mb";
	case -ETIMEDOUT:
		return "timed out (is the service running?)";
	case -EBADMSG:
		return "malformed message";
	case -ENOKEY:
		return "no key";
	case -EKEYREJECTED:
		return "key refused";
	case -EKEYEXPIRED:
		return "session expired";
	case -EACCES:
		return "permission denied";
	case -ENOBUFS:
		return "the server is too busy, try again";
	case -EALREADY:
		return "a garbage collection is running already";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

const char *blobcr_key_file(const struct blobcr_client *c)
{
	return blobcr_key_path(c->key);
}

int blobcr_replicas(const struct blobcr_client *c)
{
	return c->replicas;
}

/* ---- nodes ---- */

struct node_conn *client_node(struct blobcr_client *c, uint32_t id)
{
	for (size_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].id == id)
			return &c->nodes[i];
	return NULL;
}

bool client_node_usable(const struct node_conn *n)
{
	return n && n->state == BLOBCR_NODE_LIVE &&
	       n->role != BLOBCR_NODE_REMOVED &&
	       n->down_until <= blobcr_now_ms();
}

bool client_node_writable(const struct node_conn *n)
{
	return client_node_usable(n) && n->role == BLOBCR_NODE_ACTIVE;
}

static int decode_node(struct blobcr_dec *d, void *p)
{
	struct blobcr_node_info *ni = p;

	ni->id = blobcr_dec_u32(d);
	ni->state = blobcr_dec_u8(d);
	if (blobcr_dec_str(d, ni->addr, sizeof(ni->addr)))
		return -EBADMSG;
	ni->heartbeat_age_ms = blobcr_dec_u64(d);
	ni->capacity = blobcr_dec_u64(d);
	ni->used = blobcr_dec_u64(d);
	ni->chunks = blobcr_dec_u64(d);
	ni->role = blobcr_dec_u8(d);
	if (blobcr_dec_str(d, ni->domain, sizeof(ni->domain)))
		return -EBADMSG;
	return d->err;
}

/*
 * A node registered with a loopback address runs on the version manager's
 * host.  A client that reaches metad by another address (a guest behind
 * QEMU's user network, say) reaches such a node through that same host:
 * rewrite tcp://127.x.y.z:PORT to tcp://<metad's host>:PORT in place.
 */
static void reachable_addr(const char *meta, char *node, size_t len)
{
	const char *mhost = meta + 6, *mport = strrchr(meta, ':');
	const char *nport = strrchr(node, ':');
	char out[BLOBCR_ADDR_MAX];

	if (strncmp(meta, "tcp://", 6) || strncmp(node, "tcp://127.", 10) ||
	    !strncmp(mhost, "127.", 4) || !strncmp(mhost, "localhost:", 10) ||
	    !mport || mport < mhost || !nport)
		return;
	snprintf(out, sizeof(out), "tcp://%.*s%s", (int)(mport - mhost), mhost,
		 nport);
	snprintf(node, len, "%s", out);
}

static int node_count_ok(const struct blobcr_dec *d, uint32_t cnt)
{
	(void)d;
	return cnt > 65536 ? -EBADMSG : 0;
}

static const struct list_kind node_list = {
	.size = sizeof(struct blobcr_node_info),
	.check_count = node_count_ok,
	.decode = decode_node,
};

/* The node list reply leads with R, the replica count, before the list. */
static int node_list_raw(struct blobcr_client *c, struct blobcr_node_info **out,
			 size_t *n, int *replicas)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 0);

	if (err)
		return err;
	err = meta_call(c, BLOBCR_OP_NODE_LIST, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		*replicas = blobcr_dec_u8(&d);
		err = decode_list(&d, &node_list, (void **)out, n);
	}
	if (msg)
		nn_freemsg(msg);
	return err;
}

int blobcr_node_list(struct blobcr_client *c, struct blobcr_node_info **out,
		     size_t *n)
{
	int r;

	return node_list_raw(c, out, n, &r);
}

static void node_conn_close(struct node_conn *n)
{
	for (int i = 0; i <= MAX_INFLIGHT; i++)
		if (n->socks[i] >= 0)
			nn_close(n->socks[i]);
	if (n->auth_sock >= 0)
		nn_close(n->auth_sock);
	n->auth_sock = -1;
	memset(&n->sess, 0, sizeof(n->sess));
}

int client_refresh_nodes(struct blobcr_client *c)
{
	struct blobcr_node_info *v;
	struct node_conn *nc;
	size_t n;
	int r, err = node_list_raw(c, &v, &n, &r);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		nc = client_node(c, v[i].id);
		if (!nc) {
			nc = realloc(c->nodes, (c->nnodes + 1) * sizeof(*nc));
			if (!nc) {
				free(v);
				return -ENOMEM;
			}
			c->nodes = nc;
			nc = &c->nodes[c->nnodes++];
			memset(nc, 0, sizeof(*nc));
			nc->id = v[i].id;
			for (int k = 0; k <= MAX_INFLIGHT; k++)
				nc->socks[k] = -1;
			nc->auth_sock = -1;
		}
		reachable_addr(c->meta_addr, v[i].addr, sizeof(v[i].addr));
		if (strcmp(nc->addr, v[i].addr)) {
			node_conn_close(nc);
			for (int k = 0; k <= MAX_INFLIGHT; k++)
				nc->socks[k] = -1;
			snprintf(nc->addr, sizeof(nc->addr), "%s", v[i].addr);
		}
		nc->state = v[i].state;
		nc->role = v[i].role;
		nc->domain = blobcr_domain_hash(v[i].domain);
	}
	free(v);
	if (r < 1 || r > BLOBCR_MAX_REPLICAS)
		return -EBADMSG;
	if (!c->replicas)
		c->replicas = r;
	return 0;
}

/* ---- placement ---- */

static bool in_u32s(const uint32_t *v, int n, uint32_t x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

int place_chunk(struct blobcr_client *c, const uint8_t *id,
		const uint32_t *skip, int nskip, const uint32_t *exclude,
		int nexclude, uint32_t *out, int max)
{
	uint32_t doms[BLOBCR_MAX_REPLICAS * 4];
	int k = 0, ndoms = 0;

	/*
	 * Selection of the best @max (node counts are small): first one node
	 * per domain, so that the first R candidates are R domains; then
	 * the others, as spares.
	 */
	for (int pass = 0; pass < 2; pass++) {
		while (k < max) {
			uint64_t best_score = 0;
			int best = -1;

			for (size_t i = 0; i < c->nnodes; i++) {
				struct node_conn *n = &c->nodes[i];
				uint64_t s;

				if (!client_node_writable(n) ||
				    in_u32s(skip, nskip, n->id) ||
				    in_u32s(out, k, n->id) ||
				    in_u32s(exclude, nexclude, n->domain) ||
				    (pass == 0 && in_u32s(doms, ndoms, n->domain)))
					continue;
				s = blobcr_rendezvous_score(id, n->id);
				if (best < 0 || s > best_score) {
					best = (int)i;
					best_score = s;
				}
			}
			if (best < 0)
				break;
			out[k++] = c->nodes[best].id;
			if (pass == 0 && ndoms < (int)(sizeof(doms) / sizeof(doms[0])))
				doms[ndoms++] = c->nodes[best].domain;
		}
	}
	return k;
}

/* ---- connect ---- */

/* The writer's failure domain: given, or $BLOBCR_DOMAIN, or the host name. */
static int client_domain(struct blobcr_client *c, const char *given)
{
	char host[HOST_NAME_MAX + 1] = "";
	const char *d = given ? given : getenv("BLOBCR_DOMAIN");

	if (!d || !*d) {
		if (gethostname(host, sizeof(host)) || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		d = host;
	}
	if (!blobcr_valid_name(d, sizeof(c->domain)))
		return -EINVAL;
	snprintf(c->domain, sizeof(c->domain), "%s", d);
	c->domain_hash = blobcr_domain_hash(c->domain);
	return 0;
}

int blobcr_connect(const char *meta_addr, const struct blobcr_client_opts *opts,
		   struct blobcr_client **out)
{
	struct blobcr_client *c = calloc(1, sizeof(*c));
	const char *enc = getenv("BLOBCR_ENCRYPT");
	int err;

	if (!c)
		return -ENOMEM;
	c->meta.sock = -1;
	err = client_domain(c, opts ? opts->domain : NULL);
	if (err) {
		free(c);
		return err;
	}
	if (strlen(meta_addr) >= sizeof(c->meta_addr)) {
		free(c);
		return -ENAMETOOLONG;
	}
	strcpy(c->meta_addr, meta_addr);
	err = blobcr_key_load(opts ? opts->key_file : NULL, &c->key);
	if (err) {
		free(c);
		return err;
	}
	if ((opts && opts->encrypt) || (enc && !strcmp(enc, "1")))
		c->sess_flags = BLOBCR_SESS_ENCRYPT;
	c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
	c->inflight = opts && opts->inflight > 0 ? opts->inflight : 8;
	if (c->inflight > MAX_INFLIGHT)
		c->inflight = MAX_INFLIGHT;
	c->replicas = opts ? opts->replicas : 0;
	c->forward = !getenv("BLOBCR_PUT_FORWARD") ||
		     strcmp(getenv("BLOBCR_PUT_FORWARD"), "0");
	if (c->replicas < 0 || c->replicas > BLOBCR_MAX_REPLICAS) {
		blobcr_close(c);
		return -EINVAL;
	}
	err = blobcr_peer_open(&c->meta, meta_addr, c->key, BLOBCR_ROLE_METAD,
			       c->timeout_ms);
	if (err) {
		blobcr_close(c);
		return err;
	}
	c->meta.flags = c->sess_flags;
	err = client_refresh_nodes(c);
	if (err) {
		blobcr_close(c);
		return err;
	}
	*out = c;
	return 0;
}

void blobcr_close(struct blobcr_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nnodes; i++)
		node_conn_close(&c->nodes[i]);
	free(c->nodes);
	blobcr_peer_close(&c->meta);
	blobcr_key_free(c->key);
	free(c);
}

/* ---- images ---- */

static int enc_start(struct blobcr_enc *e, const char *name)
{
	int err = blobcr_enc_init(e, 256);

	if (!err && name)
		blobcr_enc_str(e, name);
	return err;
}

int blobcr_image_create(struct blobcr_client *c, const char *name,
			uint64_t size, uint32_t extent_size)
{
	struct blobcr_enc e;
	int err = enc_start(&e, name);

	if (err)
		return err;
	blobcr_enc_u64(&e, size);
	blobcr_enc_u32(&e, extent_size);
	return meta_simple(c, BLOBCR_OP_IMAGE_CREATE, &e);
}

int blobcr_image_clone(struct blobcr_client *c, const char *src,
		       uint32_t version, const char *dst)
{
	struct blobcr_enc e;
	int err = enc_start(&e, src);

	if (err)
		return err;
	blobcr_enc_u32(&e, version);
	blobcr_enc_str(&e, dst);
	return meta_simple(c, BLOBCR_OP_IMAGE_CLONE, &e);
}

static int decode_image(struct blobcr_dec *d, struct blobcr_image_info *ii)
{
	memset(ii, 0, sizeof(*ii));
	if (blobcr_dec_str(d, ii->name, sizeof(ii->name)))
		return -EBADMSG;
	ii->size = blobcr_dec_u64(d);
	ii->extent_size = blobcr_dec_u32(d);
	ii->latest = blobcr_dec_u32(d);
	ii->nversions = blobcr_dec_u32(d);
	if (blobcr_dec_str(d, ii->parent, sizeof(ii->parent)))
		return -EBADMSG;
	ii->parent_version = blobcr_dec_u32(d);
	ii->created = blobcr_dec_u64(d);
	return d->err;
}

int blobcr_image_info(struct blobcr_client *c, const char *name,
		      struct blobcr_image_info *out)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = enc_start(&e, name);

	if (err)
		return err;
	err = meta_call(c, BLOBCR_OP_IMAGE_INFO, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err)
		err = decode_image(&d, out);
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	return err;
}

static int decode_image_any(struct blobcr_dec *d, void *p)
{
	return decode_image(d, p);
}

static int decode_version(struct blobcr_dec *d, void *p)
{
	struct blobcr_version_info *vi = p;

	vi->version = blobcr_dec_u32(d);
	vi->base = blobcr_dec_u32(d);
	vi->time = blobcr_dec_u64(d);
	vi->changed = blobcr_dec_u64(d);
	return blobcr_dec_str(d, vi->label, sizeof(vi->label)) ?:
	       blobcr_dec_str(d, vi->group, sizeof(vi->group)) ?: d->err;
}

static void after_image(struct blobcr_enc *e, const void *last)
{
	blobcr_enc_str(e, last ? ((const struct blobcr_image_info *)last)->name : "");
}

static void after_version(struct blobcr_enc *e, const void *last)
{
	blobcr_enc_u32(e, last ? ((const struct blobcr_version_info *)last)->version : 0);
}

static const struct list_kind image_list = {
	.size = sizeof(struct blobcr_image_info),
	.check_count = count_fits_reply,
	.decode = decode_image_any,
	.after = after_image,
};

static const struct list_kind version_list = {
	.size = sizeof(struct blobcr_version_info),
	.check_count = count_fits_reply,
	.decode = decode_version,
	.after = after_version,
};

int blobcr_image_list(struct blobcr_client *c, struct blobcr_image_info **out,
		      size_t *n)
{
	return list_call(c, BLOBCR_OP_IMAGE_LIST, NULL, &image_list,
			 (void **)out, n);
}

int blobcr_version_list(struct blobcr_client *c, const char *name,
			struct blobcr_version_info **out, size_t *n)
{
	return list_call(c, BLOBCR_OP_VERSION_LIST, name, &version_list,
			 (void **)out, n);
}

int blobcr_image_delete(struct blobcr_client *c, const char *name,
			uint32_t version)
{
	struct blobcr_enc e;
	int err = enc_start(&e, name);

	if (err)
		return err;
	if (version)
		blobcr_enc_u32(&e, version);
	return meta_simple(c, version ? BLOBCR_OP_VERSION_DELETE :
					BLOBCR_OP_IMAGE_DELETE, &e);
}

/* ---- lookups ---- */

static int decode_loc(struct blobcr_dec *d, struct blobcr_extent_loc *l)
{
	const uint8_t *id;

	l->kind = blobcr_dec_u8(d);
	l->nreplicas = 0;
	if (l->kind == BLOBCR_EXT_ZERO)
		return d->err;
	if (l->kind != BLOBCR_EXT_DATA)
		return -EBADMSG;
	id = blobcr_dec_bytes(d, BLOBCR_ID_SIZE);
	l->nreplicas = blobcr_dec_u8(d);
	if (!id || l->nreplicas > BLOBCR_MAX_REPLICAS)
		return -EBADMSG;
	memcpy(l->id, id, BLOBCR_ID_SIZE);
	for (int i = 0; i < l->nreplicas; i++)
		l->replicas[i] = blobcr_dec_u32(d);
	return d->err;
}

static int lookup_batch(struct blobcr_client *c, const char *name,
			uint32_t version, const uint64_t *extents, size_t n,
			struct blobcr_extent_loc *out)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = enc_start(&e, name);

	if (err)
		return err;
	blobcr_enc_u32(&e, version);
	blobcr_enc_u32(&e, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		blobcr_enc_u64(&e, extents[i]);
	err = meta_call(c, BLOBCR_OP_LOOKUP, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		blobcr_dec_u32(&d); /* the version resolved */
		blobcr_dec_u32(&d); /* extent size */
		err = blobcr_dec_u32(&d) == n ? d.err : -EBADMSG;
	}
	for (size_t i = 0; !err && i < n; i++) {
		out[i].extent = extents[i];
		err = decode_loc(&d, &out[i]);
	}
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	return err;
}

int blobcr_lookup(struct blobcr_client *c, const char *name, uint32_t version,
		  const uint64_t *extents, size_t n,
		  struct blobcr_extent_loc *out)
{
	for (size_t off = 0; off < n; off += LOOKUP_BATCH) {
		size_t cnt = n - off < LOOKUP_BATCH ? n - off : LOOKUP_BATCH;
		int err = lookup_batch(c, name, version, extents + off, cnt,
				       out + off);

		if (err)
			return err;
	}
	return 0;
}

int chunk_locate(struct blobcr_client *c, uint64_t session,
		 const uint8_t (*ids)[BLOBCR_ID_SIZE], size_t n,
		 struct blobcr_put *out)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 12 + n * BLOBCR_ID_SIZE);

	if (err)
		return err;
	blobcr_enc_u64(&e, session);
	blobcr_enc_u32(&e, (uint32_t)n);
	blobcr_enc_bytes(&e, ids, n * BLOBCR_ID_SIZE);
	err = meta_call(c, BLOBCR_OP_CHUNK_LOCATE, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err)
		err = blobcr_dec_u32(&d) == n ? d.err : -EBADMSG;
	for (size_t i = 0; !err && i < n; i++) {
		out[i].nhave = blobcr_dec_u8(&d);
		if (out[i].nhave == CHUNK_DOOMED)
			continue; /* a gc is deleting it: ask again */
		if (out[i].nhave > BLOBCR_MAX_REPLICAS)
			err = -EBADMSG;
		for (int k = 0; !err && k < out[i].nhave; k++)
			out[i].replicas[k] = blobcr_dec_u32(&d);
		err = err ? err : d.err;
	}
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	return err;
}

void report_suspect(struct blobcr_client *c, const uint8_t *id, uint32_t node)
{
	struct blobcr_enc e;
	int err;

	if (blobcr_enc_init(&e, 40))
		return;
	blobcr_enc_bytes(&e, id, BLOBCR_ID_SIZE);
	blobcr_enc_u32(&e, node);
	err = meta_simple(c, BLOBCR_OP_CHUNK_SUSPECT, &e);
	if (err)
		log_warn("could not report a bad copy to metad: %s",
			 blobcr_strerror(err));
}

int blobcr_node_drain(struct blobcr_client *c, uint32_t id, int drain)
{
	struct blobcr_enc e;
	int err = blobcr_enc_init(&e, 8);

	if (err)
		return err;
	blobcr_enc_u32(&e, id);
	blobcr_enc_u8(&e, drain ? 1 : 0);
	return meta_simple(c, BLOBCR_OP_NODE_DRAIN, &e);
}

int blobcr_node_remove(struct blobcr_client *c, uint32_t id)
{
	struct blobcr_enc e;
	int err = blobcr_enc_init(&e, 8);

	if (err)
		return err;
	blobcr_enc_u32(&e, id);
	return meta_simple(c, BLOBCR_OP_NODE_REMOVE, &e);
}

/* ---- gc, groups ---- */

int blobcr_gc(struct blobcr_client *c, struct blobcr_gc_stats *st)
{
	struct blobcr_gc_stats s;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = blobcr_enc_init(&e, 0);

	if (err)
		return err;
	err = meta_call(c, BLOBCR_OP_GC, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		s.chunks_deleted = blobcr_dec_u64(&d);
		s.chunks_kept = blobcr_dec_u64(&d);
		s.delete_failures = blobcr_dec_u64(&d);
		s.copies_trimmed = blobcr_dec_u64(&d);
		s.strays_deleted = blobcr_dec_u64(&d);
		s.spared = blobcr_dec_u64(&d);
		err = blobcr_dec_end(&d);
	}
	if (msg)
		nn_freemsg(msg);
	if (!err && st)
		*st = s;
	return err;
}

int blobcr_lease(struct blobcr_client *c, const char *holder,
		 const char *image, uint32_t version, uint32_t ttl_ms)
{
	struct blobcr_enc e;
	int err = enc_start(&e, holder);

	if (err)
		return err;
	blobcr_enc_str(&e, image);
	blobcr_enc_u32(&e, version);
	blobcr_enc_u32(&e, ttl_ms);
	return meta_simple(c, BLOBCR_OP_LEASE, &e);
}

int blobcr_group_publish(struct blobcr_client *c, const char *name, size_t n,
			 const char *const *images, const uint32_t *versions)
{
	struct blobcr_enc e;
	int err = enc_start(&e, name);

	if (err)
		return err;
	blobcr_enc_u32(&e, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		blobcr_enc_str(&e, images[i]);
		blobcr_enc_u32(&e, versions[i]);
	}
	return meta_simple(c, BLOBCR_OP_GROUP_PUBLISH, &e);
}

/* ---- access orders ---- */

int blobcr_access_order_put(struct blobcr_client *c, const char *image,
			    uint32_t version, const uint64_t *extents, size_t n)
{
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err;

	if (!n || n > UINT32_MAX / 8)
		return -EBADMSG;
	err = enc_start(&e, image);
	if (err)
		return err;
	blobcr_enc_u32(&e, version);
	blobcr_enc_u32(&e, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		blobcr_enc_u64(&e, extents[i]);
	err = meta_call(c, BLOBCR_OP_ACCESS_PUT, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err)
		err = blobcr_dec_end(&d);
	if (msg)
		nn_freemsg(msg);
	return err;
}

/* An access order is nothing but its extents, 8 bytes each. */
static int extent_count_ok(const struct blobcr_dec *d, uint32_t cnt)
{
	return d->left != (size_t)cnt * 8 ? -EBADMSG : 0;
}

static int decode_extent(struct blobcr_dec *d, void *p)
{
	*(uint64_t *)p = blobcr_dec_u64(d);
	return 0; /* the exact count check leaves nothing to fail */
}

static const struct list_kind access_order = {
	.size = sizeof(uint64_t),
	.check_count = extent_count_ok,
	.decode = decode_extent,
};

int blobcr_access_order_get(struct blobcr_client *c, const char *image,
			    uint32_t version, uint64_t **out, size_t *n)
{
	struct blobcr_enc e;
	int err = enc_start(&e, image);

	if (err)
		return err;
	blobcr_enc_u32(&e, version);
	return list_call_once(c, BLOBCR_OP_ACCESS_GET, &e, &access_order,
			 (void **)out, n);
}

/* ---- checkpoint groups ---- */

static int decode_group(struct blobcr_dec *d, void *p)
{
	struct blobcr_group_info *g = p;

	if (blobcr_dec_str(d, g->name, sizeof(g->name)))
		return -EBADMSG;
	g->time = blobcr_dec_u64(d);
	g->nmembers = blobcr_dec_u32(d);
	if (d->err || g->nmembers > d->left / 6)
		return -EBADMSG;
	g->members = calloc(g->nmembers ? g->nmembers : 1, sizeof(*g->members));
	if (!g->members)
		return -ENOMEM;
	for (uint32_t i = 0; i < g->nmembers; i++) {
		if (blobcr_dec_str(d, g->members[i].image,
				   sizeof(g->members[i].image)))
			return -EBADMSG;
		g->members[i].version = blobcr_dec_u32(d);
	}
	return d->err;
}

void blobcr_group_list_free(struct blobcr_group_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].members);
	free(v);
}

static void group_list_release(void *v, size_t n)
{
	blobcr_group_list_free(v, n);
}

static void after_group(struct blobcr_enc *e, const void *last)
{
	blobcr_enc_str(e, last ? ((const struct blobcr_group_info *)last)->name : "");
}

static const struct list_kind group_list = {
	.size = sizeof(struct blobcr_group_info),
	.check_count = count_fits_reply,
	.decode = decode_group,
	.release = group_list_release, /* each group owns its members */
	.after = after_group,
};

int blobcr_group_list(struct blobcr_client *c, struct blobcr_group_info **out,
		      size_t *n)
{
	return list_call(c, BLOBCR_OP_GROUP_LIST, NULL, &group_list,
			 (void **)out, n);
}

int blobcr_group_delete(struct blobcr_client *c, const char *name)
{
	struct blobcr_enc e;
	int err = enc_start(&e, name);

	if (err)
		return err;
	return meta_simple(c, BLOBCR_OP_GROUP_DELETE, &e);
}
