// SPDX-License-Identifier: GPL-2.0
/*
 * logreplay - read the log of a dm-log-writes target and replay it, to
 * rebuild what a disk held at any point of a run: the power-cut test's
 * tool (power-cut.vmt).
 *
 * Usage: logreplay list LOG
 *        logreplay replay LOG TARGET FROM TO
 *
 * list prints one line per entry, "INDEX KIND [MARK]", KIND one of mark,
 * flush, fua, discard, write.  replay applies the entries FROM to TO - 1
 * (writes, and discards as zeros) to TARGET, a file or block device that
 * held the state after entry FROM - 1: replaying 0..A, then A..B is
 * replaying 0..B.
 *
 * The log's format is dm-log-writes' (Documentation/admin-guide/
 * device-mapper/log-writes.rst): a super block of one sector, then per
 * entry a sector holding struct log_write_entry (and a mark's name behind
 * it), followed by the written data for a write.  The target logs a flush
 * after every write that completed before it: the state after a flush
 * entry is a state a power cut may leave.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <endian.h>

#define LOG_MAGIC 0x6a736677736872ULL
#define LOG_VERSION 1
#define LOG_FLUSH (1 << 0)
#define LOG_FUA (1 << 1)
#define LOG_DISCARD (1 << 2)
#define LOG_MARK (1 << 3)

struct log {
	int fd;
	uint64_t sectorsize;
	uint64_t nr_entries;
	uint64_t pos; /* offset of the next entry */
	uint8_t *sector;
};

struct entry {
	uint64_t sector; /* in sectorsize units, as the target logs them */
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_len;
	const char *mark; /* points into log.sector */
	uint64_t data_at; /* offset of a write's data in the log */
};

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static int log_open(struct log *l, const char *path)
{
	uint8_t super[28];

	l->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (l->fd < 0) {
		fprintf(stderr, "logreplay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (pread(l->fd, super, sizeof(super), 0) != sizeof(super) ||
	    le64_at(super) != LOG_MAGIC || le64_at(super + 8) != LOG_VERSION) {
		fprintf(stderr, "logreplay: %s: not a dm-log-writes log\n", path);
		return -1;
	}
	l->nr_entries = le64_at(super + 16);
	l->sectorsize = le32_at(super + 24);
	if (l->sectorsize < 512 || l->sectorsize > 65536 ||
	    (l->sectorsize & (l->sectorsize - 1))) {
		fprintf(stderr, "logreplay: %s: bad sector size %" PRIu64 "\n",
			path, l->sectorsize);
		return -1;
	}
	l->sector = malloc(l->sectorsize);
	if (!l->sector)
		return -1;
	l->pos = l->sectorsize;
	return 0;
}

/* Read the entry at l->pos and step past it. */
static int log_next(struct log *l, struct entry *e)
{
	if (pread(l->fd, l->sector, l->sectorsize, l->pos) !=
	    (ssize_t)l->sectorsize) {
		fprintf(stderr, "logreplay: short log at %" PRIu64 "\n", l->pos);
		return -1;
	}
	e->sector = le64_at(l->sector);
	e->nr_sectors = le64_at(l->sector + 8);
	e->flags = le64_at(l->sector + 16);
	e->data_len = le64_at(l->sector + 24);
	e->mark = NULL;
	if (e->flags & LOG_MARK) {
		if (e->data_len > l->sectorsize - 33)
			return -1;
		l->sector[32 + e->data_len] = 0;
		e->mark = (const char *)l->sector + 32;
	}
	l->pos += l->sectorsize;
	e->data_at = l->pos;
	if (!(e->flags & LOG_DISCARD))
		l->pos += e->nr_sectors * l->sectorsize;
	return 0;
}

static const char *kind(const struct entry *e)
{
	if (e->flags & LOG_MARK)
		return "mark";
	if (e->flags & LOG_FLUSH)
		return "flush";
	if (e->flags & LOG_FUA)
		return "fua";
	if (e->flags & LOG_DISCARD)
		return "discard";
	return "write";
}

/* Write @len bytes at @off of the target: from the log at @from, or zeros. */
static int apply(struct log *l, int fd, uint64_t off, uint64_t len,
		 int64_t from)
{
	static uint8_t buf[1 << 20];
	size_t n;

	if (from < 0)
		memset(buf, 0, sizeof(buf));
	while (len) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		if (from >= 0 && pread(l->fd, buf, n, from) != (ssize_t)n)
			return -1;
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return -1;
		off += n;
		len -= n;
		if (from >= 0)
			from += n;
	}
	return 0;
}

static int replay(struct log *l, const char *target, uint64_t from,
		  uint64_t to)
{
	struct entry e;
	uint64_t i, off, len;
	int fd;

	fd = open(target, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "logreplay: %s: %s\n", target, strerror(errno));
		return -1;
	}
	for (i = 0; i < to && i < l->nr_entries; i++) {
		if (log_next(l, &e))
			goto fail;
		if (i < from || !e.nr_sectors || (e.flags & LOG_MARK))
			continue;
		off = e.sector * l->sectorsize;
		len = e.nr_sectors * l->sectorsize;
		if (apply(l, fd, off, len,
			  e.flags & LOG_DISCARD ? -1 : (int64_t)e.data_at)) {
			fprintf(stderr, "logreplay: entry %" PRIu64 ": %s\n", i,
				strerror(errno));
			goto fail;
		}
	}
	if (fsync(fd))
		goto fail;
	return close(fd);
fail:
	close(fd);
	return -1;
}

static int list(struct log *l)
{
	struct entry e;
	uint64_t i;

	for (i = 0; i < l->nr_entries; i++) {
		if (log_next(l, &e))
			return -1;
		printf("%" PRIu64 " %s%s%s\n", i, kind(&e), e.mark ? " " : "",
		       e.mark ? e.mark : "");
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct log l;
	uint64_t from, to;

	if (argc == 3 && !strcmp(argv[1], "list")) {
		if (log_open(&l, argv[2]))
			return 1;
		return list(&l) ? 1 : 0;
	}
	if (argc == 6 && !strcmp(argv[1], "replay")) {
		if (parse_u64(argv[4], &from) || parse_u64(argv[5], &to) ||
		    from > to) {
			fprintf(stderr, "logreplay: FROM and TO: entry numbers, FROM <= TO\n");
			return 2;
		}
		if (log_open(&l, argv[2]))
			return 1;
		return replay(&l, argv[3], from, to) ? 1 : 0;
	}
	fprintf(stderr, "Usage: logreplay list LOG\n"
			"       logreplay replay LOG TARGET FROM TO\n");
	return 2;
}
