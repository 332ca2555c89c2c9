/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_notify.h - the daemons tell their service manager (systemd, units
 * of Type=notify) when they serve and when they stop, with a status line
 * for `systemctl status`.  Nothing happens when $NOTIFY_SOCKET is unset.
 * Links with -lsystemd.
 */
#ifndef BLOBCR_NOTIFY_H
#define BLOBCR_NOTIFY_H

/**
 * blobcr_notify_ready() - READY=1 with STATUS= the formatted line: call it
 * once the daemon serves (its socket bound, its device attached).
 */
void blobcr_notify_ready(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

struct blobcr_server;
/** blobcr_notify_serving() - blobcr_notify_ready("serving ADDR"): a server's ready callback. */
void blobcr_notify_serving(struct blobcr_server *s);

/** blobcr_notify_stopping() - STOPPING=1: a clean stop has begun. */
void blobcr_notify_stopping(void);

#endif
