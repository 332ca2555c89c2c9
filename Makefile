# SPDX-License-Identifier: GPL-2.0
#
# dm-blobcr: top-level build.  `make help` lists the targets.

TOP := $(CURDIR)
BUILD := $(TOP)/build

# The running kernel is not the one we test on: build against what Debian's
# linux-headers-amd64 meta-package installed (6.1), unless KDIR is given.
KVER = $(shell $(TOP)/scripts/kver.sh linux-headers-amd64)
KDIR = /usr/src/linux-headers-$(KVER)
KVER612 = $(shell $(TOP)/scripts/kver.sh linux-headers-6.12-amd64)
KDIR612 = /usr/src/linux-headers-$(KVER612)
# The debug kernel (KASAN, lockdep, ...): built from linux-source-6.1 once
# per machine, cached (scripts/build-kernel.sh).
DEBUG_KERNEL := $(BUILD)/kernel/debug

# Userspace flags, shared by every sub-make.
export TOP BUILD
export CC ?= cc
export USER_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror \
	-D_GNU_SOURCE -I$(TOP)/include -I$(TOP)/userspace/lib

SUBDIRS := userspace userspace/blobcrd userspace/host userspace/guest \
	userspace/proxyd tools tests

.PHONY: all deps module module-6.12 $(SUBDIRS) check check-host check-vm \
	lint demo clean help nested-kernel kernel-debug module-debug \
	check-debug check-6.12

all: module $(SUBDIRS)

help:
	@echo 'make            build dm-blobcr.ko (Debian 6.1 headers), userspace, tools, tests'
	@echo 'make deps       install the Debian packages the project needs (idempotent)'
	@echo 'make check      host tests + VM tests; ends with "N passed, N failed"'
	@echo 'make check-host host tests only;  make check-vm  VM tests only'
	@echo 'make module-6.12  compile-only check against Debian 6.12 headers'
	@echo 'make check-debug  kernel and end-to-end VM tests on the debug kernel'
	@echo '                  (KASAN, lockdep; built once, cached); fails on any report'
	@echo 'make check-6.12   kernel and end-to-end VM tests on Debian 6.12'
	@echo 'make lint       checkpatch --strict and sparse on the kernel code'
	@echo 'make nested-kernel  the kernel of the VMs the tests run under QEMU in a guest'
	@echo 'make demo       the end-to-end demo'
	@echo 'make install    programs, man pages, units (PREFIX=/usr/local, DESTDIR);  make uninstall'
	@echo 'make deb        Debian packages in build/deb/ (dpkg-buildpackage -b)'
	@echo 'make check-pkg  make deb, then lintian, a DKMS build of the module, and the'
	@echo '                packages installed and used in a systemd guest (~30 min)'
	@echo 'Variables: KDIR=<kernel build dir>  VM_ACCEL=kvm (default tcg)'

deps:
	@$(TOP)/scripts/deps.sh

module: deps
	$(MAKE) -C $(KDIR) M=$(TOP) modules

# Build a copy so that the 6.1 objects in kernel/ stay untouched.
module-6.12: deps
	rm -rf $(BUILD)/k6.12 && mkdir -p $(BUILD)/k6.12
	cp -r Kbuild kernel include $(BUILD)/k6.12/
	$(MAKE) -C $(KDIR612) M=$(BUILD)/k6.12 modules

kernel-debug: deps
	$(TOP)/scripts/build-kernel.sh $(DEBUG_KERNEL) tinyconfig \
		$(TOP)/tests/vm/debug.config

module-debug: kernel-debug
	rm -rf $(BUILD)/kdebug && mkdir -p $(BUILD)/kdebug
	cp -r Kbuild kernel include $(BUILD)/kdebug/
	$(MAKE) -C $(DEBUG_KERNEL)/obj M=$(BUILD)/kdebug modules

# tests/vm/run picks the dm-blobcr.ko whose vermagic matches the kernel.
check-debug: all module-debug nested-kernel
	$(TOP)/tests/vm/on-kernel $(DEBUG_KERNEL)

check-6.12: all module-6.12 nested-kernel
	$(TOP)/tests/vm/on-kernel $(shell $(TOP)/scripts/kver.sh linux-image-6.12-amd64)

# Selftest headers come from Debian's linux-source-6.1, extracted at build time.
$(BUILD)/linux-src/.stamp: | deps
	$(TOP)/scripts/extract-linux-src.sh $(BUILD)/linux-src
	touch $@

$(SUBDIRS): deps $(BUILD)/linux-src/.stamp
	$(MAKE) -C $@

userspace/blobcrd tools tests: userspace
tests: userspace/guest
tools: userspace/host
userspace/proxyd: userspace userspace/host userspace/guest
tests: userspace/guest

# The nested guests' kernel (tests/vm/nested): built once, cached.
nested-kernel: deps
	$(TOP)/scripts/build-kernel.sh $(BUILD)/nested-kernel tinyconfig \
		$(TOP)/tests/vm/nested/kernel.config

check: all module-6.12 nested-kernel
	$(TOP)/tests/run all

check-host: $(SUBDIRS)
	$(TOP)/tests/run host

check-vm: module tests nested-kernel
	$(TOP)/tests/run vm

lint: deps $(BUILD)/linux-src/.stamp
	$(BUILD)/linux-src/scripts/checkpatch.pl --strict --no-tree --terse \
		--ignore FILE_PATH_CHANGES,SPDX_LICENSE_TAG \
		-f $(filter-out %.mod.c,$(wildcard kernel/*.c kernel/*.h include/uapi/linux/*.h))
	$(MAKE) -C $(KDIR) M=$(TOP) C=2 CF="-D__CHECK_ENDIAN__" modules 2>&1 | \
		tee $(BUILD)/sparse.log
	@! grep -E 'warning|error' $(BUILD)/sparse.log

demo: all
	@$(TOP)/scripts/demo.sh

include $(TOP)/mk/dist.mk

clean:
	-$(MAKE) -C $(KDIR) M=$(TOP) clean
	for d in $(SUBDIRS); do $(MAKE) -C $$d clean; done
	rm -rf $(BUILD)
