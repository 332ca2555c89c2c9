/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vm.h - blobcrctl's hypervisor integration: the VM files blobcr-proxyd
 * serves (deploy --vm adds a disk, undeploy removes it), and the QEMU
 * arguments and libvirt XML that put a VM on its disks and its checkpoint
 * channel.
 */
#ifndef BLOBCRCTL_VM_H
#define BLOBCRCTL_VM_H

#include "blobcr_host.h"

enum { VM_PRINT_QEMU = 1, VM_PRINT_LIBVIRT = 2 };

/* What deploy --vm and vm config were told. */
struct vm_opts {
	const char *name; /* --vm */
	int mode; /* --quiesce, -1: not given */
	int nmounts; /* --mount */
	const char *mounts[HOST_VM_MAX_MOUNTS];
	unsigned int cid; /* --cid, 0: not given */
	const char *job; /* --job, NULL: not given */
	int microvm; /* --machine microvm: virtio-mmio devices */
	int print; /* VM_PRINT_* */
	const char *output; /* --output FILE, else stdout */
};

/* getopt_long entries of these options, and their values. */
#define VM_OPTIONS \
	{ "vm", required_argument, NULL, 0x100 }, \
	{ "quiesce", required_argument, NULL, 0x101 }, \
	{ "mount", required_argument, NULL, 0x102 }, \
	{ "cid", required_argument, NULL, 0x103 }, \
	{ "machine", required_argument, NULL, 0x104 }, \
	{ "qemu", no_argument, NULL, 0x105 }, \
	{ "libvirt", no_argument, NULL, 0x106 }, \
	{ "output", required_argument, NULL, 0x107 }, \
	{ "job", required_argument, NULL, 0x108 }

/**
 * vm_parse_opt() - take option @c (one of VM_OPTIONS) with @arg into @o.
 * Return: 0, or EXIT_USAGE after saying why.
 */
int vm_parse_opt(struct vm_opts *o, int c, const char *arg);

/**
 * vm_add_disk() - add disk @dm to VM @o->name (creating its file with
 * @o's settings), then print its QEMU arguments or libvirt XML if asked.
 * Return: blobcrctl's exit status.
 */
int vm_add_disk(const struct vm_opts *o, const char *dm);

/** vm_remove_disk() - drop disk @dm from the VM that has it (and an emptied VM). */
void vm_remove_disk(const char *dm);

/** blobcrctl vm config VM --qemu|--libvirt [--machine M] [--output FILE] */
int vm_cmd_config(int argc, char **argv);

#endif /* BLOBCRCTL_VM_H */
