# SPDX-License-Identifier: GPL-2.0
#
# Installing dm-blobcr: man pages, systemd units, `make install` and
# `make uninstall` (DESTDIR, PREFIX and the directories below), and the
# Debian packages (`make deb`).  Included by the top-level Makefile.

VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' $(TOP)/debian/changelog)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
RST2MAN ?= rst2man

# What `make install` puts where (the Debian packages split the same set).
PROG_DIRS := userspace userspace/host userspace/guest userspace/blobcrd \
	userspace/proxyd tools
SBIN_PROGS := userspace/metad/blobcr-metad userspace/noded/blobcr-noded \
	userspace/blobcrd/blobcrd userspace/proxyd/blobcr-proxyd tools/blobcrctl
BIN_PROGS := userspace/guest/blobcr-checkpoint
# The guest library, and the MPI collective built for Open MPI and MPICH.
GUEST_LIBS := $(addprefix userspace/guest/,libblobcr-guest.a \
	libblobcr-mpi-openmpi.a libblobcr-mpi-mpich.a)
GUEST_HEADERS := userspace/guest/blobcr-guest.h userspace/guest/blobcr-mpi.h
MAN_PAGES := $(patsubst Documentation/man/%.rst,$(BUILD)/man/%, \
	$(wildcard Documentation/man/*.rst))
UNITS := $(patsubst systemd/%.in,%,$(wildcard systemd/*.in))
CONF_FILES := metad.conf proxyd.conf blobcrd.conf blobcrctl.conf

.PHONY: progs man install uninstall install-module deb check-pkg \
	clean-dist

# The installed programs only: no kernel headers, no tests, no apt-get.
progs:
	for d in $(PROG_DIRS); do $(MAKE) -C $$d || exit 1; done

man: $(MAN_PAGES)

$(BUILD)/man/%: Documentation/man/%.rst
	@mkdir -p $(@D)
	$(RST2MAN) --halt=warning --no-generator --no-datestamp $< $@

# Configuration files are installed only where none exist yet.
install: progs man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/blobcr \
		$(addprefix $(DESTDIR)$(MANDIR)/man,1 3 4 5 8)
	install -m 755 $(SBIN_PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 755 $(BIN_PROGS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(GUEST_LIBS) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(GUEST_HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	for m in $(MAN_PAGES); do \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; \
	done
	for u in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			systemd/$$u.in > $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	for f in $(CONF_FILES); do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/blobcr/$$f ] || \
		install -m 644 conf/$$f $(DESTDIR)$(SYSCONFDIR)/blobcr/ || exit 1; \
	done
	@echo 'installed; the kernel module: make install-module, or the dm-blobcr-dkms package'

# Leaves $(SYSCONFDIR)/blobcr, which may hold the operator's settings.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(SBIN_PROGS))) \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BIN_PROGS))) \
		$(addprefix $(DESTDIR)$(LIBDIR)/,$(notdir $(GUEST_LIBS))) \
		$(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(GUEST_HEADERS))) \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	for m in $(notdir $(MAN_PAGES)); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; \
	done

# The module for the kernel of KDIR (default: Debian's 6.1 headers; give
# KDIR=/lib/modules/$(uname -r)/build for the running kernel), unsigned
# (headers carry no signing key; DKMS signs with its own).
install-module: module
	$(MAKE) -C $(KDIR) M=$(TOP) INSTALL_MOD_PATH=$(DESTDIR) \
		INSTALL_MOD_DIR=updates CONFIG_MODULE_SIG_ALL= modules_install
	[ -n "$(DESTDIR)" ] || depmod $$(sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' \
		$(KDIR)/include/generated/utsrelease.h)

# Binary packages from a copy of the tree (the files git knows, committed
# or not), so that the build's debian/ scratch stays out of the worktree;
# the .deb files land in build/deb/.
DEB_DIR := $(BUILD)/deb
deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/dm-blobcr-$(VERSION)
	git ls-files -co --exclude-standard -z | \
		tar -c --no-recursion --ignore-failed-read --null -T - | \
		tar -x -C $(DEB_DIR)/dm-blobcr-$(VERSION)
	cd $(DEB_DIR)/dm-blobcr-$(VERSION) && \
		dpkg-buildpackage -b -us -uc -j$$(nproc) >../build.log 2>&1 || \
		{ tail -n 40 ../build.log; echo "deb: failed, log in $(DEB_DIR)/build.log"; exit 1; }
	rm -rf $(DEB_DIR)/dm-blobcr-$(VERSION)
	@ls $(DEB_DIR)/*.deb

# The packages' own checks (minutes: a package and a module build), then
# the packages installed and used in a systemd guest (half an hour under
# load: DKMS under TCG).
check-pkg: deb
	$(TOP)/tests/pkg/debs.sh $(DEB_DIR); rc=$$?; \
	$(TOP)/tests/pkg/installed.sh $(DEB_DIR) || rc=1; exit $$rc

clean-dist:
	rm -rf $(BUILD)/man $(DEB_DIR)
	for d in $(PROG_DIRS); do $(MAKE) -C $$d clean; done
