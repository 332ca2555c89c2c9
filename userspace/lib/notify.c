// SPDX-License-Identifier: GPL-2.0
/*
 * notify.c - readiness for systemd through libsystemd's sd_notify(3), in
 * a file of its own so that only the daemons link -lsystemd.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "blobcr_notify.h"
#include "blobcr_util.h"

void blobcr_notify_ready(const char *fmt, ...)
{
	char status[512];
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	err = sd_notifyf(0, "READY=1\nSTATUS=%s", status);
	if (err < 0)
		log_warn("cannot tell the service manager we are ready: %s",
			 strerror(-err));
}

void blobcr_notify_serving(struct blobcr_server *s)
{
	blobcr_notify_ready("serving %s", s->addr);
}

void blobcr_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
