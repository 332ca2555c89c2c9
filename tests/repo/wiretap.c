// SPDX-License-Identifier: GPL-2.0
/*
 * wiretap - a TCP relay that damages replies on the wire, to test that a
 * client tells a damaged transfer from a bad copy on a node.
 *
 * Usage: wiretap LISTEN_PORT TARGET_PORT N
 * Relays every connection to 127.0.0.1:LISTEN_PORT to 127.0.0.1:
 * TARGET_PORT and flips one byte in each of the first N messages of at
 * least 64 KiB that the target sends back (nanomsg's TCP framing: an
 * 8-byte protocol header, then messages each behind an 8-byte length),
 * 4 KiB into the message: in a GETV reply, inside a chunk's bytes, so the
 * frame's payload CRC no longer matches.  Logs each flip on stderr.
 * Runs until killed; each connection is served by a child process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG (64u << 10)
#define FLIP_AT 4096

static unsigned int *flips_left; /* shared by the children */

/* Stream state of the replies: where the next message length starts. */
struct stream {
	uint64_t skip; /* bytes until the next length field */
	uint8_t len[8];
	int have; /* bytes of len[] read */
	uint64_t body_at; /* offset of this read in the current message */
	uint64_t body_len;
	int flip; /* flip this message */
};

static void damage(struct stream *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		if (s->skip) {
			size_t k = n - i < s->skip ? n - i : (size_t)s->skip;

			if (s->flip && s->body_at <= FLIP_AT &&
			    FLIP_AT < s->body_at + k) {
				p[i + (FLIP_AT - s->body_at)] ^= 0x5a;
				s->flip = 0;
				fprintf(stderr, "wiretap: flipped a byte in a %llu-byte "
					"message\n", (unsigned long long)s->body_len);
			}
			s->body_at += k;
			s->skip -= k;
			i += k;
			continue;
		}
		s->len[s->have++] = p[i++];
		if (s->have < 8)
			continue;
		s->have = 0;
		s->body_len = 0;
		for (int j = 0; j < 8; j++)
			s->body_len = s->body_len << 8 | s->len[j];
		s->skip = s->body_len;
		s->body_at = 0;
		s->flip = s->body_len >= BIG &&
			  __atomic_load_n(flips_left, __ATOMIC_RELAXED) &&
			  __atomic_sub_fetch(flips_left, 1, __ATOMIC_RELAXED) !=
			  (unsigned int)-1;
	}
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void relay(int cfd, int port)
{
	struct stream s = { .skip = 8 }; /* the protocol header first */
	uint8_t buf[65536];
	int tfd = connect_to(port);
	struct pollfd p[2] = { { cfd, POLLIN, 0 }, { tfd, POLLIN, 0 } };

	if (tfd < 0)
		return;
	s.body_at = UINT64_MAX / 2; /* no flip inside the protocol header */
	while (poll(p, 2, -1) > 0) {
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			if (i == 1)
				damage(&s, buf, (size_t)n);
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[!i].fd, buf + off, (size_t)(n - off));

				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sigaction sa = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	int one = 1, lfd;

	if (argc != 4) {
		fprintf(stderr, "Usage: wiretap LISTEN_PORT TARGET_PORT N\n");
		return 2;
	}
	flips_left = mmap(NULL, sizeof(*flips_left), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (flips_left == MAP_FAILED)
		return 1;
	*flips_left = (unsigned int)atoi(argv[3]);
	sigaction(SIGCHLD, &sa, NULL);
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64)) {
		perror("wiretap");
		return 1;
	}
	for (;;) {
		int cfd = accept(lfd, NULL, NULL);

		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			perror("wiretap: accept");
			return 1;
		}
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			close(lfd);
			relay(cfd, atoi(argv[2]));
			_exit(0);
		}
		close(cfd);
	}
}
