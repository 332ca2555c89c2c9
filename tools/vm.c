// SPDX-License-Identifier: GPL-2.0
/*
 * vm.c - blobcrctl's VM files and hypervisor configuration (vm.h).
 *
 * QEMU gets each disk as a raw host device with cache=none and native AIO
 * (a hypervisor on a raw host device: no page cache of its own between the
 * guest and the target, so what QEMU flushes at "stop" is on the device),
 * the checkpoint channel as a virtio-serial port whose chardev connects to
 * the proxy's socket for the VM, its QMP or guest agent socket for the
 * proxy's quiesce, and a vsock device with the VM's CID.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobcr_util.h"
#include "deploy.h"
#include "vm.h"

#define CHANNEL_PORT "org.blobcr.checkpoint.0"
#define AGENT_PORT "org.qemu.guest_agent.0"

static int usage_err(const char *what, const char *arg)
{
	fprintf(stderr, "blobcrctl: %s '%s'\n", what, arg);
	return EXIT_USAGE;
}

int vm_parse_opt(struct vm_opts *o, int c, const char *arg)
{
	char *end;
	unsigned long n;

	switch (c) {
	case 0x100:
		if (!host_vm_name_ok(arg))
			return usage_err("not a usable VM name:", arg);
		o->name = arg;
		return 0;
	case 0x101:
		o->mode = host_quiesce_parse(arg);
		return o->mode < 0 ? usage_err("--quiesce is qmp, qga, fsfreeze or none, not", arg) : 0;
	case 0x102:
		if (arg[0] != '/' || o->nmounts == HOST_VM_MAX_MOUNTS)
			return usage_err("--mount needs an absolute path (at most 16):", arg);
		o->mounts[o->nmounts++] = arg;
		return 0;
	case 0x103:
		errno = 0;
		n = strtoul(arg, &end, 10);
		if (errno || *end || n < 3 || n > 0xfffffffeUL)
			return usage_err("--cid is a number from 3 on, not", arg);
		o->cid = (unsigned int)n;
		return 0;
	case 0x104:
		if (strcmp(arg, "pc") && strcmp(arg, "microvm"))
			return usage_err("--machine is pc or microvm, not", arg);
		o->microvm = !strcmp(arg, "microvm");
		return 0;
	case 0x105:
		o->print = VM_PRINT_QEMU;
		return 0;
	case 0x106:
		o->print = VM_PRINT_LIBVIRT;
		return 0;
	case 0x107:
		o->output = arg;
		return 0;
	case 0x108:
		/* JOB.N names its groups: a group name with room for N. */
		if (!blobcr_valid_name(arg, HOST_VM_NAME_MAX))
			return usage_err("--job wants 1 to 63 of A-Z a-z 0-9 . _ - : +, not", arg);
		o->job = arg;
		return 0;
	}
	return EXIT_USAGE;
}

static void vm_path(const char *name, const char *ext, char *out, size_t len)
{
	snprintf(out, len, HOST_VM_DIR "/%s.%s", name, ext);
}

/* Hold RUN_DIR/vm/.lock while reading and rewriting VM files. */
static int lock_vm_dir(void)
{
	int fd;

	mkdir(BLOBCR_RUN_DIR, 0755);
	mkdir(HOST_VM_DIR, 0755);
	fd = open(HOST_VM_DIR "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		flock(fd, LOCK_EX);
	return fd;
}

static void unlock_vm_dir(int fd)
{
	if (fd >= 0)
		close(fd);
}

static void print_qemu(FILE *f, const char *name, const struct host_vm *vm,
		       int microvm)
{
	const char *bus = microvm ? "device" : "pci";

	for (int i = 0; i < vm->ndisks; i++) {
		fprintf(f, "-blockdev\ndriver=host_device,node-name=blobcr-%s,filename=/dev/mapper/%s,cache.direct=on,aio=native\n",
			vm->disks[i], vm->disks[i]);
		fprintf(f, "-device\nvirtio-blk-%s,drive=blobcr-%s\n", bus,
			vm->disks[i]);
	}
	fprintf(f, "-device\nvirtio-serial-%s,id=blobcr-serial\n", bus);
	fprintf(f, "-chardev\nsocket,id=blobcr-ckpt,path=" HOST_PROXY_DIR "/%s.sock,reconnect=1\n",
		name);
	fprintf(f, "-device\nvirtserialport,bus=blobcr-serial.0,chardev=blobcr-ckpt,name=" CHANNEL_PORT "\n");
	if (vm->qmp[0])
		fprintf(f, "-qmp\nunix:%s,server=on,wait=off\n", vm->qmp);
	if (vm->qga[0]) {
		fprintf(f, "-chardev\nsocket,id=blobcr-qga,path=%s,server=on,wait=off\n",
			vm->qga);
		fprintf(f, "-device\nvirtserialport,bus=blobcr-serial.0,chardev=blobcr-qga,name=" AGENT_PORT "\n");
	}
	if (vm->cid)
		fprintf(f, "-device\nvhost-vsock-%s,guest-cid=%u\n", bus, vm->cid);
}

static int print_libvirt(FILE *f, const char *name, const struct host_vm *vm)
{
	if (vm->mode == HOST_Q_QGA) {
		fprintf(stderr, "blobcrctl: libvirt keeps the guest agent's channel for itself: give %s --quiesce qmp\n",
			name);
		return EXIT_USAGE;
	}
	fprintf(f, "<!-- blobcr: VM %s, quiesce %s.  Inside <devices>: -->\n",
		name, host_quiesce_name(vm->mode));
	for (int i = 0; i < vm->ndisks; i++)
		fprintf(f,
"<disk type='block' device='disk'>\n"
"  <driver name='qemu' type='raw' cache='none' io='native'/>\n"
"  <source dev='/dev/mapper/%s'/>\n"
"  <target dev='vd%c' bus='virtio'/>\n"
"</disk>\n", vm->disks[i], 'a' + i);
	fprintf(f,
"<channel type='unix'>\n"
"  <source mode='connect' path='" HOST_PROXY_DIR "/%s.sock'>\n"
"    <reconnect enabled='yes' timeout='1'/>\n"
"  </source>\n"
"  <target type='virtio' name='" CHANNEL_PORT "'/>\n"
"</channel>\n", name);
	if (vm->cid)
		fprintf(f,
"<vsock model='virtio'>\n"
"  <cid auto='no' address='%u'/>\n"
"</vsock>\n", vm->cid);
	if (vm->qmp[0])
		fprintf(f,
"<!-- After </devices>, with xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'\n"
"     on <domain>: a QMP monitor of the proxy's own (libvirt keeps its own). -->\n"
"<qemu:commandline>\n"
"  <qemu:arg value='-qmp'/>\n"
"  <qemu:arg value='unix:%s,server=on,wait=off'/>\n"
"</qemu:commandline>\n", vm->qmp);
	return 0;
}

/* Print VM @name's configuration as @o asks, to @o->output or stdout. */
static int print_config(const struct vm_opts *o, const char *name)
{
	char path[PATH_MAX], err[160];
	struct host_vm vm;
	FILE *f = stdout;
	int r;

	vm_path(name, "vm", path, sizeof(path));
	r = host_vm_parse(path, &vm, err, sizeof(err));
	if (r == -ENOENT) {
		fprintf(stderr, "blobcrctl: no VM %s (deploy a disk with --vm %s)\n",
			name, name);
		return EXIT_NOTFOUND;
	}
	if (r) {
		fprintf(stderr, "blobcrctl: %s: %s\n", path, err);
		return EXIT_FAIL;
	}
	if (o->output && !(f = fopen(o->output, "w"))) {
		fprintf(stderr, "blobcrctl: %s: %s\n", o->output, strerror(errno));
		return EXIT_FAIL;
	}
	if (o->print == VM_PRINT_LIBVIRT)
		r = print_libvirt(f, name, &vm);
	else
		print_qemu(f, name, &vm, o->microvm);
	if (o->output && fclose(f)) {
		fprintf(stderr, "blobcrctl: %s: %s\n", o->output, strerror(errno));
		return EXIT_FAIL;
	}
	return r;
}

int vm_add_disk(const struct vm_opts *o, const char *dm)
{
	char path[PATH_MAX], err[160];
	struct host_vm vm;
	int lock = lock_vm_dir(), r;

	vm_path(o->name, "vm", path, sizeof(path));
	r = host_vm_parse(path, &vm, err, sizeof(err));
	if (r == -ENOENT) {
		/* A new VM: its settings are the ones given now. */
		vm = (struct host_vm){ .uid = (uid_t)-1, .cid = o->cid,
				       .mode = o->mode >= 0 ? o->mode :
				       o->nmounts ? HOST_Q_FSFREEZE : HOST_Q_QMP };
		if (o->job)
			snprintf(vm.job, sizeof(vm.job), "%s", o->job);
		/* Both, so that the mode can change without a new QEMU. */
		if (vm.mode == HOST_Q_QMP || vm.mode == HOST_Q_QGA) {
			vm_path(o->name, "qmp", vm.qmp, sizeof(vm.qmp));
			vm_path(o->name, "qga", vm.qga, sizeof(vm.qga));
		}
		for (int i = 0; i < o->nmounts; i++)
			snprintf(vm.mounts[vm.nmounts++], sizeof(vm.mounts[0]), "%s",
				 o->mounts[i]);
		if (vm.mode == HOST_Q_FSFREEZE && !vm.nmounts) {
			unlock_vm_dir(lock);
			fprintf(stderr, "blobcrctl: --quiesce fsfreeze needs --mount DIR\n");
			return EXIT_USAGE;
		}
	} else if (r && r != -EINVAL) {
		unlock_vm_dir(lock);
		fprintf(stderr, "blobcrctl: %s: %s\n", path, err);
		return EXIT_FAIL;
	} else if (o->mode >= 0 || o->nmounts || o->cid ||
		   (o->job && strcmp(o->job, vm.job))) {
		unlock_vm_dir(lock);
		fprintf(stderr, "blobcrctl: VM %s exists: its settings are in %s\n",
			o->name, path);
		return EXIT_USAGE;
	}
	if (vm.ndisks == HOST_VM_MAX_DISKS) {
		unlock_vm_dir(lock);
		fprintf(stderr, "blobcrctl: VM %s has %d disks already\n", o->name,
			vm.ndisks);
		return EXIT_FAIL;
	}
	snprintf(vm.disks[vm.ndisks++], sizeof(vm.disks[0]), "%s", dm);
	r = host_vm_write(path, &vm);
	unlock_vm_dir(lock);
	if (r) {
		fprintf(stderr, "blobcrctl: cannot write %s: %s\n", path, strerror(-r));
		return EXIT_FAIL;
	}
	return o->print ? print_config(o, o->name) : 0;
}

void vm_remove_disk(const char *dm)
{
	char path[PATH_MAX], err[160];
	int lock = lock_vm_dir();
	struct host_vm vm;
	struct dirent *e;
	DIR *d = opendir(HOST_VM_DIR);

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		int i;

		if (n < 4 || strcmp(e->d_name + n - 3, ".vm"))
			continue;
		snprintf(path, sizeof(path), HOST_VM_DIR "/%s", e->d_name);
		if (host_vm_parse(path, &vm, err, sizeof(err)) && !vm.ndisks)
			continue;
		for (i = 0; i < vm.ndisks && strcmp(vm.disks[i], dm); i++)
			;
		if (i == vm.ndisks)
			continue;
		memmove(vm.disks[i], vm.disks[i + 1],
			sizeof(vm.disks[0]) * (size_t)(vm.ndisks - i - 1));
		if (--vm.ndisks)
			host_vm_write(path, &vm);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	unlock_vm_dir(lock);
}

int vm_cmd_config(int argc, char **argv)
{
	static const struct option opts[] = { VM_OPTIONS, { 0 } };
	struct vm_opts o = { .mode = -1, .print = VM_PRINT_QEMU };
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c < 0x104 || c > 0x107)
			return usage_err("vm config takes --qemu, --libvirt, --machine, --output; not", argv[optind - 1]);
		r = vm_parse_opt(&o, c, optarg);
		if (r)
			return r;
	}
	if (optind != argc - 1)
		return usage_err("vm config needs one VM name, got", optind < argc ? argv[optind] : "none");
	return print_config(&o, argv[optind]);
}
