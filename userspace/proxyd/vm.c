// SPDX-License-Identifier: GPL-2.0
/*
 * vm.c - the host's VMs, as their files in BLOBCR_RUN_DIR/vm/ say, and
 * the socket the proxy owns for each.
 *
 * NAME.vm is read by host_vm_parse() (vmfile.c).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "proxyd.h"

#define MAX_VMS 256

pthread_mutex_t vm_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm *vms[MAX_VMS]; /* under vm_table_lock */
static int nvms;

void vm_get(struct vm *vm)
{
	pthread_mutex_lock(&vm_table_lock);
	vm->refs++;
	pthread_mutex_unlock(&vm_table_lock);
}

void vm_put(struct vm *vm)
{
	int left;

	pthread_mutex_lock(&vm_table_lock);
	left = --vm->refs;
	pthread_mutex_unlock(&vm_table_lock);
	if (left)
		return;
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

static void socket_path(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/proxy/%s.sock", opts.run_dir, name);
}

/* Bind the VM's socket, replacing a stale one (from a proxy that died). */
static int open_socket(struct vm *vm)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	socket_path(vm->name, a.sun_path, sizeof(a.sun_path));
	unlink(a.sun_path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    chmod(a.sun_path, 0600) ||
	    (vm->cfg.uid != (uid_t)-1 && chown(a.sun_path, vm->cfg.uid, (gid_t)-1)) ||
	    listen(fd, 16)) {
		int err = -errno;

		close(fd);
		return err;
	}
	vm->listen_fd = fd;
	return 0;
}

/* Take @vm out of the table (under vm_table_lock): no new connections. */
static void drop_locked(int i)
{
	struct vm *vm = vms[i];
	char path[256];

	vm->removed = true;
	close(vm->listen_fd);
	/* QEMU's chardev reconnects, to the VM's new socket if it has one. */
	for (int k = 0; k < vm->nconns; k++)
		shutdown(vm->conns[k], SHUT_RDWR);
	socket_path(vm->name, path, sizeof(path));
	unlink(path);
	vms[i] = vms[--nvms];
	log_info("%s: removed", vm->name);
	if (!--vm->refs) {
		pthread_mutex_destroy(&vm->lock);
		pthread_cond_destroy(&vm->cond);
		free(vm);
	}
}

static void add_vm(const char *name, const char *path, int64_t mtime_ns)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	char err[160];
	int r;

	if (!vm)
		return;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->path, sizeof(vm->path), "%s", path);
	vm->mtime_ns = mtime_ns;
	vm->refs = 1;
	vm->next_id = 1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	r = host_vm_parse(path, &vm->cfg, err, sizeof(err));
	if (!r) {
		r = open_socket(vm);
		if (r)
			snprintf(err, sizeof(err), "cannot listen on its socket: %s",
				 strerror(-r));
	}
	if (r || nvms == MAX_VMS) {
		log_err("%s: %s: not served", path, r ? err : "too many VMs");
		free(vm);
		return;
	}
	vm->seen = true;
	vms[nvms++] = vm;
	log_info("%s: %d disk(s), quiesce %s%s", name, vm->cfg.ndisks,
		 host_quiesce_name(vm->cfg.mode), vm->cfg.cid ? ", vsock" : "");
}

void vm_table_reload(void)
{
	char dir[256], path[512];
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/vm", opts.run_dir);
	pthread_mutex_lock(&vm_table_lock);
	for (int i = 0; i < nvms; i++)
		vms[i]->seen = false;
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char name[VM_NAME_MAX];
		int64_t mtime;
		int i;

		if (n < 4 || strcmp(e->d_name + n - 3, ".vm") || n - 3 >= VM_NAME_MAX)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 3), e->d_name);
		if (!host_vm_name_ok(name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		for (i = 0; i < nvms && strcmp(vms[i]->name, name); i++)
			;
		if (i < nvms && vms[i]->mtime_ns == mtime) {
			vms[i]->seen = true;
			continue;
		}
		if (i < nvms)
			drop_locked(i); /* changed: serve it afresh */
		add_vm(name, path, mtime);
	}
	if (d)
		closedir(d);
	for (int i = nvms - 1; i >= 0; i--)
		if (!vms[i]->seen)
			drop_locked(i);
	pthread_mutex_unlock(&vm_table_lock);
}

void vm_table_clear(void)
{
	pthread_mutex_lock(&vm_table_lock);
	while (nvms)
		drop_locked(nvms - 1);
	pthread_mutex_unlock(&vm_table_lock);
}

int vm_table_listeners(struct pollfd *fds, struct vm **out, int max)
{
	int n = 0;

	pthread_mutex_lock(&vm_table_lock);
	for (int i = 0; i < nvms && n < max; i++, n++) {
		fds[n] = (struct pollfd){ .fd = vms[i]->listen_fd, .events = POLLIN };
		out[n] = vms[i];
		vms[i]->refs++;
	}
	pthread_mutex_unlock(&vm_table_lock);
	return n;
}

int vm_conn_add(struct vm *vm, int fd)
{
	int err = 0;

	pthread_mutex_lock(&vm_table_lock);
	if (vm->removed || vm->nconns == (int)(sizeof(vm->conns) / sizeof(vm->conns[0])))
		err = vm->removed ? -ENODEV : -EMFILE;
	else
		vm->conns[vm->nconns++] = fd;
	pthread_mutex_unlock(&vm_table_lock);
	return err;
}

void vm_conn_del(struct vm *vm, int fd)
{
	pthread_mutex_lock(&vm_table_lock);
	for (int k = 0; k < vm->nconns; k++)
		if (vm->conns[k] == fd) {
			vm->conns[k] = vm->conns[--vm->nconns];
			break;
		}
	pthread_mutex_unlock(&vm_table_lock);
}

struct vm *vm_by_cid(uint32_t cid)
{
	struct vm *vm = NULL;

	pthread_mutex_lock(&vm_table_lock);
	for (int i = 0; i < nvms && !vm; i++)
		if (vms[i]->cfg.cid == cid) {
			vm = vms[i];
			vm->refs++;
		}
	pthread_mutex_unlock(&vm_table_lock);
	return vm;
}
