// SPDX-License-Identifier: GPL-2.0
/*
 * blobcrctl - the operator's command line for the dm-blobcr repository.
 *
 * Exit status: 0 success, 1 failure, 2 usage error, 3 not found,
 * 4 conflict (busy, or a gc ran: retry), 5 repository unavailable
 * (metad or too many storage nodes down), 6 denied (no key, a key refused,
 * or a role that may not do this).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>

#include "blobcr.h"
#include "blobcr_conf.h"
#include "blobcr_host.h"
#include "blobcr_util.h"
#include "deploy.h"
#include "job.h"
#include "keys.h"
#include "metrics.h"
#include "send.h"
#include "vm.h"

struct ctl {
	const char *meta;
	const char *key_file; /* --key or $BLOBCR_KEY, made absolute */
	int encrypt;
	int timeout_ms;
	int quiet;
	struct blobcr_client *c;
};

struct verb {
	const char *group, *name, *args, *help;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
	int min_args, max_args;
};

static int exit_code(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -ENOENT:
		return EXIT_NOTFOUND;
	case -EBUSY:
	case -EAGAIN:
	case -EEXIST:
	case -EALREADY:
		return EXIT_CONFLICT;
	case -ETIMEDOUT:
	case -EHOSTDOWN:
	case -ECONNREFUSED:
	case -ENOBUFS:
		return EXIT_UNAVAIL;
	case -ENOKEY:
	case -EKEYREJECTED:
	case -EKEYEXPIRED:
	case -EACCES:
		return EXIT_DENIED;
	default:
		return EXIT_FAIL;
	}
}

static int fail(int err, const char *what, const char *obj)
{
	/* What a request names and metad lacks, not a file. */
	const char *what_err = err == -ENOENT ? "not found" : blobcr_strerror(err);
	bool why = blobcr_auth_error(err) && blobcr_auth_detail()[0];

	fprintf(stderr, "blobcrctl: %s%s%s: %s%s%s\n", what, obj ? " " : "",
		obj ? obj : "", what_err, why ? ": " : "",
		why ? blobcr_auth_detail() : "");
	return exit_code(err);
}

/* A nanomsg address: TRANSPORT://WHERE, WHERE not empty. */
static bool valid_addr(const char *a)
{
	static const char *const transports[] = { "tcp://", "ipc://",
						  "inproc://", "ws://" };

	for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++)
		if (!strncmp(a, transports[i], strlen(transports[i])) &&
		    a[strlen(transports[i])])
			return true;
	return false;
}

static int connect_ctl(struct ctl *ctl)
{
	struct blobcr_client_opts o = { .timeout_ms = ctl->timeout_ms,
					.key_file = ctl->key_file,
					.encrypt = ctl->encrypt };
	const char *dom = getenv("BLOBCR_DOMAIN");
	int err;

	if (!ctl->meta) {
		fprintf(stderr, "blobcrctl: no version manager: give --meta ADDR, "
				"set BLOBCR_META or 'meta' in blobcrctl.conf "
				"(blobcr.conf(5))\n");
		return EXIT_USAGE;
	}
	if (dom && *dom && !blobcr_valid_name(dom, BLOBCR_DOMAIN_MAX)) {
		fprintf(stderr, "blobcrctl: BLOBCR_DOMAIN '%s' is no failure "
			"domain: 1 to %d of A-Z a-z 0-9 . _ - : +\n", dom,
			BLOBCR_DOMAIN_MAX - 1);
		return EXIT_USAGE;
	}
	err = valid_addr(ctl->meta) ? blobcr_connect(ctl->meta, &o, &ctl->c) :
				      -EINVAL;
	if (err == -EINVAL) {
		fprintf(stderr, "blobcrctl: '%s' is not a version manager address "
			"(tcp://HOST:PORT)\n", ctl->meta);
		return EXIT_USAGE;
	}
	if (err)
		return fail(err, "cannot reach blobcr-metad at", ctl->meta);
	return 0;
}

/*
 * What the repository says (names, labels, addresses) goes to a terminal:
 * no escape sequences, whatever a database holds.  @buf: BLOBCR_SHOWN.
 */
#define BLOBCR_SHOWN (4 * BLOBCR_ADDR_MAX + 1)
static const char *shown(const char *s, char *buf)
{
	return blobcr_printable(s, buf, BLOBCR_SHOWN);
}

/* NAME or NAME@VERSION; a missing version is 0 (latest). */
static int parse_ref(const char *s, char *name, uint32_t *version)
{
	const char *at = strchr(s, '@');
	uint64_t v = 0;
	size_t n = at ? (size_t)(at - s) : strlen(s);

	if (n == 0 || n >= BLOBCR_NAME_MAX)
		return -EINVAL;
	memcpy(name, s, n);
	name[n] = 0;
	if (at && (blobcr_parse_u64(at + 1, &v) || v == 0 || v > UINT32_MAX))
		return -EINVAL;
	*version = (uint32_t)v;
	return 0;
}

static int bad_ref(const char *s)
{
	fprintf(stderr, "blobcrctl: '%s' is not NAME or NAME@VERSION\n", s);
	return EXIT_USAGE;
}

/* ---- progress bar, on a terminal only ---- */

struct progress {
	const char *what;
	uint64_t start_ms, last_ms;
};

static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	uint64_t now = blobcr_now_ms();
	double secs = (double)(now - p->start_ms) / 1000.0;
	int width = 30, fill = total ? (int)(done * (uint64_t)width / total) : width;

	if (now - p->last_ms < 100 && done < total)
		return;
	p->last_ms = now;
	fprintf(stderr, "\r%s [%.*s%*s] %3d%% %8.1f MiB %7.1f MiB/s", p->what,
		fill, "##############################", width - fill, "",
		total ? (int)(done * 100 / total) : 100,
		(double)done / (1 << 20), secs > 0 ? (double)done / (1 << 20) / secs : 0.0);
	if (done >= total)
		fputc('\n', stderr);
}

static blobcr_progress_fn progress_for(struct ctl *ctl, struct progress *p,
				       const char *what)
{
	p->what = what;
	p->start_ms = blobcr_now_ms();
	p->last_ms = 0;
	return !ctl->quiet && isatty(STDERR_FILENO) ? progress_cb : NULL;
}

/* ---- image verbs ---- */

static int cmd_import(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "extent-size", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t es = 256 << 10;
	struct progress p;
	struct stat sb;
	int c, fd, err;

	while ((c = getopt_long(argc, argv, "+e:", opts, NULL)) != -1) {
		if (c != 'e')
			return EXIT_USAGE;
		if (blobcr_parse_u64(optarg, &es) || es < BLOBCR_MIN_EXTENT ||
		    es > BLOBCR_MAX_EXTENT || (es & (es - 1))) {
			fprintf(stderr, "blobcrctl: bad --extent-size '%s': a power "
				"of two from 4K to 4M\n", optarg);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "blobcrctl: image import NAME FILE\n");
		return EXIT_USAGE;
	}
	fd = open(argv[optind + 1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		fprintf(stderr, "blobcrctl: %s: %s\n", argv[optind + 1], strerror(errno));
		return EXIT_FAIL;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size == 0) {
		fprintf(stderr, "blobcrctl: %s: not a non-empty regular file\n",
			argv[optind + 1]);
		close(fd);
		return EXIT_FAIL;
	}
	err = blobcr_image_import(ctl->c, argv[optind], fd, (uint64_t)sb.st_size,
				  (uint32_t)es, progress_for(ctl, &p, "import"), &p);
	close(fd);
	if (err)
		return fail(err, "import of", argv[optind]);
	if (!ctl->quiet)
		printf("imported %s: %" PRIu64 " bytes\n", argv[optind],
		       (uint64_t)sb.st_size);
	return 0;
}

static int cmd_export(struct ctl *ctl, int argc, char **argv)
{
	char name[BLOBCR_NAME_MAX];
	struct progress p;
	uint32_t ver;
	int fd, err;

	(void)argc;
	if (parse_ref(argv[1], name, &ver))
		return bad_ref(argv[1]);
	fd = open(argv[2], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "blobcrctl: %s: %s\n", argv[2], strerror(errno));
		return EXIT_FAIL;
	}
	err = blobcr_image_export(ctl->c, name, ver, fd,
				  progress_for(ctl, &p, "export"), &p);
	if (close(fd) && !err)
		err = -errno;
	if (err)
		return fail(err, "export of", argv[1]);
	return 0;
}

/*
 * Commit FILE as a new version of NAME: only the extents whose content
 * differs from the latest version are sent (shadowing).
 */
static int commit_changed(struct ctl *ctl, const char *name, int fd,
			  const struct blobcr_image_info *info, uint32_t *ver,
			  uint64_t *changed)
{
	uint64_t next = (info->size + info->extent_size - 1) / info->extent_size;
	struct blobcr_extent_loc loc;
	struct blobcr_changeset *cm;
	uint8_t *buf = malloc(info->extent_size), id[BLOBCR_ID_SIZE];
	int err = buf ? blobcr_commit_begin(ctl->c, name, &cm) : -ENOMEM;

	for (uint64_t e = 0; e < next && !err; e++) {
		ssize_t n = pread(fd, buf, info->extent_size,
				  (off_t)(e * info->extent_size));
		bool zero = true;

		if (n < 0) {
			err = -errno;
			break;
		}
		memset(buf + n, 0, info->extent_size - (size_t)n);
		for (uint32_t i = 0; i < info->extent_size && zero; i++)
			zero = !buf[i];
		err = blobcr_lookup(ctl->c, name, 0, &e, 1, &loc);
		if (!err && !zero)
			err = blobcr_chunk_id(buf, info->extent_size, id);
		if (err)
			break;
		if (zero ? loc.kind == BLOBCR_EXT_ZERO :
			   loc.kind == BLOBCR_EXT_DATA &&
			   !memcmp(loc.id, id, BLOBCR_ID_SIZE))
			continue;
		err = blobcr_commit_extent(cm, e, buf);
		(*changed)++;
	}
	if (!err)
		err = blobcr_commit_publish(cm, "commit", ver);
	if (buf)
		blobcr_commit_free(cm);
	free(buf);
	return err;
}

static int cmd_commit(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_image_info info;
	struct stat sb;
	uint64_t changed = 0;
	uint32_t ver = 0;
	int fd, err;

	(void)argc;
	err = blobcr_image_info(ctl->c, argv[1], &info);
	if (err)
		return fail(err, "image", argv[1]);
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		fprintf(stderr, "blobcrctl: %s: %s\n", argv[2], strerror(errno));
		return EXIT_FAIL;
	}
	/* Padding or cutting it would publish what the file does not hold. */
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size != info.size) {
		fprintf(stderr, "blobcrctl: %s is %lld bytes, image %s %" PRIu64
			": a commit takes a file of the image's size\n", argv[2],
			(long long)sb.st_size, argv[1], info.size);
		close(fd);
		return EXIT_USAGE;
	}
	err = commit_changed(ctl, argv[1], fd, &info, &ver, &changed);
	close(fd);
	if (err)
		return fail(err, "commit to", argv[1]);
	if (!ctl->quiet)
		printf("%s@%" PRIu32 ": %" PRIu64 " extents changed\n", argv[1],
		       ver, changed);
	return 0;
}

static int cmd_list(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_image_info *v;
	size_t n;
	int err = blobcr_image_list(ctl->c, &v, &n);

	(void)argc;
	(void)argv;
	if (err)
		return fail(err, "image list", NULL);
	printf("%-24s %14s %8s %7s %8s  %s\n", "NAME", "SIZE", "EXTENT",
	       "LATEST", "VERSIONS", "PARENT");
	for (size_t i = 0; i < n; i++) {
		char parent[BLOBCR_SHOWN + 16] = "-", b1[BLOBCR_SHOWN], b2[BLOBCR_SHOWN];

		if (v[i].parent[0])
			snprintf(parent, sizeof(parent), "%s@%" PRIu32,
				 shown(v[i].parent, b2), v[i].parent_version);
		printf("%-24s %14" PRIu64 " %8" PRIu32 " %7" PRIu32 " %8" PRIu32
		       "  %s\n", shown(v[i].name, b1), v[i].size, v[i].extent_size,
		       v[i].latest, v[i].nversions, parent);
	}
	free(v);
	return 0;
}

/* One version as key=value lines, for scripts (labels may hold spaces). */
static void print_version_keys(const struct blobcr_version_info *v,
			       const char *when)
{
	char b1[BLOBCR_SHOWN], b2[BLOBCR_SHOWN];

	printf("version=%" PRIu32 "\nbase=%" PRIu32 "\ntime=%s\nchanged=%" PRIu64
	       "\nlabel=%s\ngroup=%s\n\n", v->version, v->base, when, v->changed,
	       shown(v->label, b1), shown(v->group, b2));
}

static int cmd_versions(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keys", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct blobcr_version_info *v;
	bool keys = false;
	size_t n;
	int c, err;

	while ((c = getopt_long(argc, argv, "+k", opts, NULL)) != -1) {
		if (c != 'k')
			return EXIT_USAGE;
		keys = true;
	}
	if (argc - optind != 1) {
		fprintf(stderr, "blobcrctl: image versions [--keys] NAME\n");
		return EXIT_USAGE;
	}
	err = blobcr_version_list(ctl->c, argv[optind], &v, &n);
	if (err)
		return fail(err, "versions of", argv[optind]);
	if (!keys)
		printf("%-8s %-8s %-20s %10s  %-16s %s\n", "VERSION", "BASE",
		       "TIME (UTC)", "CHANGED", "LABEL", "GROUP");
	for (size_t i = 0; i < n; i++) {
		char when[32], b1[BLOBCR_SHOWN], b2[BLOBCR_SHOWN];
		time_t t = (time_t)v[i].time;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
		if (keys)
			print_version_keys(&v[i], when);
		else
			printf("%-8" PRIu32 " %-8" PRIu32 " %-20s %10" PRIu64 "  %-16s %s\n",
			       v[i].version, v[i].base, when, v[i].changed,
			       shown(v[i].label, b1),
			       v[i].group[0] ? shown(v[i].group, b2) : "-");
	}
	free(v);
	return 0;
}

static int cmd_clone(struct ctl *ctl, int argc, char **argv)
{
	char name[BLOBCR_NAME_MAX];
	uint32_t ver;
	int err;

	(void)argc;
	if (parse_ref(argv[1], name, &ver))
		return bad_ref(argv[1]);
	err = blobcr_image_clone(ctl->c, name, ver, argv[2]);
	if (err)
		return fail(err, "clone of", argv[1]);
	return 0;
}

static int cmd_delete(struct ctl *ctl, int argc, char **argv)
{
	char name[BLOBCR_NAME_MAX];
	uint32_t ver;
	int err;

	(void)argc;
	if (parse_ref(argv[1], name, &ver))
		return bad_ref(argv[1]);
	err = blobcr_image_delete(ctl->c, name, ver);
	if (err)
		return fail(err, "delete of", argv[1]);
	return 0;
}

static int cmd_info(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_image_info i;
	char b1[BLOBCR_SHOWN], b2[BLOBCR_SHOWN];
	int err = blobcr_image_info(ctl->c, argv[1], &i);

	(void)argc;
	if (err)
		return fail(err, "image", argv[1]);
	printf("name=%s\nsize=%" PRIu64 "\nextent_size=%" PRIu32
	       "\nlatest=%" PRIu32 "\nversions=%" PRIu32 "\nparent=%s\n"
	       "parent_version=%" PRIu32 "\n", shown(i.name, b1), i.size,
	       i.extent_size, i.latest, i.nversions, shown(i.parent, b2),
	       i.parent_version);
	return 0;
}

/* ---- repository verbs ---- */

static int cmd_gc(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_gc_stats st;
	int err = blobcr_gc(ctl->c, &st);

	(void)argc;
	(void)argv;
	if (err)
		return fail(err, "gc", NULL);
	printf("deleted=%" PRIu64 " kept=%" PRIu64 " deferred=%" PRIu64
	       " trimmed=%" PRIu64 " strays=%" PRIu64 " spared=%" PRIu64 "\n",
	       st.chunks_deleted, st.chunks_kept, st.delete_failures,
	       st.copies_trimmed, st.strays_deleted, st.spared);
	return 0;
}

/* removed, draining (while live), live or dead */
static const char *node_state_name(const struct blobcr_node_info *v)
{
	if (v->role == BLOBCR_NODE_REMOVED)
		return "removed";
	if (v->state != BLOBCR_NODE_LIVE)
		return "dead";
	return v->role == BLOBCR_NODE_DRAINING ? "draining" : "live";
}

static int cmd_node_list(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_node_info *v;
	size_t n;
	int err = blobcr_node_list(ctl->c, &v, &n);

	(void)argc;
	(void)argv;
	if (err)
		return fail(err, "node list", NULL);
	printf("%-5s %-8s %-16s %-32s %12s %10s %14s\n", "ID", "STATE",
	       "DOMAIN", "ADDRESS", "HEARTBEAT", "CHUNKS", "USED");
	for (size_t i = 0; i < n; i++) {
		char age[32] = "never", b[BLOBCR_SHOWN], b2[BLOBCR_SHOWN];

		if (v[i].heartbeat_age_ms != UINT64_MAX)
			snprintf(age, sizeof(age), "%" PRIu64 "ms ago",
				 v[i].heartbeat_age_ms);
		printf("%-5" PRIu32 " %-8s %-16s %-32s %12s %10" PRIu64 " %14" PRIu64
		       "\n", v[i].id, node_state_name(&v[i]), shown(v[i].domain, b2),
		       shown(v[i].addr, b), age, v[i].chunks, v[i].used);
	}
	free(v);
	return 0;
}

static int cmd_node_repair(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_repair_stats st;
	int err = blobcr_repair(ctl->c, &st);

	(void)argc;
	(void)argv;
	printf("under_replicated=%" PRIu64 " repaired=%" PRIu64 " failed=%" PRIu64
	       " lost=%" PRIu64 "\n", st.under_replicated, st.repaired, st.failed,
	       st.lost);
	return err ? fail(err, "repair", NULL) : 0;
}

/* A node id as node list shows it. */
static int parse_node_id(const char *s, uint32_t *id)
{
	uint64_t v;

	if (blobcr_parse_u64(s, &v) || !v || v > UINT32_MAX) {
		fprintf(stderr, "blobcrctl: '%s' is not a node id (see node list)\n",
			s);
		return -EINVAL;
	}
	*id = (uint32_t)v;
	return 0;
}

static int cmd_node_drain(struct ctl *ctl, int argc, char **argv)
{
	bool drain = strcmp(argv[0], "undrain");
	uint32_t id;
	int err;

	(void)argc;
	if (parse_node_id(argv[1], &id))
		return EXIT_USAGE;
	err = blobcr_node_drain(ctl->c, id, drain);
	return err ? fail(err, drain ? "drain of node" : "undrain of node",
			  argv[1]) : 0;
}

static int cmd_node_remove(struct ctl *ctl, int argc, char **argv)
{
	uint32_t id;
	int err;

	(void)argc;
	if (parse_node_id(argv[1], &id))
		return EXIT_USAGE;
	err = blobcr_node_remove(ctl->c, id);
	if (err == -EBUSY) {
		fprintf(stderr, "blobcrctl: node %s still holds chunks that lack R "
			"copies elsewhere: drain it, run node repair, then remove "
			"it\n", argv[1]);
		return exit_code(err);
	}
	return err ? fail(err, "removal of node", argv[1]) : 0;
}

/*
 * Send the empty request @op to the storage node at @addr directly (no
 * --meta needed) and let @show decode and print its reply.  @what names
 * the request in an error.
 */
/* Send @op to the node at @addr, hand its reply to @show; 0 or -errno. */
static int node_call(struct ctl *ctl, const char *addr, uint8_t op,
		     int (*show)(struct blobcr_dec *d, void *arg), void *arg)
{
	struct blobcr_key *key;
	struct blobcr_peer peer;
	struct blobcr_enc e;
	struct blobcr_dec d;
	void *msg = NULL;
	int err = blobcr_key_load(ctl->key_file, &key);

	if (err)
		return err;
	err = blobcr_peer_open(&peer, addr, key, BLOBCR_ROLE_NODE, ctl->timeout_ms);
	peer.flags = ctl->encrypt ? BLOBCR_SESS_ENCRYPT : 0;
	if (!err)
		err = blobcr_enc_init(&e, 0);
	if (!err) {
		err = blobcr_peer_call(&peer, op, &e, &msg, &d);
		blobcr_enc_free(&e);
	}
	if (!err)
		err = show(&d, arg);
	if (msg)
		nn_freemsg(msg);
	blobcr_peer_close(&peer);
	blobcr_key_free(key);
	return err;
}

static int node_request(struct ctl *ctl, const char *addr, uint8_t op,
			const char *what,
			int (*show)(struct blobcr_dec *d, void *arg), void *arg)
{
	int err = node_call(ctl, addr, op, show, arg);

	return err ? fail(err, what, addr) : 0;
}

/* Prints each counter as it comes: what a short reply holds still shows. */
static int show_stat(struct blobcr_dec *d, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < NODE_STATS; i++) {
		uint64_t v = blobcr_dec_u64(d);

		if (!d->err)
			printf("%s=%" PRIu64 "\n", node_stat_names[i], v);
	}
	return blobcr_dec_end(d);
}

static int cmd_node_stat(struct ctl *ctl, int argc, char **argv)
{
	(void)argc;
	return node_request(ctl, argv[1], BLOBCR_OP_STAT, "stat of node",
			    show_stat, NULL);
}

static int collect_stat(struct blobcr_dec *d, void *vals)
{
	for (size_t i = 0; i < NODE_STATS; i++)
		((uint64_t *)vals)[i] = blobcr_dec_u64(d);
	return blobcr_dec_end(d);
}

/* A node's STAT for metrics: silent, the metrics say it did not answer. */
static int node_stat(const char *addr, uint64_t vals[NODE_STATS], void *ctl)
{
	return node_call(ctl, addr, BLOBCR_OP_STAT, collect_stat, vals);
}

static int cmd_metrics(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "textfile", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	int c, err;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'T')
			return EXIT_USAGE;
		dir = optarg;
	}
	if (optind != argc) {
		fprintf(stderr, "blobcrctl: metrics [--textfile DIR]\n");
		return EXIT_USAGE;
	}
	if (dir && access(dir, W_OK)) {
		fprintf(stderr, "blobcrctl: metrics --textfile %s: %s\n", dir,
			strerror(errno));
		return EXIT_FAIL;
	}
	err = dir ? metrics_textfile(ctl->c, dir, node_stat, ctl) :
		    metrics_write(ctl->c, stdout, node_stat, ctl);
	return err ? fail(err, "metrics of the repository at", ctl->meta) : 0;
}

static int show_compact(struct blobcr_dec *d, void *arg)
{
	(void)arg;
	uint64_t freed = blobcr_dec_u64(d);
	int err = blobcr_dec_end(d);

	if (!err)
		printf("reclaimed=%" PRIu64 "\n", freed);
	return err;
}

static int cmd_node_compact(struct ctl *ctl, int argc, char **argv)
{
	(void)argc;
	return node_request(ctl, argv[1], BLOBCR_OP_COMPACT,
			    "compaction of node", show_compact, NULL);
}

static int cmd_group_publish(struct ctl *ctl, int argc, char **argv)
{
	const char **names = calloc((size_t)argc, sizeof(*names));
	char (*bufs)[BLOBCR_NAME_MAX] = calloc((size_t)argc, sizeof(*bufs));
	uint32_t *vers = calloc((size_t)argc, sizeof(*vers));
	int n = argc - 2, err = names && bufs && vers ? 0 : -ENOMEM;

	for (int i = 0; i < n && !err; i++) {
		if (parse_ref(argv[i + 2], bufs[i], &vers[i]) || !vers[i]) {
			fprintf(stderr, "blobcrctl: '%s' is not NAME@VERSION\n",
				argv[i + 2]);
			free(names), free(bufs), free(vers);
			return EXIT_USAGE;
		}
		names[i] = bufs[i];
	}
	if (!err)
		err = blobcr_group_publish(ctl->c, argv[1], (size_t)n, names, vers);
	free(names);
	free(bufs);
	free(vers);
	return err ? fail(err, "group", argv[1]) : 0;
}

/* ---- deployment verbs (deploy.c) ---- */

/*
 * How long a deployment's blobcrd may take to attach (or stop): attaching,
 * it makes requests of its own (the image, its lease, the prefetch
 * history), each up to --timeout.
 */
static int helper_wait_ms(const struct ctl *ctl)
{
	return 3 * ctl->timeout_ms;
}

static int cmd_deploy(struct ctl *ctl, int argc, char **argv)
{
	return deploy_cmd_deploy(ctl->c, ctl->meta, helper_wait_ms(ctl), argc,
				 argv);
}

static int cmd_dm_commit(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	return deploy_cmd_commit(argc, argv);
}

static int cmd_undeploy(struct ctl *ctl, int argc, char **argv)
{
	return deploy_cmd_undeploy(helper_wait_ms(ctl), argc, argv);
}

static int cmd_reattach(struct ctl *ctl, int argc, char **argv)
{
	return deploy_cmd_reattach(helper_wait_ms(ctl), argc, argv);
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	return deploy_cmd_status(argc, argv);
}

static int cmd_vm_config(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	return vm_cmd_config(argc, argv);
}

static int cmd_group_send(struct ctl *ctl, int argc, char **argv)
{
	return send_cmd_group(ctl->c, argc, argv);
}

/* ---- job verbs (job.c) ---- */

static int cmd_job_latest(struct ctl *ctl, int argc, char **argv)
{
	return job_cmd_latest(ctl->c, argc, argv);
}

static int cmd_job_plan(struct ctl *ctl, int argc, char **argv)
{
	return job_cmd_plan(ctl->c, argc, argv);
}

static int cmd_job_apply(struct ctl *ctl, int argc, char **argv)
{
	return job_cmd_apply(ctl->c, ctl->meta, helper_wait_ms(ctl), argc, argv);
}

/* ---- key verbs (keys.c) ---- */

static int cmd_key_create(struct ctl *ctl, int argc, char **argv)
{
	return keys_cmd_create(ctl->key_file, argc, argv);
}

static int cmd_key_rotate(struct ctl *ctl, int argc, char **argv)
{
	return keys_cmd_rotate(ctl->key_file, argc, argv);
}

static int cmd_key_retire(struct ctl *ctl, int argc, char **argv)
{
	return keys_cmd_retire(ctl->key_file, argc, argv);
}

static int cmd_key_list(struct ctl *ctl, int argc, char **argv)
{
	return keys_cmd_list(ctl->key_file, argc, argv);
}

static int cmd_group_list(struct ctl *ctl, int argc, char **argv)
{
	struct blobcr_group_info *v;
	size_t n;
	int err = blobcr_group_list(ctl->c, &v, &n);

	(void)argc;
	(void)argv;
	if (err)
		return fail(err, "group list", NULL);
	for (size_t i = 0; i < n; i++) {
		char when[32], b[BLOBCR_SHOWN];
		time_t t = (time_t)v[i].time;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		printf("%s %s", shown(v[i].name, b), when);
		for (uint32_t k = 0; k < v[i].nmembers; k++)
			printf(" %s@%" PRIu32, shown(v[i].members[k].image, b),
			       v[i].members[k].version);
		putchar('\n');
	}
	blobcr_group_list_free(v, n);
	return 0;
}

static int cmd_group_delete(struct ctl *ctl, int argc, char **argv)
{
	int err;

	(void)argc;
	if (!blobcr_valid_name(argv[1], BLOBCR_NAME_MAX)) {
		fprintf(stderr, "blobcrctl: '%s' is not a group name\n", argv[1]);
		return EXIT_USAGE;
	}
	err = blobcr_group_delete(ctl->c, argv[1]);
	return err ? fail(err, "group delete", argv[1]) : 0;
}

static const struct verb verbs[] = {
	{ NULL, "deploy", "NAME[@VERSION] --cache FILE|DEV --as DMNAME [options]",
	  "Options: --commit-to IMAGE, --threads N (blobcrd's, default 4),\n"
	  "--helper-timeout MS (how long I/O waits for an absent helper),\n"
	  "--vm VM (the disk belongs to VM VM, whose checkpoints blobcr-proxyd\n"
	  "serves; a new VM takes --quiesce qmp|qga|fsfreeze|none (default qmp,\n"
	  "fsfreeze with --mount), --mount DIR (fsfreeze: a host mount point of\n"
	  "a disk, repeatable), --cid N (its vsock CID), --job JOB (its job:\n"
	  "the proxy publishes only groups JOB.N for it)), then --qemu or\n"
	  "--libvirt print VM's QEMU arguments (one per line; --machine microvm\n"
	  "for virtio-mmio devices) or libvirt XML, to --output FILE if given.\n"
	  "Show NAME@VERSION (default: latest) as /dev/mapper/DMNAME, fetching\n"
	  "extents lazily into the cache (a block device, or a sparse file put on\n"
	  "a loop device), served by a blobcrd started for it: the unit\n"
	  "blobcrd@DMNAME.service where systemd runs, else in a session of its\n"
	  "own (log and pid file in " BLOBCR_RUN_DIR "/).  Commits become new\n"
	  "versions of NAME, or of IMAGE with --commit-to (created as a clone of\n"
	  "NAME@VERSION if needed).  Prints the device path.",
	  cmd_deploy, 1, 30 },
	{ NULL, "commit", "[--freeze MOUNTPOINT] [--label TEXT] [--resume CMD] DMNAME",
	  "checkpoint the device: its writes since the last commit become a new\n"
	  "version; prints the version number (pause and size on stderr).\n"
	  "--freeze MOUNTPOINT freezes the file system mounted there (on the\n"
	  "device) for the snapshot and thaws it right after, so the version\n"
	  "holds that file system clean.  --resume CMD runs CMD (resume the VM,\n"
	  "thaw a file system frozen by hand) as soon as the snapshot is taken,\n"
	  "while the upload goes on.  --label TEXT labels the version (shown by\n"
	  "image versions, with the deployment's tag).",
	  cmd_dm_commit, 1, 7 },
	{ NULL, "undeploy", "DMNAME",
	  "stop the device's blobcrd and remove the device (the cache file stays)",
	  cmd_undeploy, 1, 1 },
	{ NULL, "reattach", "DMNAME",
	  "start the device's blobcrd again (after it died or hung), with the\n"
	  "arguments deploy gave it; requests the old one left are served",
	  cmd_reattach, 1, 1 },
	{ NULL, "status", "[--json] [DMNAME]",
	  "state of one or every blobcr device: mode, present/total extents,\n"
	  "dirty, fetches queued+in flight, commits, last version, helpers, and\n"
	  "the pid of deploy's blobcrd and its systemd unit (none: not one);\n"
	  "--json: a JSON array of one object per device, for scripts",
	  cmd_status, 0, 2 },
	{ "image", "import", "[--extent-size BYTES] NAME FILE",
	  "create image NAME from FILE as version 1 (zero extents become holes,\n"
	  "identical extents are stored once).  --extent-size: a power of two\n"
	  "from 4K to 4M, default 256K",
	  cmd_import, 2, 4 },
	{ "image", "export", "NAME[@VERSION] FILE",
	  "write the image (latest version by default) to FILE, verified, byte-exact",
	  cmd_export, 2, 2 },
	{ "image", "commit", "NAME FILE",
	  "publish FILE as a new version of NAME; only changed extents are stored.\n"
	  "FILE must be as large as the image (exit 2 otherwise)",
	  cmd_commit, 2, 2 },
	{ "image", "list", "", "list the images", cmd_list, 0, 0 },
	{ "image", "info", "NAME", "show one image as key=value lines", cmd_info, 1, 1 },
	{ "image", "versions", "[--keys] NAME",
	  "list the versions of NAME: a table, or with --keys one block of\n"
	  "key=value lines per version (version, base, time, changed, label,\n"
	  "group), blocks separated by an empty line, for scripts",
	  cmd_versions, 1, 2 },
	{ "image", "clone", "NAME@VERSION NEW",
	  "create NEW sharing every chunk of NAME@VERSION", cmd_clone, 2, 2 },
	{ "image", "delete", "NAME[@VERSION]",
	  "delete one version, or the whole image; gc frees the chunks",
	  cmd_delete, 1, 1 },
	{ "vm", "config", "VM [--qemu|--libvirt] [--machine pc|microvm] [--output FILE]",
	  "print VM's QEMU arguments (default; one per line, e.g. mapfile -t\n"
	  "args < <(blobcrctl vm config vm1); qemu-system-x86_64 \"${args[@]}\" ...)\n"
	  "or the libvirt XML of its disks (cache=none, native AIO), its\n"
	  "checkpoint channel to blobcr-proxyd, its QMP or guest agent socket\n"
	  "and its vsock CID",
	  cmd_vm_config, 1, 6 },
	{ "group", "publish", "NAME IMAGE@VERSION...",
	  "record a checkpoint group (one global checkpoint) atomically",
	  cmd_group_publish, 2, 100000 },
	{ "group", "list", "",
	  "list the checkpoint groups: NAME TIME IMAGE@VERSION...",
	  cmd_group_list, 0, 0 },
	{ "group", "delete", "NAME",
	  "forget checkpoint group NAME; its versions stay (delete them with\n"
	  "image delete, then gc frees their chunks)",
	  cmd_group_delete, 1, 1 },
	{ "group", "send", "GROUP --to ADDR",
	  "copy GROUP to the repository whose blobcr-metad is at ADDR (another\n"
	  "cloud): each member becomes a new version of the image of the same\n"
	  "name there (created if absent) with exactly the member's content;\n"
	  "only extents that differ from that image's latest version there are\n"
	  "read, and only chunks the target lacks are uploaded.  Then GROUP is\n"
	  "published there, once every member is in (refused, exit 4, if the\n"
	  "target has a group of that name).  Prints GROUP IMAGE@VERSION... as\n"
	  "at the target; on stderr, per member, how much differed.",
	  cmd_group_send, 3, 3 },
	{ "job", "latest", "JOB",
	  "the latest complete checkpoint group of JOB (groups JOB.1, JOB.2,\n"
	  "...: the greatest N whose member versions all still exist), as\n"
	  "NAME IMAGE@VERSION...; groups skipped for a missing member are named\n"
	  "on stderr.  Exit 3 if there is none.",
	  cmd_job_latest, 1, 1 },
	{ "job", "plan", "GROUP|JOB --hosts H1[,H2...] --as RUN",
	  "plan the restart of every VM of GROUP (or of JOB's latest complete\n"
	  "group) on the given hosts: member i becomes rank i, on host\n"
	  "i mod (number of hosts), deployed from its version as a fresh clone\n"
	  "RUN-i (refused if it exists) on device RUN-i.  Prints one block of\n"
	  "group=, rank=, host=, from=, image=, device= lines per rank, blocks\n"
	  "apart by an empty line: the plan that job apply reads.",
	  cmd_job_plan, 5, 5 },
	{ "job", "apply", "PLAN --host HOST --cache-dir DIR [--vm [--quiesce MODE] [--mount DIR]]",
	  "on HOST, deploy the ranks PLAN (a file, or - for stdin) puts there:\n"
	  "from its version, caches DIR/DEVICE.cache, commits to its clone;\n"
	  "prints each device path in rank order, and on stderr where each\n"
	  "rank went.  All or nothing: on a failure the ones deployed are\n"
	  "taken down again.  --vm makes each device VM DEVICE of the proxy,\n"
	  "in the job of the plan's group (as deploy --vm does with a job),\n"
	  "with --quiesce and --mount as for deploy (--mount: a host with one\n"
	  "rank only).",
	  cmd_job_apply, 5, 10 },
	{ NULL, "gc", "",
	  "delete the chunks no remaining version needs, copies beyond R, and\n"
	  "chunks of commits that never published (strays, after metad's\n"
	  "grace period); commits in flight keep theirs (spared); prints\n"
	  "deleted= kept= deferred= trimmed= strays= spared=",
	  cmd_gc, 0, 0 },
	{ NULL, "metrics", "[--textfile DIR]",
	  "the repository's health in the Prometheus text format: nodes live\n"
	  "and dead, chunks short of replicas, and per node its chunks, bytes,\n"
	  "heartbeat age, corrupt chunks found, scrub progress and requests.\n"
	  "--textfile: atomically replace DIR/blobcr.prom instead (node_exporter's\n"
	  "textfile collector; run it from a timer)",
	  cmd_metrics, 0, 2 },
	{ "node", "list", "", "list the storage nodes", cmd_node_list, 0, 0 },
	{ "node", "repair", "",
	  "re-replicate chunks that have fewer than R live replicas in distinct\n"
	  "failure domains; prints under_replicated= repaired= failed= lost=\n"
	  "(lost: no live copy left to copy from)",
	  cmd_node_repair, 0, 0 },
	{ "node", "drain", "ID",
	  "decommission, step one: node ID keeps serving reads but takes no new\n"
	  "copies, and its copies no longer count, so that repairs (metad's own,\n"
	  "or node repair) copy them elsewhere",
	  cmd_node_drain, 1, 1 },
	{ "node", "undrain", "ID", "make a draining node active again",
	  cmd_node_drain, 1, 1 },
	{ "node", "remove", "ID",
	  "decommission, step two: forget node ID for good once every chunk it\n"
	  "holds has R copies elsewhere (exit 4 otherwise); then stop its\n"
	  "blobcr-noded and wipe its data",
	  cmd_node_remove, 1, 1 },
	{ "node", "stat", "ADDR", "counters of the storage node at ADDR",
	  cmd_node_stat, 1, 1 },
	{ "node", "compact", "ADDR",
	  "reclaim the space of deleted chunks on the storage node at ADDR",
	  cmd_node_compact, 1, 1 },
	{ "key", "create", "[--dir DIR] NAME ROLE",
	  "make key NAME of ROLE (node, host, admin or metad): DIR/NAME.key,\n"
	  "readable by its owner only, and its public key in DIR/keys.pub, which\n"
	  "every server and client of the repository reads (copy it to each\n"
	  "host).  DIR defaults to the directory of --key, else that of blobcrctl.conf.",
	  cmd_key_create, 2, 4 },
	{ "key", "rotate", "[--dir DIR] NAME",
	  "give NAME a new key without downtime: the new public key joins\n"
	  "keys.pub next to the old one, then DIR/NAME.key is replaced (running\n"
	  "programs take it at their next session); retire the old one after",
	  cmd_key_rotate, 1, 3 },
	{ "key", "retire", "[--dir DIR] [--all] NAME",
	  "drop NAME's old public keys from keys.pub (after a rotation), or\n"
	  "with --all every key of NAME (revocation); sessions opened with a\n"
	  "dropped key end within a second.  Prints retired=N",
	  cmd_key_retire, 1, 4 },
	{ "key", "list", "[--dir DIR]", "the keys keys.pub lists, with their roles",
	  cmd_key_list, 0, 2 },
};

#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

/* Verbs that need no version manager: they talk to this host only. */
static bool is_local(const struct verb *v)
{
	return v->fn == cmd_node_stat || v->fn == cmd_node_compact ||
	       v->fn == cmd_dm_commit || v->fn == cmd_key_create ||
	       v->fn == cmd_key_rotate || v->fn == cmd_key_retire ||
	       v->fn == cmd_key_list ||
	       v->fn == cmd_undeploy || v->fn == cmd_status ||
	       v->fn == cmd_reattach || v->fn == cmd_vm_config;
}

static void verb_usage(FILE *f, const struct verb *v)
{
	fprintf(f, "Usage: blobcrctl [global options] %s%s%s %s\n%s\n",
		v->group ? v->group : "", v->group ? " " : "", v->name, v->args,
		v->help);
}

/* The verbs of @group (image, node, key, ...), each with its help; or false. */
static bool group_usage(FILE *f, const char *group)
{
	bool found = false;

	for (size_t i = 0; i < NVERBS; i++) {
		const struct verb *v = &verbs[i];

		if (!v->group || strcmp(v->group, group))
			continue;
		if (!found)
			fprintf(f, "Usage: blobcrctl [global options] %s VERB [args]\n"
				   "%s VERB --help for one verb's help.\n\n", group, group);
		fprintf(f, "%s %s %s\n  ", v->group, v->name, v->args);
		for (const char *p = v->help; *p; p++)
			if (*p == '\n')
				fputs("\n  ", f);
			else
				fputc(*p, f);
		fputs("\n\n", f);
		found = true;
	}
	return found;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: blobcrctl [global options] VERB [args]\n"
		"The dm-blobcr repository's command line.\n\n"
		"Global options:\n"
		"  -m, --meta ADDR     blobcr-metad address (default: $BLOBCR_META)\n"
		"  -k, --key FILE      our private key (default: $BLOBCR_KEY); the\n"
		"                      repository's keys.pub is read beside it\n"
		"  -e, --encrypt       encrypt payloads on the wire (also\n"
		"                      $BLOBCR_ENCRYPT=1)\n"
		"  -t, --timeout MS    per-request timeout (default 10000); blobcrd\n"
		"                      may take three times as long to attach\n"
		"  -q, --quiet         no progress bar, no summary lines\n"
		"      --config FILE   settings, one OPTION = VALUE a line\n"
		"                      (blobcr.conf(5); default\n"
		"                      %s/blobcrctl.conf): options given\n"
		"                      here override them\n"
		"  -h, --help          this help; VERB --help for a verb's, GROUP\n"
		"                      --help for a group's (image, node, ...)\n\nVerbs:\n",
		blobcr_config_dir);
	for (size_t i = 0; i < NVERBS; i++)
		fprintf(f, "  %s%s%-10s %s\n", verbs[i].group ? verbs[i].group : "",
			verbs[i].group ? " " : "", verbs[i].name, verbs[i].args);
	fprintf(f, "\nExit status: 0 ok, 1 failure, 2 usage, 3 not found, "
		   "4 conflict (retry), 5 repository unavailable,\n"
		   "6 denied (no key, a key refused, or a role that may not).\n");
}

static const struct verb *find_verb(int argc, char **argv, int *used)
{
	for (size_t i = 0; i < NVERBS; i++) {
		const struct verb *v = &verbs[i];

		if (!v->group && argc >= 1 && !strcmp(argv[0], v->name)) {
			*used = 1;
			return v;
		}
		if (v->group && argc >= 2 && !strcmp(argv[0], v->group) &&
		    !strcmp(argv[1], v->name)) {
			*used = 2;
			return v;
		}
	}
	return NULL;
}

/* The global options, after the settings of blobcrctl.conf. */
static int parse_global(int *argc, char ***argv, struct ctl *ctl)
{
	static const struct option opts[] = {
		{ "meta", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		{ "encrypt", no_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "config", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct blobcr_conf_env env[] = {
		{ "meta", "BLOBCR_META" }, { "key", "BLOBCR_KEY" },
		{ "encrypt", "BLOBCR_ENCRYPT" }, { NULL, NULL },
	};
	uint64_t v;
	int c;

	if (blobcr_conf_args("blobcrctl", opts, env, argc, argv))
		return -EINVAL;
	while ((c = getopt_long(*argc, *argv, "+m:k:et:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'F': break; /* read by blobcr_conf_args() */
		case 'm': ctl->meta = optarg; break;
		case 'k': ctl->key_file = optarg; break;
		case 'e': ctl->encrypt = 1; break;
		case 'q': ctl->quiet = 1; break;
		case 'h': usage(stdout); exit(0);
		case 't':
			if (blobcr_parse_u64(optarg, &v) || !v || v > 3600000) {
				blobcr_conf_bad(opts, c, NULL);
				return -EINVAL;
			}
			ctl->timeout_ms = (int)v;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return 0;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/*
 * Our key's path, absolute (a deployment's blobcrd is started with it, and
 * restarted later from anywhere), also in $BLOBCR_KEY for the programs we
 * start.
 */
static void settle_key(struct ctl *ctl, char *buf)
{
	const char *enc = getenv("BLOBCR_ENCRYPT");

	if (!ctl->key_file)
		ctl->key_file = getenv("BLOBCR_KEY");
	if (ctl->key_file && *ctl->key_file && realpath(ctl->key_file, buf)) {
		ctl->key_file = buf;
		setenv("BLOBCR_KEY", buf, 1);
	}
	if (enc && !strcmp(enc, "1"))
		ctl->encrypt = 1;
	else if (ctl->encrypt)
		setenv("BLOBCR_ENCRYPT", "1", 1);
}

int main(int argc, char **argv)
{
	struct ctl ctl = { .meta = getenv("BLOBCR_META"), .timeout_ms = 10000 };
	char key_path[PATH_MAX];
	const struct verb *v;
	int used, nargs, rc;

	blobcr_log_init("blobcrctl", BLOBCR_LOG_WARN);
	blobcr_heap_for_big_buffers();
	if (parse_global(&argc, &argv, &ctl))
		return EXIT_USAGE;
	settle_key(&ctl, key_path);
	argc -= optind;
	argv += optind;
	v = find_verb(argc, argv, &used);
	/* A group without one of its verbs: the group's verbs. */
	if (!v && argc && wants_help(argc, argv) && group_usage(stdout, argv[0]))
		return 0;
	if (!v && argc && group_usage(stderr, argv[0])) {
		if (argc > 1)
			fprintf(stderr, "blobcrctl: %s has no verb '%s'\n", argv[0],
				argv[1]);
		return EXIT_USAGE;
	}
	if (!v) {
		if (argc)
			fprintf(stderr, "blobcrctl: unknown verb '%s%s%s'\n", argv[0],
				argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
		usage(stderr);
		return EXIT_USAGE;
	}
	/* The verb sees argv[0] = its name, then its own arguments. */
	argc -= used - 1;
	argv += used - 1;
	if (wants_help(argc, argv)) {
		verb_usage(stdout, v);
		return 0;
	}
	nargs = argc - 1;
	if (nargs < v->min_args || nargs > v->max_args) {
		verb_usage(stderr, v);
		return EXIT_USAGE;
	}
	if (!is_local(v) && (rc = connect_ctl(&ctl)))
		return rc;
	optind = 0; /* GNU getopt: start afresh for the verb's options */
	rc = v->fn(&ctl, argc, argv);
	blobcr_close(ctl.c);
	return rc;
}
