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
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"
#include "repair.h"

/* ---- dispatch ---- */

static int handle(void *ctx, const struct blobcr_hdr *h, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct metad *m = ctx;

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
		"  -r, --replicas R           replicas per chunk (default 2)\n"
		"  -D, --dead-after-ms N      a node without heartbeat for N ms is dead\n"
		"                             (default 5000)\n"
		"  -T, --node-timeout-ms N    timeout of gc deletes on nodes (default 10000)\n"
		"  -R, --repair-interval-s N  while a node is dead or copies were lost,\n"
		"                             re-replicate every N s (default 10, 0: only\n"
		"                             on request)\n"
		"  -S, --max-stage-mb N       memory for versions being published in parts\n"
		"                             (default 4096): a bigger one is refused\n"
		"  -I, --reconcile-interval-s N\n"
		"                             compare every node's inventory with the\n"
		"                             locations every N s (default 3600; 0: only\n"
		"                             when a node joins or comes back)\n"
		"      --test-publish-delay-ms N\n"
		"                             test hook: stall each publish N ms before commit\n"
		"  -v, --verbose              debug logging\n"
		"  -h, --help                 this help\n");
}

static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	return blobcr_parse_u64(s, out) || *out > max ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct metad *m,
		      const char **listen, const char **data, int *verbose)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "dead-after-ms", required_argument, NULL, 'D' },
		{ "node-timeout-ms", required_argument, NULL, 'T' },
		{ "repair-interval-s", required_argument, NULL, 'R' },
		{ "reconcile-interval-s", required_argument, NULL, 'I' },
		{ "max-stage-mb", required_argument, NULL, 'S' },
		{ "test-publish-delay-ms", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "l:d:r:D:T:R:I:S:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l': *listen = optarg; break;
		case 'd': *data = optarg; break;
		case 'v': *verbose = 1; break;
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
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!*listen || !*data || optind != argc) {
		fprintf(stderr, "blobcr-metad: --listen and --data are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "blobcr-metad: bad value '%s' for -%c\n", optarg, c);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct metad m = { .replicas = 2, .dead_after_ms = 5000,
			   .node_timeout_ms = 10000, .repair_s = 10,
			   .reconcile_s = 3600,
			   .max_staged_bytes = (uint64_t)4096 << 20 };
	struct repairer rep;
	pthread_t upkeep;
	const char *listen = NULL, *data = NULL;
	int verbose = 0, err;

	if (parse_args(argc, argv, &m, &listen, &data, &verbose))
		return 2;
	blobcr_log_init("blobcr-metad", verbose ? BLOBCR_LOG_DEBUG : BLOBCR_LOG_INFO);
	if (blobcr_signals_init(&m.stop))
		return 1;
	m.nodes = calloc(MAX_NODES, sizeof(*m.nodes));
	if (!m.nodes || pthread_mutex_init(&m.nodes_mu, NULL) ||
	    pthread_mutex_init(&m.gc_mu, NULL) ||
	    pthread_mutex_init(&m.upkeep_mu, NULL) ||
	    pthread_mutex_init(&m.stage_mu, NULL) ||
	    pthread_cond_init(&m.upkeep_cv, NULL)) {
		log_err("out of memory");
		return 1;
	}
	err = db_open(data, &m.db);
	if (err) {
		log_err("cannot open the database in %s: %s", data, strerror(-err));
		return 1;
	}
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
	m.srv = (struct blobcr_server){ .addr = listen, .threads = SERVER_THREADS,
					.handler = handle, .ctx = &m,
					.stop = &m.stop };
	if (upkeep_start(&m, &upkeep)) {
		log_err("cannot start the upkeep thread");
		db_close(&m.db);
		return 1;
	}
	if (m.repair_s && repairer_start(&rep, listen, m.repair_s,
					 &m.repair_events, &m.stop)) {
		log_err("cannot start the re-replication thread");
		__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
		pthread_join(upkeep, NULL);
		db_close(&m.db);
		return 1;
	}
	log_info("serving %s from %s, %d replicas per chunk", listen, data,
		 m.replicas);
	err = blobcr_server_run(&m.srv);
	if (err)
		log_err("cannot serve %s: %s", listen, strerror(-err));
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
	if (m.repair_s)
		repairer_join(&rep);
	upkeep_kick(&m);
	pthread_join(upkeep, NULL);
	stages_free(&m);
	db_close(&m.db);
	free(m.nodes);
	log_info("stopped");
	return err ? 1 : 0;
}
