// SPDX-License-Identifier: GPL-2.0
/*
 * blobcr-proxyd - the per-host checkpointing proxy (proxyd.h).  The main
 * thread: the resume guard, the VM files, the sockets, accept().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "blobcr-guest.h"
#include "blobcr_conf.h"
#include "blobcr_notify.h"
#include "blobcr_util.h"
#include "proxyd.h"

struct proxyd_opts opts = {
	.run_dir = BLOBCR_RUN_DIR,
	.vsock_port = BLOBCR_GUEST_VSOCK_PORT,
	.quiesce_timeout_ms = 10000,
};

static volatile sig_atomic_t stop, reload;

static void on_hup(int sig)
{
	(void)sig;
	reload = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: blobcr-proxyd [OPTIONS]\n"
"\n"
"The host's checkpointing proxy.  Serves the VMs described in\n"
"RUN_DIR/vm/NAME.vm (blobcrctl deploy --vm writes them; the directory is\n"
"watched) on RUN_DIR/proxy/NAME.sock, one socket per VM, where the VM's\n"
"QEMU connects its virtio-serial port (or a job on the host connects),\n"
"and on AF_VSOCK, where the guest's CID names the VM.  A checkpoint\n"
"request quiesces the VM it came from (QMP stop, guest agent fsfreeze, or\n"
"FIFREEZE of host mounts), snapshots all its disks in that pause, resumes\n"
"it and answers with the versions.  A resume guard process resumes any VM\n"
"left quiesced if the proxy dies.\n"
"\n"
"Options:\n"
"  --run-dir DIR          default " BLOBCR_RUN_DIR "\n"
"  --vsock-port PORT      AF_VSOCK port (default %d; 0: no vsock)\n"
"  --quiesce-timeout MS   a quiesce not done by then is undone and the\n"
"                         request fails (default 10000)\n"
"  --pidfile FILE         write the pid there once serving\n"
"  --key FILE             the key (role host) that publishes the checkpoint\n"
"                         groups of a VM whose helper has none (default\n"
"                         $BLOBCR_KEY)\n"
"  --config FILE          settings, one OPTION = VALUE a line\n"
"                         (blobcr.conf(5); default %s/proxyd.conf):\n"
"                         options given here override them\n"
"  --test-hold            tests only: after a VM's snapshot, keep it quiesced\n"
"                         while RUN_DIR/proxy/NAME.hold exists (to kill the\n"
"                         proxy in that window)\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"\n"
"SIGHUP rescans RUN_DIR/vm; SIGTERM and SIGINT stop it.\n",
		BLOBCR_GUEST_VSOCK_PORT, blobcr_config_dir);
}

static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int open_vsock(void)
{
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				 .svm_port = opts.vsock_port };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16)) {
		log_warn("no AF_VSOCK listener on port %u: %s (load vhost_vsock)",
			 opts.vsock_port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	log_info("listening on vsock port %u", opts.vsock_port);
	return fd;
}

/* A connection on @vm's socket: only root and the VM's uid may use it. */
static void accept_unix(struct vm *vm)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = accept4(vm->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) ||
	    (cr.uid != 0 && cr.uid != vm->cfg.uid)) {
		log_warn("%s: refused a connection from uid %d", vm->name, (int)cr.uid);
		close(fd);
		return;
	}
	vm_get(vm);
	serve_start(vm, fd);
}

/* A vsock connection: the peer's CID, which the host assigned, is the VM. */
static void accept_vsock(int lfd)
{
	struct sockaddr_vm a;
	socklen_t len = sizeof(a);
	int fd = accept4(lfd, (struct sockaddr *)&a, &len, SOCK_CLOEXEC);
	struct vm *vm;

	if (fd < 0)
		return;
	vm = vm_by_cid(a.svm_cid);
	if (!vm) {
		log_warn("refused a vsock connection from CID %u: no VM has it",
			 a.svm_cid);
		close(fd);
		return;
	}
	serve_start(vm, fd);
}

static int serve(void)
{
	enum { MAXFD = 260 };
	struct pollfd pfd[MAXFD];
	struct vm *vms[MAXFD];
	char dir[256];
	int ino, vsock = -1;

	snprintf(dir, sizeof(dir), "%s/vm", opts.run_dir);
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino < 0 || inotify_add_watch(ino, dir, IN_CLOSE_WRITE | IN_MOVED_TO |
					 IN_MOVED_FROM | IN_DELETE) < 0) {
		log_err("cannot watch %s: %s", dir, strerror(errno));
		return 1;
	}
	if (opts.vsock_port)
		vsock = open_vsock();
	vm_table_reload();
	blobcr_notify_ready("serving the VMs of %s/vm", opts.run_dir);
	while (!stop) {
		int n = vm_table_listeners(pfd + 2, vms, MAXFD - 2);

		pfd[0] = (struct pollfd){ .fd = ino, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = vsock, .events = POLLIN };
		if (poll(pfd, (nfds_t)n + 2, 1000) > 0) {
			if (pfd[1].revents & POLLIN)
				accept_vsock(vsock);
			for (int i = 0; i < n; i++)
				if (pfd[i + 2].revents & POLLIN)
					accept_unix(vms[i]);
			if (pfd[0].revents & POLLIN) {
				char ev[4096];

				while (read(ino, ev, sizeof(ev)) > 0)
					;
				reload = 1;
			}
		}
		for (int i = 0; i < n; i++)
			vm_put(vms[i]);
		if (reload) {
			reload = 0;
			vm_table_reload();
		}
	}
	log_info("stopping");
	blobcr_notify_stopping();
	vm_table_clear();
	if (vsock >= 0)
		close(vsock);
	close(ino);
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_RUN_DIR = 256, O_VSOCK, O_TIMEOUT, O_PIDFILE, O_HOLD, O_GUARD,
	       O_KEY, O_CONFIG };
	/*
	 * The first two are internal (the resume guard's process, a test's
	 * hold): no setting of proxyd.conf, which takes the rest.
	 */
	static const struct option lopts[] = {
		{ "guard", required_argument, NULL, O_GUARD },
		{ "test-hold", no_argument, NULL, O_HOLD },
		{ "run-dir", required_argument, NULL, O_RUN_DIR },
		{ "vsock-port", required_argument, NULL, O_VSOCK },
		{ "quiesce-timeout", required_argument, NULL, O_TIMEOUT },
		{ "pidfile", required_argument, NULL, O_PIDFILE },
		{ "key", required_argument, NULL, O_KEY },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const struct blobcr_conf_env env[] = {
		{ "key", "BLOBCR_KEY" }, { NULL, NULL },
	};
	const char *pidfile = NULL;
	int c, v, level = BLOBCR_LOG_INFO;
	char path[300];
	struct sigaction sa = { .sa_handler = on_hup };

	if (blobcr_conf_args("proxyd", lopts + 2, env, &argc, &argv))
		return 2;
	while ((c = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: break; /* read by blobcr_conf_args() */
		/* What the repository clients it makes fall back to. */
		case O_KEY: setenv("BLOBCR_KEY", optarg, 1); break;
		case O_RUN_DIR: opts.run_dir = optarg; break;
		case O_VSOCK:
			if (parse_int(optarg, 0, 0x7fffffff, &v))
				goto bad;
			opts.vsock_port = (unsigned int)v;
			break;
		case O_TIMEOUT:
			if (parse_int(optarg, 1, 3600000, &opts.quiesce_timeout_ms))
				goto bad;
			break;
		case O_PIDFILE: pidfile = optarg; break;
		case O_HOLD: opts.test_hold = true; break;
		case O_GUARD:
			if (parse_int(optarg, 0, 1 << 20, &v))
				goto bad;
			return guard_main(v);
		case 'v': level = BLOBCR_LOG_DEBUG; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	blobcr_log_init("blobcr-proxyd", level);
	blobcr_signals_init(&stop);
	sigaction(SIGHUP, &sa, NULL);
	snprintf(path, sizeof(path), "%s/vm", opts.run_dir);
	mkdir(opts.run_dir, 0755);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/proxy", opts.run_dir);
	mkdir(path, 0755);
	if (guard_start()) {
		log_err("cannot start the resume guard: %s", strerror(errno));
		return 1;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			log_err("cannot write %s", pidfile);
			return 1;
		}
	}
	return serve();
bad:
	blobcr_conf_bad(lopts, c, NULL);
	return 2;
}
