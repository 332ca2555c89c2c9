# SPDX-License-Identifier: GPL-2.0
#
# Installing dm-blobcr: man pages, systemd units, `make install` and
# `make uninstall` (DESTDIR, PREFIX and the directories below).  Included
# by the top-level Makefile.

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
MAN_PAGES := $(patsubst Documentation/man/%.rst,$(BUILD)/man/%, \
	$(wildcard Documentation/man/*.rst))
UNITS := $(patsubst systemd/%.in,%,$(wildcard systemd/*.service.in))
ENV_FILES := metad.env proxyd.env blobcrd.env

.PHONY: progs man install uninstall install-module clean-dist

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
		$(addprefix $(DESTDIR)$(MANDIR)/man,1 4 8)
	install -m 755 $(SBIN_PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 755 $(BIN_PROGS) $(DESTDIR)$(BINDIR)/
	install -m 644 userspace/guest/libblobcr-guest.a $(DESTDIR)$(LIBDIR)/
	install -m 644 userspace/guest/blobcr-guest.h $(DESTDIR)$(INCLUDEDIR)/
	for m in $(MAN_PAGES); do \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; \
	done
	for u in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			systemd/$$u.in > $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	for f in $(ENV_FILES); do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/blobcr/$$f ] || \
		install -m 644 systemd/$$f $(DESTDIR)$(SYSCONFDIR)/blobcr/ || exit 1; \
	done
	@echo 'installed; the kernel module: make install-module, or the dm-blobcr-dkms package'

# Leaves $(SYSCONFDIR)/blobcr, which may hold the operator's settings.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(notdir $(SBIN_PROGS))) \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BIN_PROGS))) \
		$(DESTDIR)$(LIBDIR)/libblobcr-guest.a \
		$(DESTDIR)$(INCLUDEDIR)/blobcr-guest.h \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	for m in $(notdir $(MAN_PAGES)); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; \
	done

# The module for the kernel of KDIR (default: Debian's 6.1 headers; give
# KDIR=/lib/modules/$(uname -r)/build for the running kernel).
install-module: module
	$(MAKE) -C $(KDIR) M=$(TOP) INSTALL_MOD_PATH=$(DESTDIR) \
		INSTALL_MOD_DIR=updates modules_install

clean-dist:
	rm -rf $(BUILD)/man
	for d in $(PROG_DIRS); do $(MAKE) -C $$d clean; done
