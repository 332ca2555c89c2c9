// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-metad - the version manager of the dm-blobcr repository: images,
 * versions, the extent map, chunk locations, storage nodes, checkpoint
 * groups and garbage collection, in LMDB (db.h), served over nanomsg.
 *
 * Several threads serve requests: lookups go on while a publish or a gc
 * runs, and LMDB serializes the write transactions.  Each mutating request
 * is one LMDB write transaction: it is durable when the reply is sent, and a
 * crash before the commit leaves no trace of it.
 *
 * Shared state outside LMDB: the node table, append-only (entries never
 * move; nnodes and the heartbeat fields are read and written atomically;
 * appends under nodes_mu), and gc_mu, which lets one gc run at a time.
 *
 * Every request comes in a session opened with a key of the repository
 * (blobcr_auth.h); the role table below says which role may send what,
 * and which requests are heavy: those run on workers of their own, so
 * that heartbeats and lookups are never stuck behind them.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_conf.h"
#include "blobcr_notify.h"
#include "blobcr_util.h"
#include "metad.h"
#include "repair.h"

/* ---- who may send what ---- */

#define READERS (BLOBCR_ROLE_HOST | BLOBCR_ROLE_ADMIN | BLOBCR_ROLE_METAD)
#define WRITERS (BLOBCR_ROLE_HOST | BLOBCR_ROLE_ADMIN)
#define KEEPERS (BLOBCR_ROLE_ADMIN | BLOBCR_ROLE_METAD)

static const struct blobcr_op_rule rules[] = {
	{ BLOBCR_OP_PING, false, BLOBCR_ROLE_ANY, 0 },
	{ BLOBCR_OP_NODE_HEARTBEAT, false, BLOBCR_ROLE_NODE, 1024 },
	/* nodes too: a node forwards chunks only to nodes metad lists */
	{ BLOBCR_OP_NODE_LIST, false, READERS | BLOBCR_ROLE_NODE, 0 },
	{ BLOBCR_OP_IMAGE_CREATE, true, WRITERS, 0 },
	{ BLOBCR_OP_IMAGE_CLONE, true, WRITERS, 0 },
	{ BLOBCR_OP_IMAGE_LIST, false, READERS, 0 },
	{ BLOBCR_OP_IMAGE_INFO, false, READERS, 0 },
	{ BLOBCR_OP_VERSION_LIST, false, READERS, 0 },
	{ BLOBCR_OP_LOOKUP, false, READERS, 0 },
	{ BLOBCR_OP_CHUNK_LOCATE, false, READERS, 0 },
	{ BLOBCR_OP_PUBLISH, true, WRITERS, 0 },
	{ BLOBCR_OP_VERSION_DELETE, true, BLOBCR_ROLE_ADMIN, 0 },
	{ BLOBCR_OP_IMAGE_DELETE, true, BLOBCR_ROLE_ADMIN, 0 },
	{ BLOBCR_OP_GC, true, BLOBCR_ROLE_ADMIN, 0 },
	{ BLOBCR_OP_CHUNK_ADD_LOCATIONS, true, READERS, 0 },
	{ BLOBCR_OP_CHUNK_SUSPECT, true, READERS, 0 },
	{ BLOBCR_OP_UNDER_REPLICATED, false, KEEPERS, 0 },
	{ BLOBCR_OP_GROUP_PUBLISH, true, WRITERS, 0 },
	{ BLOBCR_OP_GROUP_LIST, false, READERS, 0 },
	{ BLOBCR_OP_ACCESS_PUT, true, WRITERS, 0 },
	{ BLOBCR_OP_ACCESS_GET, false, WRITERS, 0 },
	{ BLOBCR_OP_NODE_DRAIN, true, BLOBCR_ROLE_ADMIN, 0 },
	{ BLOBCR_OP_NODE_REMOVE, true, BLOBCR_ROLE_ADMIN, 0 },
	{ BLOBCR_OP_NODE_BAD_CHUNKS, true, BLOBCR_ROLE_NODE, 0 },
	{ BLOBCR_OP_PUBLISH_BEGIN, true, WRITERS, 0 },
	{ BLOBCR_OP_PUBLISH_PART, true, WRITERS, 0 },
	{ BLOBCR_OP_PUBLISH_COMMIT, true, WRITERS, 0 },
	{ BLOBCR_OP_PUBLISH_ABORT, true, WRITERS, 0 },
	{ BLOBCR_OP_LEASE, true, WRITERS, 0 },
	{ BLOBCR_OP_GROUP_DELETE, true, BLOBCR_ROLE_ADMIN, 0 },
};

/* ---- dispatch ---- */

static int handle(void *ctx, const struct blobcr_hdr *h, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct metad *m = ctx;

	/* While the database is rebuilt, only the nodes are heard. */
	if (__atomic_load_n(&m->rebuilding, __ATOMIC_ACQUIRE) &&
	    h->opcode != BLOBCR_OP_PING && h->opcode != BLOBCR_OP_NODE_HEARTBEAT &&
	    h->opcode != BLOBCR_OP_NODE_LIST &&
	    h->opcode != BLOBCR_OP_NODE_BAD_CHUNKS)
		return -EAGAIN;
	switch (h->opcode) {
	case BLOBCR_OP_PING:
		return blobcr_dec_end(req);
	case BLOBCR_OP_NODE_HEARTBEAT:
		return do_heartbeat(m, req, reply);
	case BLOBCR_OP_NODE_LIST:
		return do_node_list(m, req, reply);
	case BLOBCR_OP_IMAGE_CREATE:
		return do_image_create(m, req);
	case BLOBCR_OP_IMAGE_CLONE:
		return do_image_clone(m, req);
	case BLOBCR_OP_IMAGE_LIST:
		return do_image_list(m, req, reply);
	case BLOBCR_OP_IMAGE_INFO:
		return do_image_info(m, req, reply);
	case BLOBCR_OP_VERSION_LIST:
		return do_version_list(m, req, reply);
	case BLOBCR_OP_LOOKUP:
		return do_lookup(m, req, reply);
	case BLOBCR_OP_CHUNK_LOCATE:
		return do_chunk_locate(m, req, reply);
	case BLOBCR_OP_PUBLISH:
		return do_publish(m, req, reply);
	case BLOBCR_OP_PUBLISH_BEGIN:
		return do_publish_begin(m, req, reply);
	case BLOBCR_OP_PUBLISH_PART:
		return do_publish_part(m, req);
	case BLOBCR_OP_PUBLISH_COMMIT:
		return do_publish_commit(m, req, reply);
	case BLOBCR_OP_PUBLISH_ABORT:
		return do_publish_abort(m, req);
	case BLOBCR_OP_LEASE:
		return do_lease(m, req);
	case BLOBCR_OP_VERSION_DELETE:
	case BLOBCR_OP_IMAGE_DELETE:
		return do_image_delete(m, req, h->opcode);
	case BLOBCR_OP_GC:
		return do_gc(m, req, reply);
	case BLOBCR_OP_CHUNK_ADD_LOCATIONS:
		return do_chunk_add_locations(m, req, reply);
	case BLOBCR_OP_CHUNK_SUSPECT:
		return do_chunk_suspect(m, req);
	case BLOBCR_OP_UNDER_REPLICATED:
		return do_under_replicated(m, req, reply);
	case BLOBCR_OP_GROUP_PUBLISH:
		return do_group_publish(m, req);
	case BLOBCR_OP_GROUP_LIST:
		return do_group_list(m, req, reply);
	case BLOBCR_OP_GROUP_DELETE:
		return do_group_delete(m, req);
	case BLOBCR_OP_ACCESS_PUT:
		return do_access_put(m, req);
	case BLOBCR_OP_ACCESS_GET:
		return do_access_get(m, req, reply);
	case BLOBCR_OP_NODE_DRAIN:
		return do_node_drain(m, req);
	case BLOBCR_OP_NODE_REMOVE:
		return do_node_remove(m, req);
	case BLOBCR_OP_NODE_BAD_CHUNKS:
		return do_node_bad_chunks(m, req);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blobcr-metad --listen ADDR --data DIR [options]\n"
		"The version manager of the dm-blobcr repository.\n\n"
		"  -l, --listen ADDR          nanomsg address to serve (tcp://IP:PORT)\n"
		"  -d, --data DIR             directory of the LMDB database\n"
		"  -k, --key FILE             metad's private key, role metad (default\n"
		"                             $BLOBCR_KEY); keys.pub beside it lists who\n"
		"                             may talk to metad, and as what\n"
		"  -e, --encrypt              encrypt every session's payloads\n"
		"  -r, --replicas R           replicas per chunk (default 2)\n"
		"  -D, --dead-after-ms N      a node without heartbeat for N ms is dead\n"
		"                             (default 5000)\n"
		"  -T, --node-timeout-ms N    timeout of gc deletes on nodes (default 10000)\n"
		"  -R, --repair-interval-s N  while a node is dead or copies were lost,\n"
		"                             re-replicate every N s (default 10, 0: only\n"
		"                             on request)\n"
		"      --rebuild              make an empty --data's database again from\n"
		"                             the manifests the storage nodes keep, once\n"
		"                             they have joined, then serve\n"
		"      --rebuild-wait-s N     wait at most N s for the nodes to join\n"
		"                             (default 60)\n"
		"  -S, --max-stage-mb N       memory for versions being published in parts\n"
		"                             (default 4096): a bigger one is refused\n"
		"  -I, --reconcile-interval-s N\n"
		"                             compare every node's inventory with the\n"
		"                             locations every N s (default 3600; 0: only\n"
		"                             when a node joins or comes back)\n"
		"      --map-mb N             the database's map to begin with (default\n"
		"                             16384); it doubles whenever more than half\n"
		"                             used\n"
		"  -G, --gc-grace-s N         a commit idle N s is taken for dead, and\n"
		"                             what it uploaded but never published is\n"
		"                             collected N s after a node reported it\n"
		"                             (default 3600)\n"
		"      --gc-start-wait-s N    after a start, gc deletes no chunk for N s:\n"
		"                             the commits in flight may still count on\n"
		"                             what they found (default: --gc-grace-s)\n"
		"      --test-list-page-bytes N\n"
		"                             test hook: list replies in pages of N bytes\n"
		"      --test-gc-pause PATH   test hook: each gc waits after its mark\n"
		"                             while PATH.mark exists, before its deletes\n"
		"                             while PATH.delete exists\n"
		"      --test-rebuild-pause N test hook: a rebuild stops after N steps\n"
		"                             (a node read, a manifest applied) until\n"
		"                             killed\n"
		"      --test-publish-delay-ms N\n"
		"                             test hook: stall each publish N ms before commit\n"
		"      --test-gc-delay-ms N   test hook: stall each gc N ms before its deletes\n"
		"      --test-drop-reply OP[:N]\n"
		"                             test hook: the next N (default 1) replies\n"
		"                             to request OP (e.g. CHUNK_LOCATE) go unsent\n"
		"      --config FILE          settings, one OPTION = VALUE a line\n"
		"                             (blobcr.conf(5); default\n"
		"                             %s/metad.conf): options given\n"
		"                             here override them\n"
		"  -v, --verbose              debug logging\n"
		"  -h, --help                 this help\n", blobcr_config_dir);
}

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	return blobcr_parse_u64(s, out) || *out > max ? -EINVAL : 0;
}

/* --test-drop-reply OP[:N]: the opcode by its name, N replies. */
static int parse_drop_reply(const char *arg, struct blobcr_server *srv)
{
	const char *colon = strchr(arg, ':');
	size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
	uint64_t n = 1;

	if (colon && parse_num(colon + 1, 1000000, &n))
		return -EINVAL;
	for (unsigned int op = 1; op < 256; op++) {
		const char *name = blobcr_op_name(op);

		if (strlen(name) == len && !strncmp(name, arg, len)) {
			srv->test_drop_op = (uint8_t)op;
			srv->test_drop_replies = (int)n;
			return 0;
		}
	}
	return -EINVAL;
}

struct metad_args {
	const char *listen, *data, *key;
	bool encrypt;
	int verbose;
	int rebuild;
};

static int parse_args(int argc, char **argv, struct metad *m,
		      struct metad_args *a)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "encrypt", no_argument, NULL, 'e' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "dead-after-ms", required_argument, NULL, 'D' },
		{ "node-timeout-ms", required_argument, NULL, 'T' },
		{ "repair-interval-s", required_argument, NULL, 'R' },
		{ "reconcile-interval-s", required_argument, NULL, 'I' },
		{ "max-stage-mb", required_argument, NULL, 'S' },
		{ "rebuild", no_argument, NULL, 'B' },
		{ "gc-grace-s", required_argument, NULL, 'G' },
		{ "map-mb", required_argument, NULL, 'M' },
		{ "gc-start-wait-s", required_argument, NULL, 'g' },
		{ "test-gc-pause", required_argument, NULL, 'Q' },
		{ "test-rebuild-pause", required_argument, NULL, 'U' },
		{ "test-list-page-bytes", required_argument, NULL, 'L' },
		{ "rebuild-wait-s", required_argument, NULL, 'W' },
		{ "test-publish-delay-ms", required_argument, NULL, 'P' },
		{ "test-gc-delay-ms", required_argument, NULL, 'Y' },
		{ "test-drop-reply", required_argument, NULL, 'Z' },
		{ "config", required_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct blobcr_conf_env env[] = {
		{ "key", "BLOBCR_KEY" }, { NULL, NULL },
	};
	uint64_t v;
	int c;

	if (blobcr_conf_args("metad", opts, env, &argc, &argv))
		return -EINVAL;
	while ((c = getopt_long(argc, argv, "l:d:k:er:D:T:R:I:S:G:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'F': break; /* read by blobcr_conf_args() */
		case 'l': a->listen = optarg; break;
		case 'd': a->data = optarg; break;
		case 'k': a->key = optarg; break;
		case 'e': a->encrypt = true; break;
		case 'v': a->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'r':
			if (parse_num(optarg, BLOBCR_MAX_REPLICAS, &v) || !v)
				goto bad;
			m->replicas = (int)v;
			break;
		case 'D':
			if (parse_num(optarg, 3600000, &v) || !v)
				goto bad;
			m->dead_after_ms = v;
			break;
		case 'T':
			if (parse_num(optarg, 3600000, &v) || !v)
				goto bad;
			m->node_timeout_ms = (int)v;
			break;
		case 'R':
			if (parse_num(optarg, 86400, &v))
				goto bad;
			m->repair_s = (int)v;
			break;
		case 'B':
			a->rebuild = 1;
			break;
		case 'G':
			if (parse_num(optarg, 86400 * 30, &v))
				goto bad;
			m->gc_grace_ms = v * 1000;
			break;
		case 'g':
			if (parse_num(optarg, 86400 * 30, &v))
				goto bad;
			m->gc_start_wait_ms = v * 1000;
			break;
		case 'Q':
			m->gc_pause = optarg;
			break;
		case 'U':
			if (parse_num(optarg, UINT32_MAX, &v) || !v)
				goto bad;
			m->rebuild_pause = v;
			break;
		case 'M':
			if (parse_num(optarg, (uint64_t)1 << 26, &v) || !v)
				goto bad;
			m->map_bytes = (size_t)v << 20;
			break;
		case 'L':
			if (parse_num(optarg, LIST_PAGE_BYTES, &v) || !v)
				goto bad;
			m->list_page_bytes = v;
			break;
		case 'W':
			if (parse_num(optarg, 86400, &v) || !v)
				goto bad;
			m->rebuild_wait_s = (int)v;
			break;
		case 'S':
			if (parse_num(optarg, 1u << 20, &v) || !v)
				goto bad;
			m->max_staged_bytes = v << 20;
			break;
		case 'I':
			if (parse_num(optarg, 86400 * 30, &v))
				goto bad;
			m->reconcile_s = (int)v;
			break;
		case 'P':
			if (parse_num(optarg, 3600000, &v))
				goto bad;
			m->publish_delay_ms = (int)v;
			break;
		case 'Y':
			if (parse_num(optarg, 3600000, &v))
				goto bad;
			m->gc_delay_ms = (int)v;
			break;
		case 'Z':
			if (parse_drop_reply(optarg, &m->srv))
				goto bad;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!a->listen || !a->data || optind != argc) {
		fprintf(stderr, "blobcr-metad: --listen and --data are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	blobcr_conf_bad(opts, c, NULL);
	return -EINVAL;
}

/* metad's key (role metad) and the sessions of its clients. */
static int auth_init(struct metad *m, const struct metad_args *a)
{
	int err = blobcr_key_load(a->key, &m->key);

	if (!err && blobcr_key_role(m->key) != BLOBCR_ROLE_METAD) {
		blobcr_auth_set_detail("key '%s' has role %s, metad needs role metad",
				       blobcr_key_name(m->key),
				       blobcr_role_name(blobcr_key_role(m->key)));
		err = -EKEYREJECTED;
	}
	if (!err)
		err = blobcr_authsrv_new(m->key, a->encrypt ? BLOBCR_SESS_ENCRYPT : 0,
					 &m->srv.auth);
	if (err)
		log_err("cannot start: %s", blobcr_auth_detail()[0] ?
			blobcr_auth_detail() : strerror(-err));
	return err;
}

/* What metad serves: its handler and role table (fuzz_metad.c too). */
static void server_setup(struct metad *m)
{
	m->srv.handler = handle;
	m->srv.ctx = m;
	m->srv.rules = rules;
	m->srv.nrules = sizeof(rules) / sizeof(rules[0]);
	m->srv.stop = &m->stop;
}

/* Writers first: publishes must not keep a gc from its snapshot. */
static int wanted_rwlock_init(pthread_rwlock_t *rw)
{
	pthread_rwlockattr_t a;
	int err = pthread_rwlockattr_init(&a);

	if (!err)
		err = pthread_rwlockattr_setkind_np(&a,
				PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (!err)
		err = pthread_rwlock_init(rw, &a);
	pthread_rwlockattr_destroy(&a);
	return err;
}

int main(int argc, char **argv)
{
	struct metad m = { .replicas = 2, .dead_after_ms = 5000,
			   .node_timeout_ms = 10000, .repair_s = 10,
			   .reconcile_s = 3600,
			   .max_staged_bytes = (uint64_t)4096 << 20,
			   .rebuild_wait_s = 60,
			   .gc_grace_ms = 3600 * 1000,
			   .gc_start_wait_ms = UINT64_MAX,
			   .list_page_bytes = LIST_PAGE_BYTES,
			   .map_bytes = (size_t)16 << 30 };
	struct metad_args a = { 0 };
	struct repairer rep;
	pthread_t upkeep, rebuilder;
	const char *listen, *data;
	int err, resume;

	if (parse_args(argc, argv, &m, &a))
		return 2;
	listen = a.listen;
	data = a.data;
	blobcr_log_init("blobcr-metad", a.verbose ? BLOBCR_LOG_DEBUG : BLOBCR_LOG_INFO);
	if (blobcr_signals_init(&m.stop) || auth_init(&m, &a))
		return 1;
	m.nodes = calloc(MAX_NODES, sizeof(*m.nodes));
	if (!m.nodes || pthread_mutex_init(&m.nodes_mu, NULL) ||
	    pthread_mutex_init(&m.gc_mu, NULL) ||
	    pthread_mutex_init(&m.upkeep_mu, NULL) ||
	    pthread_mutex_init(&m.stage_mu, NULL) ||
	    pthread_mutex_init(&m.manifest_mu, NULL) ||
	    pthread_mutex_init(&m.wanted.mu, NULL) ||
	    wanted_rwlock_init(&m.wanted.mark_rw) ||
	    pthread_cond_init(&m.upkeep_cv, NULL)) {
		log_err("out of memory");
		return 1;
	}
	err = db_open(data, &m.db, m.map_bytes);
	if (err) {
		log_err("cannot open the database in %s: %s", data, strerror(-err));
		return 1;
	}
	m.started_ms = blobcr_now_ms();
	if (m.gc_start_wait_ms == UINT64_MAX)
		m.gc_start_wait_ms = m.gc_grace_ms;
	/* Stage ids from before a restart are never reused. */
	m.next_stage = blobcr_wall_s() << 20;
	err = load_nodes(&m);
	if (!err)
		err = resume_gc(&m);
	if (err) {
		log_err("cannot start: %s", strerror(-err));
		db_close(&m.db);
		return 1;
	}
	m.srv.addr = listen;
	m.srv.threads = SERVER_THREADS;
	m.srv.heavy_threads = HEAVY_THREADS;
	server_setup(&m);
	m.srv.ready = blobcr_notify_serving;
	resume = rebuild_interrupted(&m);
	if (resume < 0) {
		log_err("cannot open the database in %s: %s", data, strerror(-resume));
		db_close(&m.db);
		return 1;
	}
	if (resume)
		log_warn("a rebuild was interrupted: doing it again before serving");
	a.rebuild |= resume;
	if (a.rebuild && (err = rebuild_start(&m, &rebuilder))) {
		log_err("cannot rebuild: %s", err == -ENOTEMPTY ?
			"the database in --data holds images: rebuild into an "
			"empty directory" : strerror(-err));
		db_close(&m.db);
		return 1;
	}
	if (upkeep_start(&m, &upkeep)) {
		log_err("cannot start the upkeep thread");
		db_close(&m.db);
		return 1;
	}
	if (m.repair_s && repairer_start(&rep, listen, blobcr_key_path(m.key),
					 m.repair_s, &m.repair_events, &m.stop)) {
		log_err("cannot start the re-replication thread");
		__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
		pthread_join(upkeep, NULL);
		db_close(&m.db);
		return 1;
	}
	log_info("serving %s from %s, %d replicas per chunk, as key %s%s",
		 listen, data, m.replicas, blobcr_key_name(m.key),
		 a.encrypt ? ", encrypted" : "");
	err = blobcr_server_run(&m.srv);
	if (err)
		log_err("cannot serve %s: %s", listen, strerror(-err));
	else
		blobcr_notify_stopping();
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
	if (m.repair_s)
		repairer_join(&rep);
	upkeep_kick(&m);
	pthread_join(upkeep, NULL);
	if (a.rebuild)
		pthread_join(rebuilder, NULL);
	stages_free(&m);
	sessions_free(&m);
	db_close(&m.db);
	free(m.nodes);
	blobcr_authsrv_free(m.srv.auth);
	blobcr_key_free(m.key);
	log_info("stopped");
	return err ? 1 : 0;
}
