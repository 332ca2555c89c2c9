// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-noded - a storage node of the dm-blobcr repository: serves the
 * chunk store (store.h) over a nanomsg REP socket and heartbeats to the
 * version manager.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "store.h"

struct noded {
	struct store *st;
	struct blobcr_server srv;
	const char *meta; /* version manager, NULL: standalone */
	const char *advertise; /* address metad hands to clients */
	int heartbeat_ms;
	int compact_s; /* period of background compaction, 0: never */
	volatile sig_atomic_t stop;
};

static int do_put(struct noded *nd, struct blobcr_dec *req)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	uint32_t len = blobcr_dec_u32(req);
	const uint8_t *data = blobcr_dec_bytes(req, len);
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	err = store_put(nd->st, id, data, len);
	if (err && err != -EINVAL)
		log_warn("PUT of %" PRIu32 " bytes failed: %s", len,
			 strerror(-err));
	return err;
}

static int do_get(struct noded *nd, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	const uint8_t *id = blobcr_dec_bytes(req, BLOBCR_ID_SIZE);
	int64_t len;
	uint8_t *buf;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	len = store_get_len(nd->st, id);
	if (len < 0)
		return (int)len;
	if (blobcr_enc_grow(reply, (size_t)len))
		return reply->err;
	buf = blobcr_enc_reserve(reply, (size_t)len);
	if (!buf)
		return reply->err;
	len = store_get(nd->st, id, buf, (uint32_t)len, &reply->crc);
	if (len < 0)
		return (int)len;
	/* The payload is the chunk: its stored, just verified CRC is the frame's. */
	reply->crc_known = (size_t)len == reply->len - BLOBCR_HDR_SIZE;
	return 0;
}

/* HAS, DELETE and GETV carry a count then that many ids. */
static int decode_ids(struct blobcr_dec *req, const uint8_t **ids, uint32_t *n)
{
	*n = blobcr_dec_u32(req);
	if (*n > BLOBCR_MAX_PAYLOAD / BLOBCR_ID_SIZE)
		return -EMSGSIZE;
	*ids = blobcr_dec_bytes(req, (size_t)*n * BLOBCR_ID_SIZE);
	return blobcr_dec_end(req);
}

/*
 * GETV: several chunks in one reply, each as status (0 or -errno), length
 * and bytes, so that one message carries many chunks.  A chunk that would
 * overflow the frame is answered -E2BIG.
 */
static int do_getv(struct noded *nd, struct blobcr_dec *req,
		   struct blobcr_enc *reply)
{
	const uint8_t *ids;
	uint32_t n;
	int err = decode_ids(req, &ids, &n);

	size_t total = 4;

	if (!err && n > BLOBCR_GETV_MAX)
		err = -EMSGSIZE;
	if (err)
		return err;
	/* Size the reply once: growing it step by step copies it each time. */
	for (uint32_t i = 0; i < n; i++) {
		int64_t len = store_get_len(nd->st, ids + (size_t)i * BLOBCR_ID_SIZE);

		total += 8 + (len > 0 ? (size_t)len : 0);
	}
	if (blobcr_enc_grow(reply, total < BLOBCR_MAX_PAYLOAD ? total :
				   BLOBCR_MAX_PAYLOAD))
		return reply->err;
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n && !reply->err; i++) {
		const uint8_t *id = ids + (size_t)i * BLOBCR_ID_SIZE;
		int64_t len = store_get_len(nd->st, id);
		size_t at = reply->len; /* the buffer may move: keep offsets */
		uint8_t *buf;

		if (len >= 0 && at + 8 + (size_t)len > BLOBCR_MAX_FRAME)
			len = -E2BIG;
		blobcr_enc_u32(reply, (uint32_t)(len < 0 ? len : 0));
		blobcr_enc_u32(reply, 0);
		if (len < 0)
			continue;
		buf = blobcr_enc_reserve(reply, (size_t)len);
		if (!buf)
			break;
		len = store_get(nd->st, id, buf, (uint32_t)len, NULL);
		if (len < 0) {
			/* Not served after all: status set, the bytes dropped. */
			reply->len = at + 8;
			buf = reply->buf + at;
			buf[0] = (uint8_t)((uint32_t)len >> 24);
			buf[1] = (uint8_t)((uint32_t)len >> 16);
			buf[2] = (uint8_t)((uint32_t)len >> 8);
			buf[3] = (uint8_t)len;
			continue;
		}
		buf = reply->buf + at + 4;
		buf[0] = (uint8_t)(len >> 24);
		buf[1] = (uint8_t)(len >> 16);
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
	}
	return reply->err;
}

static int do_has(struct noded *nd, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	const uint8_t *ids;
	uint32_t n;
	int err = decode_ids(req, &ids, &n);

	if (err)
		return err;
	blobcr_enc_u32(reply, n);
	for (uint32_t i = 0; i < n; i++) {
		int r = store_has(nd->st, ids + (size_t)i * BLOBCR_ID_SIZE);

		if (r < 0)
			return r;
		blobcr_enc_u8(reply, (uint8_t)r);
	}
	return reply->err;
}

static int do_delete(struct noded *nd, struct blobcr_dec *req,
		     struct blobcr_enc *reply)
{
	const uint8_t *ids;
	uint32_t n, deleted = 0;
	int err = decode_ids(req, &ids, &n);

	if (err)
		return err;
	for (uint32_t i = 0; i < n; i++) {
		int r = store_delete(nd->st, ids + (size_t)i * BLOBCR_ID_SIZE);

		if (r < 0)
			return r;
		deleted += (uint32_t)r;
	}
	blobcr_enc_u32(reply, deleted);
	return reply->err;
}

static int do_stat(struct noded *nd, struct blobcr_dec *req,
		   struct blobcr_enc *reply)
{
	struct store_stat s;
	int err = blobcr_dec_end(req);

	if (!err)
		err = store_stat(nd->st, &s);
	if (err)
		return err;
	blobcr_enc_u64(reply, s.chunks);
	blobcr_enc_u64(reply, s.live_bytes);
	blobcr_enc_u64(reply, s.used_bytes);
	blobcr_enc_u64(reply, s.capacity);
	blobcr_enc_u64(reply, s.segments);
	blobcr_enc_u64(reply, s.corrupt);
	blobcr_enc_u64(reply, __atomic_load_n(&nd->srv.requests, __ATOMIC_RELAXED));
	blobcr_enc_u64(reply, __atomic_load_n(&nd->srv.malformed, __ATOMIC_RELAXED));
	return reply->err;
}

static int do_compact(struct noded *nd, struct blobcr_dec *req,
		      struct blobcr_enc *reply)
{
	int64_t r;
	int err = blobcr_dec_end(req);

	if (err)
		return err;
	r = store_compact(nd->st);
	if (r < 0)
		return (int)r;
	blobcr_enc_u64(reply, (uint64_t)r);
	return reply->err;
}

static int handle(void *ctx, const struct blobcr_hdr *h, struct blobcr_dec *req,
		  struct blobcr_enc *reply)
{
	struct noded *nd = ctx;

	switch (h->opcode) {
	case BLOBCR_OP_PING:
		return blobcr_dec_end(req);
	case BLOBCR_OP_PUT:
		return do_put(nd, req);
	case BLOBCR_OP_GET:
		return do_get(nd, req, reply);
	case BLOBCR_OP_GETV:
		return do_getv(nd, req, reply);
	case BLOBCR_OP_HAS:
		return do_has(nd, req, reply);
	case BLOBCR_OP_DELETE:
		return do_delete(nd, req, reply);
	case BLOBCR_OP_STAT:
		return do_stat(nd, req, reply);
	case BLOBCR_OP_COMPACT:
		return do_compact(nd, req, reply);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- heartbeats to the version manager ---- */

static int heartbeat_once(struct noded *nd, int sock, uint32_t *id)
{
	struct store_stat s;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg;
	int err = store_stat(nd->st, &s);

	if (err)
		return err;
	err = blobcr_enc_init(&e, 512);
	if (err)
		return err;
	blobcr_enc_str(&e, nd->advertise);
	blobcr_enc_u64(&e, s.capacity);
	blobcr_enc_u64(&e, s.used_bytes);
	blobcr_enc_u64(&e, s.chunks);
	err = blobcr_call(sock, BLOBCR_OP_NODE_HEARTBEAT, &e, &msg, &d);
	blobcr_enc_free(&e);
	if (!err) {
		*id = blobcr_dec_u32(&d);
		err = blobcr_dec_end(&d);
	}
	if (msg)
		nn_freemsg(msg);
	return err;
}

static void *heartbeat_thread(void *p)
{
	struct noded *nd = p;
	int sock = blobcr_req_socket(nd->meta, nd->heartbeat_ms * 2 + 500);
	int last_err = 1;
	uint32_t id = 0;

	if (sock < 0) {
		log_err("cannot reach metad at %s: %s", nd->meta,
			strerror(-sock));
		return NULL;
	}
	while (!blobcr_stopping(&nd->stop)) {
		int err = heartbeat_once(nd, sock, &id);

		if (err != last_err) {
			if (err)
				log_warn("heartbeat to %s failed: %s", nd->meta,
					 strerror(-err));
			else
				log_info("registered with %s as node %" PRIu32,
					 nd->meta, id);
		}
		last_err = err;
		/* Sleep in small steps so that SIGTERM is seen promptly. */
		for (int t = 0; t < nd->heartbeat_ms && !blobcr_stopping(&nd->stop); t += 50)
			usleep(50 * 1000);
	}
	nn_close(sock);
	return NULL;
}

/* Reclaim the space of deleted chunks now and then. */
static void *compact_thread(void *p)
{
	struct noded *nd = p;
	uint64_t next = blobcr_now_ms() + (uint64_t)nd->compact_s * 1000;

	while (!blobcr_stopping(&nd->stop)) {
		int64_t r;

		usleep(100 * 1000);
		if (blobcr_now_ms() < next)
			continue;
		r = store_compact(nd->st);
		if (r < 0)
			log_warn("compaction failed: %s", strerror((int)-r));
		next = blobcr_now_ms() + (uint64_t)nd->compact_s * 1000;
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blobcr-noded --listen ADDR --data DIR [options]\n"
		"A storage node of the dm-blobcr repository.\n\n"
		"  -l, --listen ADDR        nanomsg address to serve (tcp://IP:PORT)\n"
		"  -d, --data DIR           directory of segment files and index\n"
		"  -m, --meta ADDR          blobcr-metad to heartbeat to\n"
		"  -a, --advertise ADDR     address given to clients (default: --listen)\n"
		"  -c, --capacity BYTES     refuse PUTs past this many bytes (K/M/G)\n"
		"  -s, --segment-size BYTES segment file size (default 64M)\n"
		"  -t, --threads N          worker threads (default 4)\n"
		"  -H, --heartbeat-ms N     heartbeat period (default 1000)\n"
		"  -C, --compact-s N        compact segments every N s, 0: never\n"
		"                           (default 60)\n"
		"  -v, --verbose            debug logging\n"
		"  -h, --help               this help\n");
}

struct noded_args {
	const char *listen, *data;
	struct store_opts so;
	int threads;
	int verbose;
};

static int parse_args(int argc, char **argv, struct noded *nd,
		      struct noded_args *a)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "data", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "advertise", required_argument, NULL, 'a' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "segment-size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "heartbeat-ms", required_argument, NULL, 'H' },
		{ "compact-s", required_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "l:d:m:a:c:s:t:H:C:vh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'l': a->listen = optarg; break;
		case 'd': a->data = optarg; break;
		case 'm': nd->meta = optarg; break;
		case 'a': nd->advertise = optarg; break;
		case 'v': a->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'C':
			if (blobcr_parse_u64(optarg, &v) || v > 86400) {
				fprintf(stderr, "blobcr-noded: bad value '%s' for -C\n",
					optarg);
				return -EINVAL;
			}
			nd->compact_s = (int)v;
			break;
		case 'c':
		case 's':
		case 't':
		case 'H':
			if (blobcr_parse_u64(optarg, &v) ||
			    (c != 'c' && c != 's' && (v == 0 || v > 1000000))) {
				fprintf(stderr, "blobcr-noded: bad value '%s' for -%c\n",
					optarg, c);
				return -EINVAL;
			}
			if (c == 'c')
				a->so.capacity = v;
			else if (c == 's')
				a->so.segment_size = v;
			else if (c == 't')
				a->threads = (int)v;
			else
				nd->heartbeat_ms = (int)v;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!a->listen || !a->data || optind != argc) {
		fprintf(stderr, "blobcr-noded: --listen and --data are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct noded nd = { .heartbeat_ms = 1000, .compact_s = 60 };
	struct noded_args a = { .threads = 4 };
	pthread_t hb, compactor;
	int err;

	if (parse_args(argc, argv, &nd, &a))
		return 2;
	blobcr_log_init("blobcr-noded", a.verbose ? BLOBCR_LOG_DEBUG : BLOBCR_LOG_INFO);
	if (!nd.advertise)
		nd.advertise = a.listen;
	blobcr_heap_for_big_buffers();
	a.so.dir = a.data;
	if (blobcr_signals_init(&nd.stop))
		return 1;
	err = store_open(&a.so, &nd.st);
	if (err) {
		log_err("cannot open store in %s: %s", a.data, strerror(-err));
		return 1;
	}
	if (nd.meta && pthread_create(&hb, NULL, heartbeat_thread, &nd)) {
		log_err("cannot start the heartbeat thread");
		store_close(nd.st);
		return 1;
	}
	if (nd.compact_s &&
	    pthread_create(&compactor, NULL, compact_thread, &nd)) {
		log_err("cannot start the compaction thread");
		__atomic_store_n(&nd.stop, 1, __ATOMIC_RELAXED);
		if (nd.meta)
			pthread_join(hb, NULL);
		store_close(nd.st);
		return 1;
	}
	nd.srv = (struct blobcr_server){ .addr = a.listen, .threads = a.threads,
					 .handler = handle, .ctx = &nd,
					 .stop = &nd.stop };
	log_info("serving %s from %s", a.listen, a.data);
	err = blobcr_server_run(&nd.srv);
	if (err)
		log_err("cannot serve %s: %s", a.listen, strerror(-err));
	__atomic_store_n(&nd.stop, 1, __ATOMIC_RELAXED);
	if (nd.meta)
		pthread_join(hb, NULL);
	if (nd.compact_s)
		pthread_join(compactor, NULL);
	store_close(nd.st);
	log_info("stopped");
	return err ? 1 : 0;
}
