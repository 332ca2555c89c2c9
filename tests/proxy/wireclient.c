// SPDX-License-Identifier: GPL-2.0
/*
 * wireclient - speaks the guest-proxy protocol (proxy_wire.h) frame by
 * frame on one connection to a VM's socket, for the proxy's tests: raw
 * operations, malformed payloads, and requests sent again with the same
 * id, which the guest library only does after a reconnection.
 *
 * Usage: wireclient SOCKET STEP...
 *   query ID            PROXY_OP_QUERY
 *   ckpt ID [LABEL]     PROXY_OP_CHECKPOINT, durable
 *   op OP ID FIELDS     any operation, its payload given field by field:
 *                       u32:N,u64:N,str:TEXT (comma-separated), or "-"
 * Each step waits for its reply and prints one line:
 *   id=ID op=OP status=ERRNO msg=MESSAGE          a failure
 *   id=ID op=OP status=0 ckpt=N v=IMAGE@V,...     a checkpoint
 *   id=ID op=OP status=0 len=N                    anything else
 * A HELLO frame prints "hello".  Exit status: 0, 1 on a broken
 * connection or a timeout (600 s per reply), 2 on usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy_wire.h"

static uint8_t buf[2 * (PROXY_HDR_LEN + PROXY_MAX_PAYLOAD)];
static size_t have;

static int usage(void)
{
	fprintf(stderr, "usage: wireclient SOCKET {query ID | ckpt ID [LABEL] | op OP ID FIELDS|-}...\n");
	return 2;
}

/* The next frame from @fd (HELLOs printed and skipped); its payload at buf + HDR. */
static int next_frame(int fd, struct proxy_hdr *h, long *total)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long f = proxy_find_frame(buf, have, h);
		ssize_t n;

		if (f < 0) {
			memmove(buf, buf - f, have + (size_t)f);
			have += (size_t)f;
			continue;
		}
		if (f > 0 && h->op == PROXY_OP_HELLO) {
			printf("hello\n");
			memmove(buf, buf + f, have - (size_t)f);
			have -= (size_t)f;
			continue;
		}
		if (f > 0) {
			*total = f;
			return 0;
		}
		if (poll(&p, 1, 600000) != 1)
			return -ETIMEDOUT;
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return -ECONNRESET;
		have += (size_t)n;
	}
}

static void print_reply(const struct proxy_hdr *h)
{
	struct proxy_dec d = { .p = buf + PROXY_HDR_LEN, .left = h->length };
	char s1[256], s2[256];
	uint32_t n;

	printf("id=%" PRIu64 " op=%u status=%d", h->id, h->op, h->status);
	if (h->status) {
		proxy_get_str(&d, s1, sizeof(s1));
		printf(" msg=%s\n", s1);
		return;
	}
	if (h->op != PROXY_OP_CHECKPOINT) {
		printf(" len=%u\n", h->length);
		return;
	}
	printf(" ckpt=%" PRIu64, proxy_get_u64(&d));
	proxy_get_u32(&d); /* state */
	for (int i = 0; i < 4; i++)
		proxy_get_u64(&d); /* times: not compared */
	n = proxy_get_u32(&d);
	printf(" v=");
	for (uint32_t i = 0; i < n && !d.err; i++) {
		uint64_t v;

		proxy_get_str(&d, s1, sizeof(s1));
		proxy_get_str(&d, s2, sizeof(s2));
		v = proxy_get_u64(&d);
		proxy_get_u64(&d);
		proxy_get_u64(&d);
		printf("%s%s@%" PRIu64, i ? "," : "", s2, v);
	}
	printf("%s\n", d.err ? " (malformed)" : "");
}

/* Payload fields "u32:N,u64:N,str:TEXT" (or "-": none) into @e. */
static int put_fields(struct proxy_enc *e, char *spec)
{
	char *save = NULL;

	if (!strcmp(spec, "-"))
		return 0;
	for (char *f = strtok_r(spec, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		if (!strncmp(f, "u32:", 4))
			proxy_put_u32(e, (uint32_t)strtoul(f + 4, NULL, 0));
		else if (!strncmp(f, "u64:", 4))
			proxy_put_u64(e, strtoull(f + 4, NULL, 0));
		else if (!strncmp(f, "str:", 4))
			proxy_put_str(e, f + 4);
		else
			return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct proxy_enc e = { 0 };
	int fd, i = 2;

	if (argc < 4 || strlen(argv[1]) >= sizeof(a.sun_path))
		return usage();
	strcpy(a.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror(argv[1]);
		return 1;
	}
	while (i < argc) {
		struct proxy_hdr h = { 0 };
		long total;
		int err;

		proxy_enc_start(&e);
		if (!strcmp(argv[i], "query") && i + 1 < argc) {
			h.op = PROXY_OP_QUERY;
			h.id = strtoull(argv[i + 1], NULL, 10);
			i += 2;
		} else if (!strcmp(argv[i], "ckpt") && i + 1 < argc) {
			h.op = PROXY_OP_CHECKPOINT;
			h.id = strtoull(argv[i + 1], NULL, 10);
			proxy_put_u32(&e, 0);
			i += 2;
			if (i < argc && strcmp(argv[i], "query") &&
			    strcmp(argv[i], "ckpt") && strcmp(argv[i], "op"))
				proxy_put_str(&e, argv[i++]);
			else
				proxy_put_str(&e, "");
		} else if (!strcmp(argv[i], "op") && i + 3 < argc) {
			h.op = (uint8_t)strtoul(argv[i + 1], NULL, 10);
			h.id = strtoull(argv[i + 2], NULL, 10);
			if (put_fields(&e, argv[i + 3]))
				return usage();
			i += 4;
		} else {
			return usage();
		}
		if (proxy_enc_finish(&e, &h) ||
		    send(fd, e.buf, e.len, MSG_NOSIGNAL) != (ssize_t)e.len) {
			perror("send");
			return 1;
		}
		do {
			err = next_frame(fd, &h, &total);
			if (err) {
				printf("error: %s\n", strerror(-err));
				return 1;
			}
			if (h.flags & PROXY_F_REPLY)
				print_reply(&h);
			memmove(buf, buf + total, have - (size_t)total);
			have -= (size_t)total;
		} while (!(h.flags & PROXY_F_REPLY));
		fflush(stdout);
	}
	proxy_enc_free(&e);
	close(fd);
	return 0;
}
