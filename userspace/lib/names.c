// SPDX-License-Identifier: GPL-2.0
/*
 * names.c - what the services accept as a label or a node address, and
 * how untrusted strings are shown in logs and on terminals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_wire.h"

bool blobcr_label_valid(const char *s)
{
	size_t n = strlen(s);

	if (n >= BLOBCR_NAME_MAX)
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/* A DNS name, an IPv4 address, or an IPv6 address in brackets. */
static bool host_valid(const char *h, size_t n)
{
	if (!n || n > 253)
		return false;
	if (h[0] == '[') {
		if (n < 4 || h[n - 1] != ']')
			return false;
		for (size_t i = 1; i < n - 1; i++)
			if (!strchr("0123456789abcdefABCDEF:.", h[i]))
				return false;
		return true;
	}
	if (h[0] == '-' || h[0] == '.' || h[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		      (h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '.'))
			return false;
	/* Where clients cannot connect: every address, or none. */
	return !(n == 7 && !memcmp(h, "0.0.0.0", 7));
}

bool blobcr_addr_valid(const char *s)
{
	const char *host, *colon;
	char *end;
	unsigned long port;

	if (strlen(s) >= BLOBCR_ADDR_MAX || strncmp(s, "tcp://", 6))
		return false;
	host = s + 6;
	colon = strrchr(host, ':');
	if (!colon || colon[1] < '1' || colon[1] > '9')
		return false;
	port = strtoul(colon + 1, &end, 10);
	return !*end && port <= 65535 && host_valid(host, (size_t)(colon - host));
}

const char *blobcr_printable(const char *s, char *out, size_t len)
{
	size_t at = 0;

	for (; *s && at + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c > 0x7e || c == '\\')
			at += (size_t)snprintf(out + at, len - at, "\\x%02x", c);
		else
			out[at++] = (char)c;
	}
	out[at] = 0;
	return out;
}
