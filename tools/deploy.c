// SPDX-License-Identifier: GPL-2.0
/*
 * deploy.c - deploy, commit, status and undeploy of dm-blobcr devices.
 *
 * deploy: the cache is a block device, or a sparse file put on a loop
 * device (auto-cleared when the target lets go of it); the "blobcr" table is
 * loaded through libdevmapper; blobcrd is started in its own session and
 * deploy returns once it has attached to the target's channel.  Under
 * systemd the helper is the unit blobcrd@DMNAME.service, supervised and
 * logging to the journal; else deploy forks it, in a session of its own.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libdevmapper.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/dm-blobcr.h>
#include <systemd/sd-daemon.h>

#include "blobcr.h"
#include "blobcr_host.h"
#include "deploy.h"
#include "vm.h"

#define SECTOR 512ULL

int say(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("blobcrctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* ---- libdevmapper ---- */

/* Quiet libdevmapper: we report failures ourselves, in our words. */
static void dm_quiet(int level, const char *file, int line, int dm_errno,
		     const char *f, ...)
{
	(void)level; (void)file; (void)line; (void)dm_errno; (void)f;
}

static int dm_run(int type, const char *name, uint64_t sectors,
		  const char *params)
{
	struct dm_task *dmt = dm_task_create(type);
	uint32_t cookie = 0;
	int ok;

	if (!dmt)
		return -ENOMEM;
	ok = dm_task_set_name(dmt, name);
	if (ok && params)
		ok = dm_task_add_target(dmt, 0, sectors, "blobcr", params);
	if (ok && type == DM_DEVICE_REMOVE)
		dm_task_retry_remove(dmt);
	ok = ok && dm_task_set_cookie(dmt, &cookie, 0) && dm_task_run(dmt);
	if (cookie)
		dm_udev_wait(cookie);
	dm_task_destroy(dmt);
	return ok ? 0 : -EIO;
}

/* ---- the cache ---- */

/*
 * Put @file on a free loop device; its path goes to @dev and an open file
 * on it to *@loop_fd.  The device clears itself on its last close
 * (autoclear): keep *@loop_fd open until the table holds the device.
 */
static int loop_attach(const char *file, char *dev, size_t len, int *loop_fd)
{
	struct loop_config cfg = { .info.lo_flags = LO_FLAGS_AUTOCLEAR };
	int ctl, fd, err = -EBUSY;
	int file_fd = open(file, O_RDWR | O_CLOEXEC);

	if (file_fd < 0)
		return -errno;
	cfg.fd = (__u32)file_fd;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		err = -errno;
		goto out_close_file;
	}
	/* Another process may take the free device first: try again. */
	for (int tries = 0; tries < 10 && err == -EBUSY; tries++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0) {
			err = -errno;
			break;
		}
		snprintf(dev, len, "/dev/loop%d", n);
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
			break;
		}
		err = ioctl(fd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
		if (err)
			close(fd);
		else
			*loop_fd = fd;
	}
	close(ctl);
out_close_file:
	close(file_fd);
	return err;
}

/*
 * A block device is used as it is; a path that is not one becomes a sparse
 * file of @bytes (an existing file must have that size) on a loop device,
 * held open in *@loop_fd (else -1) until the table holds it.
 */
static int prepare_cache(const char *path, uint64_t bytes, char *dev,
			 size_t len, int *loop_fd)
{
	struct stat st;
	int fd, err;

	if (!stat(path, &st) && S_ISBLK(st.st_mode)) {
		int bfd = open(path, O_RDONLY | O_CLOEXEC);
		uint64_t size = 0;

		if (bfd < 0 || ioctl(bfd, BLKGETSIZE64, &size) < 0)
			err = -errno;
		else
			err = size < bytes ? -ENOSPC : 0;
		if (bfd >= 0)
			close(bfd);
		if (err) {
			say(0, "cache %s: %s (needs %" PRIu64 " bytes)", path,
			    strerror(-err), bytes);
			return err;
		}
		snprintf(dev, len, "%s", path);
		return 0;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (st.st_size && (uint64_t)st.st_size != bytes) {
		err = -EEXIST;
		say(0, "cache file %s exists with another size (%lld bytes, needs %" PRIu64 ")",
		    path, (long long)st.st_size, bytes);
		goto out;
	}
	err = ftruncate(fd, (off_t)bytes) < 0 ? -errno : 0;
	if (!err)
		err = loop_attach(path, dev, len, loop_fd);
out:
	if (fd >= 0)
		close(fd);
	if (err && err != -EEXIST)
		say(0, "cache %s: %s", path, strerror(-err));
	return err;
}

/* ---- the helper ---- */

/* blobcrd next to this program in the build tree, else $BLOBCRD or PATH. */
static void blobcrd_path(char *out, size_t len)
{
	char self[PATH_MAX - 64];
	ssize_t n;
	char *slash;

	if (getenv("BLOBCRD")) {
		snprintf(out, len, "%s", getenv("BLOBCRD"));
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/../userspace/blobcrd/blobcrd", self);
			if (!access(out, X_OK))
				return;
			snprintf(out, len, "%s/blobcrd", self);
			if (!access(out, X_OK))
				return;
		}
	}
	snprintf(out, len, "blobcrd");
}

/* BLOBCR_RUN_DIR/NAME.SUFFIX */
static void run_file(const char *name, const char *suffix, char *path,
		     size_t len)
{
	snprintf(path, len, BLOBCR_RUN_DIR "/%s.%s", name, suffix);
}

/*
 * A deployment's helper command line is kept, one argument per line, in
 * BLOBCR_RUN_DIR/NAME.args, so that `blobcrctl reattach` can start the
 * same helper again.
 */
static int save_helper_args(const char *name, char *const argv[])
{
	char path[PATH_MAX];
	FILE *f;

	run_file(name, "args", path, sizeof(path));
	f = fopen(path, "w");
	if (!f)
		return -errno;
	for (int i = 0; argv[i]; i++)
		fprintf(f, "%s\n", argv[i]);
	return fclose(f) ? -errno : 0;
}

#define MAX_HELPER_ARGS 32

/* Read NAME.args into @argv (malloc'ed strings), leaving room for 4 more. */
static int load_helper_args(const char *name, char **argv)
{
	char path[PATH_MAX], line[PATH_MAX];
	int n = 0;
	FILE *f;

	run_file(name, "args", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (n < MAX_HELPER_ARGS - 5 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		argv[n++] = strdup(line);
	}
	fclose(f);
	argv[n] = NULL;
	return n ? 0 : -EINVAL;
}

/*
 * Run @argv (systemctl), its output to /dev/null if @quiet, and wait up to
 * @wait_ms for it: its exit status, or -ETIMEDOUT (it is killed).
 */
static int run_bounded(char *const argv[], bool quiet, int wait_ms)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = quiet ? open("/dev/null", O_WRONLY) : -1;

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "blobcrctl: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 20) {
		if (waited >= wait_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * blobcrd@DMNAME.service, the unit of deployment @name: the instance is
 * escaped as systemd-escape(1) does (the unit takes it back with %I).
 */
static void helper_unit(const char *name, char *unit, size_t len)
{
	size_t n = (size_t)snprintf(unit, len, "blobcrd@");

	for (const char *p = name; *p && n + 5 < len; p++) {
		unsigned char ch = (unsigned char)*p;

		if (isalnum(ch) || ch == ':' || ch == '_' ||
		    (ch == '.' && p != name))
			unit[n++] = (char)ch;
		else
			n += (size_t)snprintf(unit + n, len - n, "\\x%02x", ch);
	}
	snprintf(unit + n, len - n, ".service");
}

/*
 * Whether deployment @name's helper runs under systemd: when systemd is
 * PID 1 and knows the blobcrd@.service template; if not, @why says why.
 */
static bool use_systemd(const char *unit, int wait_ms, const char **why)
{
	char *argv[] = { "systemctl", "cat", (char *)unit, NULL };

	if (sd_booted() <= 0) {
		*why = "systemd is not running";
		return false;
	}
	*why = "blobcrd@.service is not installed";
	return run_bounded(argv, true, wait_ms) == 0;
}

/* The unit deployment @name's helper runs under (NAME.unit), or "". */
static void read_unit(const char *name, char *unit, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	run_file(name, "unit", path, sizeof(path));
	unit[0] = '\0';
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(unit, (int)len, f))
		unit[0] = '\0';
	unit[strcspn(unit, "\n")] = '\0';
	fclose(f);
}

static pid_t read_pidfile(const char *name)
{
	char path[PATH_MAX];
	long pid = 0;
	FILE *f;

	run_file(name, "pid", path, sizeof(path));
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/*
 * Start blobcrd@NAME.service, which runs the saved arguments, and wait up
 * to @wait_ms until it is ready (Type=notify: attached and serving).  Its
 * name goes to NAME.unit, for status, reattach and undeploy.
 */
static int start_unit(const char *name, const char *unit, int wait_ms)
{
	char *start[] = { "systemctl", "start", (char *)unit, NULL };
	char *stop[] = { "systemctl", "stop", (char *)unit, NULL };
	char path[PATH_MAX];
	FILE *f;
	int r;

	r = run_bounded(start, false, wait_ms);
	if (r) {
		if (r == -ETIMEDOUT)
			say(0, "%s did not attach within %.1f s: see journalctl -u %s",
			    unit, wait_ms / 1e3, unit);
		else
			say(0, "%s did not start: see journalctl -u %s", unit, unit);
		/* No restarts: the device goes away. */
		run_bounded(stop, true, wait_ms);
		return -EIO;
	}
	run_file(name, "unit", path, sizeof(path));
	f = fopen(path, "w");
	if (!f || fprintf(f, "%s\n", unit) < 0 || fclose(f)) {
		say(0, "cannot write %s: %s", path, strerror(errno));
		run_bounded(stop, true, wait_ms);
		return -EIO;
	}
	fprintf(stderr, "blobcrctl: %s: blobcrd runs as %s (its log: journalctl -u %s)\n",
		name, unit, unit);
	return 0;
}

/*
 * Start the helper of deployment @name in its own session, logging to
 * BLOBCR_RUN_DIR/NAME.log, and wait up to @wait_ms until it has attached.
 * @why says why not under systemd.
 */
static int fork_helper(const char *name, int wait_ms, const char *why)
{
	char *argv[MAX_HELPER_ARGS] = { 0 };
	char log[PATH_MAX], pidfile[PATH_MAX], ready[16];
	int pipefd[2], status, n;
	struct pollfd p;
	char ok;
	pid_t pid;

	status = load_helper_args(name, argv);
	if (status)
		return say(status, "no saved helper for %s: %s", name,
			   strerror(-status));
	if (pipe(pipefd) < 0)
		return -errno;
	for (n = 0; argv[n]; n++)
		;
	run_file(name, "pid", pidfile, sizeof(pidfile));
	snprintf(ready, sizeof(ready), "%d", pipefd[1]);
	argv[n++] = "--pidfile";
	argv[n++] = pidfile;
	argv[n++] = "--ready-fd";
	argv[n++] = ready;
	run_file(name, "log", log, sizeof(log));
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/* Double fork: the helper must outlive us, unparented. */
		if (fork())
			_exit(0);
		setsid();
		close(pipefd[0]);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	waitpid(pid, &status, 0);
	p = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
	status = poll(&p, 1, wait_ms) == 1 && read(pipefd[0], &ok, 1) == 1 ? 0 : -EIO;
	close(pipefd[0]);
	if (status)
		say(0, "blobcrd did not attach within %.1f s: see %s",
		    wait_ms / 1e3, log);
	else
		fprintf(stderr, "blobcrctl: %s: blobcrd runs as pid %d, its log in %s (not under systemd: %s)\n",
			name, (int)read_pidfile(name), log, why);
	return status;
}

/* Start deployment @name's helper: under systemd if it runs, else forked. */
static int start_helper(const char *name, int wait_ms)
{
	char unit[PATH_MAX], path[PATH_MAX];
	const char *why;

	helper_unit(name, unit, sizeof(unit));
	if (use_systemd(unit, wait_ms, &why))
		return start_unit(name, unit, wait_ms);
	run_file(name, "unit", path, sizeof(path));
	unlink(path);
	return fork_helper(name, wait_ms, why);
}

/*
 * Stop the helper of @name if it runs: its unit, or its process (SIGTERM,
 * then SIGKILL after 5 s).
 */
static void stop_helper(const char *name, int wait_ms)
{
	char unit[PATH_MAX], path[PATH_MAX];
	pid_t pid;

	read_unit(name, unit, sizeof(unit));
	if (unit[0]) {
		char *stop[] = { "systemctl", "stop", unit, NULL };

		if (!run_bounded(stop, false, wait_ms)) {
			run_file(name, "unit", path, sizeof(path));
			unlink(path);
			return;
		}
		say(0, "systemctl stop %s failed: stopping blobcrd itself", unit);
	}
	pid = read_pidfile(name);
	if (pid <= 0 || kill(pid, SIGTERM))
		return;
	for (int i = 0; i < 100 && !kill(pid, 0); i++)
		usleep(50000);
	kill(pid, SIGKILL);
}

/* ---- verbs ---- */

struct deploy_opts {
	const char *cache, *as, *commit_to;
	int threads;
	unsigned int helper_timeout_ms;
	struct vm_opts vm; /* --vm and its settings */
};

static int parse_deploy(int argc, char **argv, struct deploy_opts *o)
{
	static const struct option opts[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "as", required_argument, NULL, 'a' },
		{ "commit-to", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'j' },
		{ "helper-timeout", required_argument, NULL, 'T' },
		VM_OPTIONS,
		{ 0 }
	};
	int c, r;

	o->threads = 4;
	o->vm.mode = -1;
	while ((c = getopt_long(argc, argv, "c:a:t:j:T:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o->cache = optarg; break;
		case 'a': o->as = optarg; break;
		case 't': o->commit_to = optarg; break;
		case 'j': o->threads = atoi(optarg); break;
		case 'T': o->helper_timeout_ms = (unsigned int)atoi(optarg); break;
		default:
			if (c < 0x100 || c > 0x108)
				return EXIT_USAGE;
			r = vm_parse_opt(&o->vm, c, optarg);
			if (r)
				return r;
		}
	}
	if (!o->vm.name && (o->vm.mode >= 0 || o->vm.nmounts || o->vm.cid ||
			    o->vm.print || o->vm.output || o->vm.microvm ||
			    o->vm.job))
		return say(EXIT_USAGE, "--quiesce, --mount, --cid, --job, --machine, --qemu, --libvirt and --output go with --vm NAME");
	if (optind != argc - 1 || !o->cache || !o->as)
		return say(EXIT_USAGE, "deploy needs NAME[@VERSION] --cache PATH --as DMNAME");
	if (strlen(o->as) > BLOBCR_CHANNEL_MAX || strchr(o->as, '/'))
		return say(EXIT_USAGE, "'%s' is not a usable device name", o->as);
	return 0;
}

/* The image and version to show, and where commits go, on top of what. */
static int resolve_images(struct blobcr_client *c, const char *ref,
			  const struct deploy_opts *o, struct blobcr_image_info *ii,
			  char *image_ref, char *commit_ref, size_t len)
{
	struct blobcr_image_info ci;
	char name[BLOBCR_NAME_MAX];
	const char *at = strchr(ref, '@');
	size_t n = at ? (size_t)(at - ref) : strlen(ref);
	uint32_t version = at ? (uint32_t)strtoul(at + 1, NULL, 10) : 0;
	int err;

	if (!n || n >= sizeof(name) || (at && !version))
		return say(EXIT_USAGE, "'%s' is not NAME or NAME@VERSION", ref);
	memcpy(name, ref, n);
	name[n] = '\0';
	err = blobcr_image_info(c, name, ii);
	if (err)
		return say(err == -ENOENT ? EXIT_NOTFOUND : EXIT_FAIL,
			   "image %s: %s", name, blobcr_strerror(err));
	if (!version)
		version = ii->latest;
	if (version > ii->latest)
		return say(EXIT_NOTFOUND, "image %s has no version %u", name, version);
	snprintf(image_ref, len, "%s@%u", name, version);
	if (!o->commit_to) {
		snprintf(commit_ref, len, "%s", image_ref);
		return 0;
	}
	/* The paper's CLONE: commits go to a clone sharing all of name@version. */
	err = blobcr_image_info(c, o->commit_to, &ci);
	if (err == -ENOENT) {
		err = blobcr_image_clone(c, name, version, o->commit_to);
		if (!err)
			err = blobcr_image_info(c, o->commit_to, &ci);
	}
	if (err)
		return say(EXIT_FAIL, "clone %s into %s: %s", image_ref,
			   o->commit_to, blobcr_strerror(err));
	snprintf(commit_ref, len, "%s@%u", o->commit_to, ci.latest);
	return 0;
}

int deploy_cmd_deploy(struct blobcr_client *c, const char *meta,
		      int helper_wait_ms, int argc, char **argv)
{
	char image_ref[BLOBCR_NAME_MAX + 16], commit_ref[BLOBCR_NAME_MAX + 16];
	char dev[PATH_MAX], params[PATH_MAX + 128], helper[PATH_MAX];
	char threads[16], tag[BLOBCR_CHANNEL_MAX + 32], label_file[PATH_MAX];
	struct blobcr_image_info ii;
	struct deploy_opts o = { 0 };
	uint64_t sectors;
	int loop_fd = -1, r;

	r = parse_deploy(argc, argv, &o);
	if (!r)
		r = resolve_images(c, argv[argc - 1], &o, &ii, image_ref,
				   commit_ref, sizeof(image_ref));
	if (r)
		return r;
	if (ii.size % SECTOR || ii.extent_size % SECTOR)
		return say(EXIT_FAIL, "image size and extent size must be multiples of 512");
	sectors = ii.size / SECTOR;
	if (prepare_cache(o.cache, ii.size, dev, sizeof(dev), &loop_fd))
		return EXIT_FAIL;
	if (o.helper_timeout_ms)
		snprintf(params, sizeof(params), "%s %u %s 2 helper_timeout_ms %u",
			 dev, ii.extent_size / 512, o.as, o.helper_timeout_ms);
	else
		snprintf(params, sizeof(params), "%s %u %s", dev,
			 ii.extent_size / 512, o.as);
	dm_log_with_errno_init(dm_quiet);
	r = dm_run(DM_DEVICE_CREATE, o.as, sectors, params);
	if (loop_fd >= 0)
		close(loop_fd);	/* the table holds the loop device now */
	if (r)
		return say(EXIT_FAIL, "cannot create /dev/mapper/%s (table: 0 %" PRIu64
			   " blobcr %s): see the kernel log", o.as, sectors, params);

	mkdir(BLOBCR_RUN_DIR, 0755);
	blobcrd_path(helper, sizeof(helper));
	snprintf(threads, sizeof(threads), "%d", o.threads);
	snprintf(label_file, sizeof(label_file), BLOBCR_RUN_DIR "/%s.label", o.as);
	/* Names this deployment's versions: see blobcrd --tag. */
	snprintf(tag, sizeof(tag), "%s.%08lx%04x", o.as, (long)time(NULL),
		 (unsigned int)getpid() & 0xffff);
	{
		char *hargv[] = { helper, "--meta", (char *)meta, "--key",
				  (char *)blobcr_key_file(c), "--channel",
				  (char *)o.as, "--image", image_ref, "--cache",
				  dev, "--commit-to", commit_ref, "--threads",
				  threads, "--tag", tag, "--label-file",
				  label_file, NULL };

		if (save_helper_args(o.as, hargv) || start_helper(o.as, helper_wait_ms)) {
			dm_run(DM_DEVICE_REMOVE, o.as, 0, NULL);
			return EXIT_FAIL;
		}
	}
	printf("/dev/mapper/%s\n", o.as);
	fflush(stdout);
	return o.vm.name ? vm_add_disk(&o.vm, o.as) : 0;
}

/* blobcrctl's words and exit status for a failed host_open_channel(). */
static int channel_error(const char *name, int err)
{
	if (err == -ENOENT)
		return say(EXIT_NOTFOUND, "no device-mapper device %s", name);
	if (err == -EMEDIUMTYPE)
		return say(EXIT_FAIL, "%s is not a blobcr device", name);
	return say(EXIT_FAIL, "channel of %s: %s", name, strerror(-err));
}

static int open_channel_of(const char *name, int *fd)
{
	int err = host_open_channel(name, fd);

	return err ? channel_error(name, err) : 0;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Open @mnt for --freeze, refusing a directory not on @name's device. */
static int open_fs_on(const char *name, const char *mnt, int *fsfd)
{
	int err = host_open_mount_on(name, mnt, fsfd);

	if (err == -EXDEV)
		return say(EXIT_USAGE, "%s is not on %s (a file system mounted from /dev/mapper/%s is); nothing committed",
			   mnt, name, name);
	if (err)
		return say(EXIT_FAIL, "cannot freeze %s: %s; nothing committed",
			   mnt, strerror(-err));
	return 0;
}

/* What one commit took, for the line on stderr, and the file system's fate. */
struct commit_times {
	double freeze_ms, frozen_ms, resumed_ms;
	int freeze_err, thaw_err;
};

/*
 * Take the snapshot: with @fsfd (else -1), freeze that file system around
 * the swap.  Return: 0 or the commit's errno; a failed freeze (nothing
 * committed) or thaw is in @ct.
 */
static int take_snapshot(int fd, int fsfd, struct blobcr_commit *cm,
			 struct commit_times *ct)
{
	struct timespec t0, t1;
	size_t failed;
	sigset_t old;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fsfd >= 0) {
		host_block_signals(&old);
		r = host_freeze(&fsfd, 1, &failed);
		if (r) {
			ct->freeze_err = -r;
			sigprocmask(SIG_SETMASK, &old, NULL);
			return ct->freeze_err;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ct->freeze_ms = ms_since(&t0);
	/* Returns once the target took the commit set and accepts writes. */
	r = -host_commit_nowait(fd, cm);
	if (fsfd >= 0) {
		ct->thaw_err = -host_thaw(&fsfd, 1);
		sigprocmask(SIG_SETMASK, &old, NULL);
		ct->frozen_ms = ms_since(&t1);
	}
	ct->resumed_ms = ms_since(&t0);
	return r;
}

int deploy_cmd_commit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "resume", required_argument, NULL, 'r' },
		{ "label", required_argument, NULL, 'l' },
		{ "freeze", required_argument, NULL, 'f' },
		{ 0 }
	};
	struct blobcr_commit cm = { 0 };
	const char *resume = NULL, *label = NULL, *mnt = NULL, *name;
	struct commit_times ct = { 0 };
	struct timespec t0;
	int c, fd, fsfd = -1, r;

	while ((c = getopt_long(argc, argv, "r:l:f:", opts, NULL)) != -1) {
		if (c == 'r')
			resume = optarg;
		else if (c == 'l')
			label = optarg;
		else if (c == 'f')
			mnt = optarg;
		else
			return EXIT_USAGE;
	}
	if (optind != argc - 1)
		return say(EXIT_USAGE, "commit needs DMNAME");
	name = argv[optind];
	if (label && (strlen(label) > 63 || strchr(label, '\n') || !*label))
		return say(EXIT_USAGE, "a label is 1 to 63 characters on one line");
	r = open_channel_of(name, &fd);
	if (r)
		return r;
	if (mnt && (r = open_fs_on(name, mnt, &fsfd))) {
		close(fd);
		return r;
	}
	if (label && (r = host_set_label(name, label))) {
		close(fd);
		if (fsfd >= 0)
			close(fsfd);
		return say(EXIT_FAIL, "cannot hand the label to blobcrd: %s",
			   strerror(-r));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = take_snapshot(fd, fsfd, &cm, &ct);
	if (fsfd >= 0)
		close(fsfd);
	if (ct.thaw_err)
		say(0, "cannot thaw %s: %s (fsfreeze -u %s)", mnt,
		    strerror(ct.thaw_err), mnt);
	if (!r && resume && system(resume))
		say(0, "--resume command failed: %s", resume);
	if (!r) {
		uint64_t version = 0;

		r = -host_commit_wait(fd, cm.commit_id, &version);
		cm.version = version;
	}
	close(fd);
	if (label)
		host_set_label(name, NULL);
	if (ct.freeze_err)
		return say(EXIT_FAIL, "cannot freeze %s: %s; nothing committed",
			   mnt, strerror(ct.freeze_err));
	if (r)
		return say(r == EBUSY ? EXIT_CONFLICT : EXIT_FAIL, "commit of %s failed: %s",
			   name, strerror(r));
	printf("%llu\n", (unsigned long long)cm.version);
	if (mnt)
		fprintf(stderr, "blobcrctl: %s: froze %s in %.1f ms, thawed %.3f ms later\n",
			name, mnt, ct.freeze_ms, ct.frozen_ms);
	fprintf(stderr, "blobcrctl: %s: version %llu, %llu extents, writes paused %.3f ms, resumed after %.1f ms, published after %.1f ms\n",
		name, (unsigned long long)cm.version,
		(unsigned long long)cm.nr_extents, cm.pause_ns / 1e6,
		ct.resumed_ms, ms_since(&t0));
	if (ct.thaw_err)
		return say(EXIT_FAIL, "version %llu committed, but %s is still frozen",
			   (unsigned long long)cm.version, mnt);
	return 0;
}

int deploy_cmd_reattach(int helper_wait_ms, int argc, char **argv)
{
	int fd, r;

	if (argc != 2)
		return say(EXIT_USAGE, "reattach needs DMNAME");
	r = open_channel_of(argv[1], &fd);
	if (r)
		return r;
	close(fd);
	stop_helper(argv[1], helper_wait_ms);
	return start_helper(argv[1], helper_wait_ms) ? EXIT_FAIL : 0;
}

int deploy_cmd_undeploy(int helper_wait_ms, int argc, char **argv)
{
	if (argc != 2)
		return say(EXIT_USAGE, "undeploy needs DMNAME");
	/* Stop the helper first, then take the device down. */
	stop_helper(argv[1], helper_wait_ms);
	dm_log_with_errno_init(dm_quiet);
	if (dm_run(DM_DEVICE_REMOVE, argv[1], 0, NULL))
		return say(EXIT_FAIL, "cannot remove /dev/mapper/%s (still open?)",
			   argv[1]);
	vm_remove_disk(argv[1]);
	return 0;
}

static const char *mode_name(uint32_t mode)
{
	switch (mode) {
	case BLOBCR_MODE_RW: return "rw";
	case BLOBCR_MODE_RO: return "ro";
	case BLOBCR_MODE_FAIL: return "fail";
	default: return "?";
	}
}

/* The state of @name as one JSON object, added to array @all. */
static void json_status(json_object *all, const char *name,
			const struct blobcr_info *in, pid_t pid, const char *unit)
{
	const struct {
		const char *key;
		uint64_t v;
	} f[] = {
		{ "present_extents", in->nr_present },
		{ "extents", in->nr_extents },
		{ "dirty_extents", in->nr_dirty },
		{ "committing_extents", in->nr_committing },
		{ "fetches_queued", in->fetches_queued },
		{ "fetches_inflight", in->fetches_inflight },
		{ "commits", in->commits_done },
		{ "last_version", in->last_version },
		{ "helpers", in->nr_helpers },
		{ "extent_bytes", (uint64_t)in->extent_sectors * 512 },
	};
	json_object *o = json_object_new_object();

	json_object_object_add(o, "device", json_object_new_string(name));
	json_object_object_add(o, "mode",
			       json_object_new_string(mode_name(in->mode)));
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_object_object_add(o, f[i].key,
				       json_object_new_uint64(f[i].v));
	if (pid > 0)
		json_object_object_add(o, "blobcrd_pid", json_object_new_int(pid));
	json_object_object_add(o, "blobcrd_unit",
			       unit[0] ? json_object_new_string(unit) : NULL);
	json_object_array_add(all, o);
}

/*
 * The state of @name, as a line or into the JSON array @json; with
 * @quiet_other, nothing for a non-blobcr device.
 */
static int show_status(const char *name, bool quiet_other, json_object *json)
{
	struct blobcr_info in;
	char unit[PATH_MAX];
	pid_t pid;
	int fd, r;

	r = host_open_channel(name, &fd);
	if (r == -EMEDIUMTYPE && quiet_other)
		return 0;
	if (r)
		return channel_error(name, r);
	r = host_info(fd, &in);
	close(fd);
	if (r)
		return say(EXIT_FAIL, "%s: %s", name, strerror(-r));
	/* Its blobcrd, as deploy started it: pid, and unit if systemd's. */
	pid = read_pidfile(name);
	read_unit(name, unit, sizeof(unit));
	if (json) {
		json_status(json, name, &in, pid, unit);
		return 0;
	}
	printf("%s: mode=%s present=%llu/%llu dirty=%llu committing=%llu fetches=%u+%u commits=%llu last_version=%llu helpers=%u extent=%uKiB",
	       name, mode_name(in.mode), (unsigned long long)in.nr_present,
	       (unsigned long long)in.nr_extents, (unsigned long long)in.nr_dirty,
	       (unsigned long long)in.nr_committing, in.fetches_queued,
	       in.fetches_inflight, (unsigned long long)in.commits_done,
	       (unsigned long long)in.last_version, in.nr_helpers,
	       in.extent_sectors / 2);
	if (pid > 0)
		printf(" blobcrd=%d unit=%s", (int)pid, unit[0] ? unit : "none");
	putchar('\n');
	return 0;
}

/* Every blobcr device's state (into @json if not NULL). */
static int show_all(json_object *json)
{
	struct dm_task *dmt;
	struct dm_names *names;
	int r = 0;
	unsigned int next = 0;

	/* Every blobcr device. */
	dm_log_with_errno_init(dm_quiet);
	dmt = dm_task_create(DM_DEVICE_LIST);
	if (!dmt || !dm_task_run(dmt) || !(names = dm_task_get_names(dmt))) {
		if (dmt)
			dm_task_destroy(dmt);
		return say(EXIT_FAIL, "cannot list device-mapper devices");
	}
	if (names->dev) {
		do {
			names = (struct dm_names *)((char *)names + next);
			if (show_status(names->name, true, json))
				r = EXIT_FAIL;
			next = names->next;
		} while (next);
	}
	dm_task_destroy(dmt);
	return r;
}

int deploy_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	json_object *json = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c != 'j')
			return EXIT_USAGE;
		json = json_object_new_array();
		if (!json)
			return say(EXIT_FAIL, "out of memory");
	}
	if (argc - optind > 1)
		return say(EXIT_USAGE, "status takes at most one DMNAME");
	r = argc - optind == 1 ? show_status(argv[optind], false, json) :
				 show_all(json);
	if (json && !r)
		puts(json_object_to_json_string_ext(json, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(json);
	return r;
}
