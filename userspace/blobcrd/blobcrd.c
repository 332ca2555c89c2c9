// SPDX-License-Identifier: GPL-2.0
/*
 * blobcrd - the per-host helper of a dm-blobcr target.
 *
 * Attaches to the target's channel and serves it with a few threads, each
 * with its own repository handle and libaio context, all reading requests
 * from the one attached file.  Requests this process read and did not
 * answer when it dies go to the next helper that attaches, so a restarted
 * blobcrd finishes what this one left.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "blobcr_conf.h"
#include "blobcr_notify.h"
#include "blobcr_util.h"
#include "blobcrd.h"

/*
 * The lease on the version the device shows: while we serve, it cannot be
 * deleted nor its chunks collected; if we die, it lapses after its term
 * (--lease-ms, default LEASE_MS), renewed every quarter of it.
 */
#define LEASE_MS 60000
/* As long as multipath's usual queueing: a network blip stalls the VM. */
#define FETCH_RETRY_S 60

static const char usage_text[] =
"Usage: blobcrd [OPTIONS] --meta ADDR --channel NAME --image NAME@VERSION\n"
"               --cache DEVICE\n"
"\n"
"Serve the dm-blobcr target whose channel is /dev/blobcr/NAME: fill the\n"
"extents it misses from the repository (FETCH) and upload its commits\n"
"(COMMIT).  Normally started by `blobcrctl deploy`.\n"
"\n"
"  -m, --meta ADDR          version manager (nanomsg address, e.g.\n"
"                           tcp://10.0.2.2:7000); default $BLOBCR_META\n"
"  -k, --key FILE           this host's private key (role host); default\n"
"                           $BLOBCR_KEY; the repository's keys.pub beside it\n"
"  -c, --channel NAME       the target's channel name\n"
"  -d, --dm-name NAME       its device-mapper name (default: the channel's)\n"
"  -i, --image NAME@VER     what the device shows (FETCH source)\n"
"  -C, --cache DEVICE       the target's cache device (or file)\n"
"  -t, --commit-to NAME@VER commit into image NAME, on top of version VER\n"
"                           (default: the deployed image and version)\n"
"  -T, --tag TAG            label the published versions TAG and a mark only\n"
"                           our key makes; versions with both count as this\n"
"                           deployment's own (a helper that died after\n"
"                           publishing left them)\n"
"  -L, --label-file FILE    if FILE exists at a commit, its first line\n"
"                           labels the version (blobcrctl commit --label)\n"
"  -K, --keep-dir DIR       where kept caches' bitmaps live (default\n"
"                           $BLOBCR_KEEP_DIR, else /var/lib/blobcr/kept)\n"
"  -a, --read-ahead N       read at most N extents ahead of a run of\n"
"                           consecutive misses (default 0: none, or\n"
"                           $BLOBCR_READAHEAD; 128 = 32 MiB of 256 KiB)\n"
"  -j, --threads N          serving threads (default 4)\n"
"  -r, --ready-fd FD        write one byte to FD once attached, then close it\n"
"  -p, --pidfile FILE       write the process id to FILE once attached\n"
"      --metrics-dir DIR    keep DIR/blobcrd-DMNAME.prom, the counters in\n"
"                           the Prometheus text format, up to date (after\n"
"                           each commit and lease renewal), for\n"
"                           node_exporter's textfile collector\n"
"      --lease-ms N         the lease's term, 1000 to 3600000 (default\n"
"                           $BLOBCR_LEASE_MS, else 60000)\n"
"      --fetch-retry-s N    a miss whose fetch cannot reach the repository\n"
"                           is tried again for N seconds (0 to 3600,\n"
"                           default 60; 0: fail at once) before its read\n"
"                           gets EIO\n"
"      --config FILE        settings, one OPTION = VALUE a line\n"
"                           (blobcr.conf(5); default %s/blobcrd.conf):\n"
"                           options given here override them\n"
"  -v, --verbose            log every request\n"
"  -h, --help               this help\n"
"\n"
"While it serves, blobcrd holds a lease on NAME@VERSION at the version\n"
"manager, renewed every quarter of its term (--lease-ms): the version\n"
"cannot be deleted meanwhile.  A clean stop releases\n"
"it; if blobcrd dies, it lapses after its term.\n"
"\n"
"A fetch that finds no storage node or version manager answering (timed\n"
"out, refused, not enough live nodes) does not fail the read at once: the\n"
"read waits while blobcrd tries again (--fetch-retry-s), as multipath\n"
"queues I/O while no path is up.  A corrupt or missing chunk fails it.\n"
"\n"
"Kept caches: a clean stop (SIGTERM, SIGINT) saves which extents of the\n"
"cache hold the shown version's bytes, for the cache device; the next\n"
"blobcrd over that cache, deployed with the same NAME@VERSION, deletes the\n"
"file, checks each saved extent's bytes against the version's chunk ids\n"
"and marks those that match present: it fetches nothing it still has.\n"
"\n"
"Stops on SIGTERM or SIGINT, or when the target is removed.  Exit status:\n"
"0 after a clean stop, 1 when the channel or the repository cannot be\n"
"reached or do not match, 2 on a usage error.\n";

void logmsg(const struct deployment *d, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	va_list ap;
	char line[1024];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%02d:%02d:%02d.%03ld blobcrd[%s]: %s\n", tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, d->channel, line);
}

static int parse_ref(const char *s, char *name, uint32_t *version)
{
	const char *at = strrchr(s, '@');
	size_t len = at ? (size_t)(at - s) : strlen(s);
	char *end;
	unsigned long v;

	if (!len || len >= BLOBCR_NAME_MAX || !at)
		return -EINVAL;
	memcpy(name, s, len);
	name[len] = '\0';
	errno = 0;
	v = strtoul(at + 1, &end, 10);
	if (errno || *end || end == at + 1 || v > UINT32_MAX)
		return -EINVAL;
	*version = (uint32_t)v;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct deployment *d = w->d;
	/*
	 * One request at a time: a worker busy with a long prefetch must not
	 * hold a demand miss read with it that an idle worker could serve.
	 */
	struct blobcr_request rq[1];

	for (;;) {
		int n = channel_read(d->chfd, d->stop_fd, -1, rq, 1);

		if (n < 0) {
			if (n == -ENODEV) {
				atomic_store(&d->target_gone, true);
				logmsg(d, "the target went away");
			} else {
				logmsg(d, "channel read failed: %s", strerror(-n));
			}
			kill(getpid(), SIGTERM);
			return NULL;
		}
		if (n == 0 && eventfd_read(d->stop_fd, &(eventfd_t){ 0 }) == 0) {
			/* Put the token back for the other workers. */
			eventfd_write(d->stop_fd, 1);
			return NULL;
		}
		/* Fetches first: I/O waits on them, a commit takes long. */
		for (int i = 0; i < n; i++)
			if (rq[i].op == BLOBCR_OP_FETCH)
				serve_fetch(w, &rq[i]);
		for (int i = 0; i < n; i++) {
			if (rq[i].op == BLOBCR_OP_COMMIT)
				serve_commit(w, &rq[i]);
			else if (rq[i].op != BLOBCR_OP_FETCH)
				logmsg(d, "ignoring unknown request op %u", rq[i].op);
		}
	}
}

static void worker_free(struct worker *w)
{
	for (int i = 0; i < BLOBCRD_BATCH; i++)
		free(w->bufs[i]);
	cacheio_close(&w->io);
	blobcr_close(w->cl);
}

static int worker_init(struct worker *w, struct deployment *d)
{
	int err;

	memset(w, 0, sizeof(*w));
	w->d = d;
	w->io.fd = -1;
	for (int i = 0; i < BLOBCRD_BATCH; i++)
		if (posix_memalign(&w->bufs[i], 4096, d->extent_size))
			return -ENOMEM;
	err = blobcr_connect(d->meta, &d->repo_opts, &w->cl);
	if (err)
		return err;
	return cacheio_open(&w->io, d->cache, d->extent_size,
			    d->info.dev_sectors * 512, BLOBCRD_BATCH);
}

/* The target and the image must agree on geometry before we serve. */
static int check_geometry(struct deployment *d)
{
	struct blobcr_image_info ii;
	int err;

	err = blobcr_connect(d->meta, &d->repo_opts, &d->cl);
	if (err) {
		logmsg(d, "cannot reach the version manager at %s: %s%s%s", d->meta,
		       blobcr_strerror(err), blobcr_auth_error(err) ? ": " : "",
		       blobcr_auth_error(err) ? blobcr_auth_detail() : "");
		return err;
	}
	err = blobcr_image_info(d->cl, d->image, &ii);
	if (err) {
		logmsg(d, "image %s: %s", d->image, blobcr_strerror(err));
	} else if (ii.extent_size != d->extent_size) {
		logmsg(d, "image %s has %u-byte extents, the target %u-byte ones",
		       d->image, ii.extent_size, d->extent_size);
		err = -EINVAL;
	} else if ((uint64_t)d->info.dev_sectors * 512 > ii.size) {
		logmsg(d, "the target (%llu bytes) is larger than image %s (%llu bytes)",
		       (unsigned long long)d->info.dev_sectors * 512, d->image,
		       (unsigned long long)ii.size);
		err = -EINVAL;
	} else if (d->version > ii.latest) {
		logmsg(d, "image %s has no version %u", d->image, d->version);
		err = -ENOENT;
	}
	return err;
}

static int attach(struct deployment *d)
{
	int err;

	d->chfd = channel_open(d->channel);
	if (d->chfd < 0) {
		logmsg(d, "cannot open %s%s: %s", BLOBCR_DEV_DIR, d->channel,
		       strerror(-d->chfd));
		return d->chfd;
	}
	err = channel_info(d->chfd, &d->info);
	if (!err)
		err = channel_attach(d->chfd);
	if (err) {
		logmsg(d, "cannot attach to %s: %s", d->channel, strerror(-err));
		return err;
	}
	d->extent_size = d->info.extent_sectors * 512;
	return 0;
}

static int parse_args(int argc, char **argv, struct deployment *d,
		      int *ready_fd, const char **pidfile)
{
	/* The first is deploy's pipe: no setting of blobcrd.conf. */
	static const struct option opts[] = {
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "meta", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		{ "channel", required_argument, NULL, 'c' },
		{ "dm-name", required_argument, NULL, 'd' },
		{ "image", required_argument, NULL, 'i' },
		{ "cache", required_argument, NULL, 'C' },
		{ "commit-to", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'j' },
		{ "tag", required_argument, NULL, 'T' },
		{ "label-file", required_argument, NULL, 'L' },
		{ "keep-dir", required_argument, NULL, 'K' },
		{ "read-ahead", required_argument, NULL, 'a' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "lease-ms", required_argument, NULL, 'E' },
		{ "fetch-retry-s", required_argument, NULL, 'R' },
		{ "metrics-dir", required_argument, NULL, 'M' },
		{ "config", required_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const struct blobcr_conf_env env[] = {
		{ "meta", "BLOBCR_META" }, { "key", "BLOBCR_KEY" },
		{ "lease-ms", "BLOBCR_LEASE_MS" },
		{ "keep-dir", "BLOBCR_KEEP_DIR" },
		{ "read-ahead", "BLOBCR_READAHEAD" }, { NULL, NULL },
	};
	const char *image = NULL, *commit_to = NULL;
	const char *read_ahead = getenv("BLOBCR_READAHEAD");
	const char *lease_ms = getenv("BLOBCR_LEASE_MS");
	uint64_t v;
	int c;

	if (blobcr_conf_args("blobcrd", opts + 1, env, &argc, &argv))
		return -EINVAL;
	d->meta = getenv("BLOBCR_META");
	d->keep_dir = getenv("BLOBCR_KEEP_DIR");
	d->threads = 4;
	d->lease_ms = LEASE_MS;
	d->fetch_retry_ms = FETCH_RETRY_S * 1000;
	/* A bad $BLOBCR_LEASE_MS is an error too, not a silent default. */
	if (lease_ms && (blobcr_parse_u64(lease_ms, &v) || v < 1000 ||
			 v > 3600000)) {
		fprintf(stderr, "blobcrd: bad $BLOBCR_LEASE_MS '%s': 1000 to 3600000\n",
			lease_ms);
		return -EINVAL;
	}
	if (lease_ms)
		d->lease_ms = (uint32_t)v;
	d->read_ahead = RA_DEFAULT;
	if (read_ahead && (blobcr_parse_u64(read_ahead, &d->read_ahead) ||
			   d->read_ahead > RA_LIMIT)) {
		fprintf(stderr, "blobcrd: bad $BLOBCR_READAHEAD '%s': 0 to %d\n",
			read_ahead, RA_LIMIT);
		return -EINVAL;
	}
	while ((c = getopt_long(argc, argv, "m:k:c:d:i:C:t:j:T:L:K:a:r:p:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'F': break; /* read by blobcr_conf_args() */
		case 'M': d->metrics_dir = optarg; break;
		case 'E':
			if (blobcr_parse_u64(optarg, &v) || v < 1000 || v > 3600000) {
				blobcr_conf_bad(opts, c, "1000 to 3600000");
				return -EINVAL;
			}
			d->lease_ms = (uint32_t)v;
			break;
		case 'R':
			if (blobcr_parse_u64(optarg, &v) || v > 3600) {
				blobcr_conf_bad(opts, c, "0 to 3600");
				return -EINVAL;
			}
			d->fetch_retry_ms = (uint32_t)v * 1000;
			break;
		case 'm': d->meta = optarg; break;
		case 'k': d->repo_opts.key_file = optarg; break;
		case 'c': d->channel = optarg; break;
		case 'd': d->dm_name = optarg; break;
		case 'i': image = optarg; break;
		case 'C': d->cache = optarg; break;
		case 't': commit_to = optarg; break;
		case 'j': d->threads = atoi(optarg); break;
		case 'T': d->tag = optarg; break;
		case 'L': d->label_file = optarg; break;
		case 'K': d->keep_dir = optarg; break;
		case 'a':
			if (blobcr_parse_u64(optarg, &v) || v > RA_LIMIT) {
				char why[32];

				snprintf(why, sizeof(why), "0 to %d", RA_LIMIT);
				blobcr_conf_bad(opts, c, why);
				return -EINVAL;
			}
			d->read_ahead = v;
			break;
		case 'r': *ready_fd = atoi(optarg); break;
		case 'p': *pidfile = optarg; break;
		case 'v': d->verbose = 1; break;
		case 'h': printf(usage_text, blobcr_config_dir); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc || !d->meta || !d->channel || !image || !d->cache) {
		fprintf(stderr, "blobcrd: --meta, --channel, --image and --cache are required\n");
		return -EINVAL;
	}
	if (!d->dm_name)
		d->dm_name = d->channel;
	if (d->threads < 1 || d->threads > 64) {
		fprintf(stderr, "blobcrd: --threads must be 1..64\n");
		return -EINVAL;
	}
	if (parse_ref(image, d->image, &d->version) ||
	    parse_ref(commit_to ? commit_to : image, d->commit_image,
		      &d->commit_base)) {
		fprintf(stderr, "blobcrd: images are given as NAME@VERSION\n");
		return -EINVAL;
	}
	return 0;
}

static void report_ready(int ready_fd, const char *pidfile)
{
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (f) {
			fprintf(f, "%d\n", getpid());
			fclose(f);
		}
	}
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			perror("blobcrd: ready-fd");
		close(ready_fd);
	}
}

/* Who holds our lease: this host and the device, as a name. */
static void lease_holder(const struct deployment *d, char *out, size_t len)
{
	char host[64] = "host";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, len, "%s:%s", host, d->dm_name);
	for (char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._-:+", *p)))
			*p = '_';
}

/* Take, renew (@ttl_ms) or release (0) the lease; log only what changes. */
static void lease(struct deployment *d, uint32_t ttl_ms, int *last_err)
{
	char holder[BLOBCR_NAME_MAX];
	int err;

	lease_holder(d, holder, sizeof(holder));
	err = blobcr_lease(d->cl, holder, d->image, d->version, ttl_ms);
	if (err != *last_err && err)
		logmsg(d, "lease on %s@%u: %s", d->image, d->version,
		       blobcr_strerror(err));
	else if (err != *last_err)
		logmsg(d, "%s lease on %s@%u as %s", ttl_ms ? "holding a" :
		       "released the", d->image, d->version, holder);
	*last_err = err;
}

/* Wait for SIGTERM/SIGINT, renewing the lease meanwhile. */
static void wait_renewing(struct deployment *d, const sigset_t *sigs)
{
	uint32_t term = d->lease_ms;
	struct timespec ts = { .tv_sec = term / 4000,
			       .tv_nsec = (long)(term / 4 % 1000) * 1000000 };
	int last = 1;

	lease(d, term, &last);
	while (sigtimedwait(sigs, NULL, &ts) < 0) {
		if (errno == EAGAIN)
			lease(d, term, &last);
		metrics_write(d);
	}
	last = 1;
	lease(d, 0, &last);
}

/* A kept cache's check, beside the workers: reads meanwhile are fetched. */
struct restore {
	struct worker w;
	struct kept *kept;
};

static void *restore_main(void *arg)
{
	struct restore *r = arg;

	keep_restore(r->w.d, &r->w, r->kept);
	return NULL;
}

/* Serve until SIGTERM/SIGINT (or a worker raising SIGTERM). */
static int serve(struct deployment *d, int ready_fd, const char *pidfile)
{
	struct worker *ws = calloc(d->threads, sizeof(*ws));
	pthread_t *tids = calloc(d->threads, sizeof(*tids));
	struct restore restore = { .w.io.fd = -1 };
	bool restoring = false;
	pthread_t rtid;
	sigset_t sigs;
	int started = 0, err = 0;

	if (!ws || !tids)
		return -ENOMEM;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	/* Before any worker serves, so that nothing written finds it. */
	restore.kept = keep_take(d);
	for (; started < d->threads; started++) {
		err = worker_init(&ws[started], d);
		if (err) {
			logmsg(d, "worker setup failed: %s", blobcr_strerror(err));
			worker_free(&ws[started]);
			break;
		}
		err = -pthread_create(&tids[started], NULL, worker_main, &ws[started]);
		if (err) {
			worker_free(&ws[started]);
			break;
		}
	}
	if (!err) {
		logmsg(d, "serving %s@%u (%llu extents of %u KiB), commits into %s, %d threads",
		       d->image, d->version, (unsigned long long)d->info.nr_extents,
		       d->extent_size >> 10, d->commit_image, d->threads);
		metrics_write(d);
		report_ready(ready_fd, pidfile);
		blobcr_notify_ready("serving %s@%u on %s", d->image, d->version,
				    d->dm_name);
		if (restore.kept && !worker_init(&restore.w, d))
			restoring = !pthread_create(&rtid, NULL, restore_main,
						    &restore);
		wait_renewing(d, &sigs);
		blobcr_notify_stopping();
	}
	atomic_store(&d->stopping, true);
	eventfd_write(d->stop_fd, 1);
	if (restoring)
		pthread_join(rtid, NULL);
	worker_free(&restore.w);
	keep_free(restore.kept);
	for (int i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		worker_free(&ws[i]);
	}
	free(ws);
	free(tids);
	if (pidfile)
		unlink(pidfile);
	metrics_remove(d);
	return err;
}

int main(int argc, char **argv)
{
	struct deployment d = { .chfd = -1 };
	const char *pidfile = NULL;
	int ready_fd = -1, err;

	if (parse_args(argc, argv, &d, &ready_fd, &pidfile)) {
		fputs("Try 'blobcrd --help'.\n", stderr);
		return 2;
	}
	d.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d.stop_fd < 0) {
		perror("blobcrd: eventfd");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/*
	 * The target's I/O waits on this process: its allocations must not
	 * wait in reclaim for I/O, maybe to that very device (as a FUSE or
	 * ublk server; needs CAP_SYS_RESOURCE).
	 */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0))
		logmsg(&d, "PR_SET_IO_FLUSHER: %s; memory reclaim may wait on the device this serves",
		       strerror(errno));
	blobcr_heap_for_big_buffers();
	err = blobcr_key_load(d.repo_opts.key_file, &d.key);
	if (err)
		logmsg(&d, "no key: %s", blobcr_auth_detail());
	if (!err)
		err = attach(&d);
	if (!err)
		err = check_geometry(&d);
	readahead_init(&d.ra, d.read_ahead);
	if (!err)
		err = extmap_init(&d);
	if (!err) {
		err = prefetch_init(&d, d.cl);
		if (err)
			logmsg(&d, "adaptive prefetch off: %s", blobcr_strerror(err));
		err = serve(&d, ready_fd, pidfile);
		if (!err && !atomic_load(&d.target_gone))
			keep_save(&d);
		prefetch_save(&d, d.cl);
		prefetch_free(&d.pf);
	}
	extmap_free(&d.map);
	readahead_free(&d.ra);
	blobcr_close(d.cl);
	blobcr_key_free(d.key);
	logmsg(&d, "stopping: %llu misses, %llu extents fetched, %llu zero, %llu fetch failures, %llu commits, %llu map lookups, %llu read ahead, %llu prefetched",
	       (unsigned long long)d.misses,
	       (unsigned long long)d.fetched_extents,
	       (unsigned long long)d.zero_extents,
	       (unsigned long long)d.fetch_failures,
	       (unsigned long long)d.commits,
	       (unsigned long long)d.map_lookups,
	       (unsigned long long)d.ra.requested,
	       (unsigned long long)d.pf.requested);
	if (d.chfd >= 0)
		close(d.chfd);
	return err ? 1 : 0;
}
