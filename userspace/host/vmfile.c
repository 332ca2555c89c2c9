// SPDX-License-Identifier: GPL-2.0
/*
 * vmfile.c - the VM files of RUN_DIR/vm/: blobcrctl deploy --vm writes
 * them, blobcr-proxyd serves what they say, blobcrctl vm config turns
 * them into QEMU arguments and libvirt XML.  One parser for all three.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_host.h"

static const char *const mode_names[] = { "none", "fsfreeze", "qmp", "qga" };

const char *host_quiesce_name(enum host_quiesce m)
{
	return (unsigned int)m < 4 ? mode_names[m] : "?";
}

int host_quiesce_parse(const char *s)
{
	for (int m = 0; m < 4; m++)
		if (!strcmp(s, mode_names[m]))
			return m;
	return -EINVAL;
}

int host_vm_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n < HOST_VM_NAME_MAX && !strchr(s, '/') && s[0] != '.' &&
	       !strpbrk(s, " \t\n");
}

static int copy_path(char *dst, size_t len, const char *val)
{
	if (val[0] != '/' || strlen(val) >= len)
		return -EINVAL;
	strcpy(dst, val);
	return 0;
}

int host_vm_parse(const char *path, struct host_vm *vm, char *err, size_t len)
{
	char line[512], key[32], val[400];
	int lineno = 0, mode = -1;
	FILE *f = fopen(path, "r");

	*vm = (struct host_vm){ .uid = (uid_t)-1 };
	if (!f) {
		snprintf(err, len, "%s", strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		unsigned long n;
		int bad = 0;
		char *end;

		lineno++;
		if (hash)
			*hash = '\0';
		key[0] = val[0] = '\0';
		if (sscanf(line, "%31s %399s", key, val) < 1)
			continue;
		if (!val[0]) {
			bad = 1;
		} else if (!strcmp(key, "disk")) {
			bad = !host_vm_name_ok(val) || vm->ndisks == HOST_VM_MAX_DISKS;
			if (!bad)
				strcpy(vm->disks[vm->ndisks++], val);
		} else if (!strcmp(key, "mount")) {
			bad = vm->nmounts == HOST_VM_MAX_MOUNTS ||
			      copy_path(vm->mounts[vm->nmounts], sizeof(vm->mounts[0]), val);
			if (!bad)
				vm->nmounts++;
		} else if (!strcmp(key, "job")) {
			bad = !host_vm_name_ok(val);
			if (!bad)
				strcpy(vm->job, val);
		} else if (!strcmp(key, "qmp")) {
			bad = copy_path(vm->qmp, sizeof(vm->qmp), val);
		} else if (!strcmp(key, "qga")) {
			bad = copy_path(vm->qga, sizeof(vm->qga), val);
		} else if (!strcmp(key, "quiesce")) {
			mode = host_quiesce_parse(val);
			bad = mode < 0;
		} else if (!strcmp(key, "cid") || !strcmp(key, "uid")) {
			errno = 0;
			n = strtoul(val, &end, 10);
			bad = errno || *end || n > 0xfffffffeUL || (key[0] == 'c' && n < 3);
			if (!bad && key[0] == 'c')
				vm->cid = (uint32_t)n;
			else if (!bad)
				vm->uid = (uid_t)n;
		} else {
			bad = 1;
		}
		if (bad) {
			fclose(f);
			snprintf(err, len, "line %d: cannot use '%s %s'", lineno, key, val);
			return -EINVAL;
		}
	}
	fclose(f);
	if (mode < 0)
		mode = vm->qmp[0] ? HOST_Q_QMP : vm->nmounts ? HOST_Q_FSFREEZE : HOST_Q_NONE;
	vm->mode = (enum host_quiesce)mode;
	if (!vm->ndisks)
		snprintf(err, len, "no disk line");
	else if (mode == HOST_Q_QMP && !vm->qmp[0])
		snprintf(err, len, "quiesce qmp needs a qmp line");
	else if (mode == HOST_Q_QGA && !vm->qga[0])
		snprintf(err, len, "quiesce qga needs a qga line");
	else if (mode == HOST_Q_FSFREEZE && !vm->nmounts)
		snprintf(err, len, "quiesce fsfreeze needs a mount line");
	else
		return 0;
	return -EINVAL;
}

int host_vm_write(const char *path, const struct host_vm *vm)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "# blobcr-proxyd's view of this VM (checkpoint-restart.rst)\n");
	fprintf(f, "quiesce %s\n", host_quiesce_name(vm->mode));
	for (int i = 0; i < vm->ndisks; i++)
		fprintf(f, "disk %s\n", vm->disks[i]);
	for (int i = 0; i < vm->nmounts; i++)
		fprintf(f, "mount %s\n", vm->mounts[i]);
	if (vm->qmp[0])
		fprintf(f, "qmp %s\n", vm->qmp);
	if (vm->qga[0])
		fprintf(f, "qga %s\n", vm->qga);
	if (vm->job[0])
		fprintf(f, "job %s\n", vm->job);
	if (vm->cid)
		fprintf(f, "cid %u\n", vm->cid);
	if (vm->uid != (uid_t)-1)
		fprintf(f, "uid %u\n", (unsigned int)vm->uid);
	if (fclose(f) || rename(tmp, path))
		return -errno;
	return 0;
}
