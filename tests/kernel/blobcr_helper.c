// SPDX-License-Identifier: GPL-2.0
/*
 * Reference helper for dm-blobcr: see blobcr_helper.h and the helper
 * contract in Documentation/dm-blobcr.rst.  Simple on purpose: one thread
 * reads requests and serves FETCH; each COMMIT gets its own thread so that
 * fetches go on during an upload.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blobcr_helper.h"

/* Counters are shared by the serving threads and the test process. */
#define STAT_ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_SEQ_CST)

struct helper {
	const struct helper_opts *o;
	struct helper_stats *stats;
	struct blobcr_info info;
	int fd;
	int cache_fd;
	int remote_fd;
	pthread_mutex_t reply_lock;
};

struct helper_stats *helper_stats_new(void)
{
	void *p = mmap(NULL, sizeof(struct helper_stats),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int channel_open(const char *channel, int flags)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), BLOBCR_DEV_DIR "%s", channel);
	return open(path, flags);
}

int channel_info(const char *channel, struct blobcr_info *info)
{
	int fd = channel_open(channel, O_RDONLY), r = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, BLOBCR_IOC_GET_INFO, info))
		r = -errno;
	close(fd);
	return r;
}

int channel_commit(const char *channel, struct blobcr_commit *c)
{
	int fd = channel_open(channel, O_RDWR), r = 0;

	if (fd < 0)
		return -errno;
	memset(c, 0, sizeof(*c));
	if (ioctl(fd, BLOBCR_IOC_COMMIT, c))
		r = -errno;
	close(fd);
	return r;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int send_reply(struct helper *h, const struct blobcr_reply *rp)
{
	ssize_t n;

	pthread_mutex_lock(&h->reply_lock);
	n = write(h->fd, rp, sizeof(*rp));
	pthread_mutex_unlock(&h->reply_lock);
	if (n != sizeof(*rp)) {
		if (!h->o->quiet)
			fprintf(stderr, "helper: reply %llu op %u: %s\n",
				(unsigned long long)rp->id, rp->op,
				strerror(errno));
		return -1;
	}
	return 0;
}

static size_t extent_bytes(struct helper *h, uint64_t e)
{
	uint64_t start = e * h->info.extent_sectors;
	uint64_t len = h->info.dev_sectors - start;

	if (len > h->info.extent_sectors)
		len = h->info.extent_sectors;
	return len << 9;
}

static int fetch(struct helper *h, const struct blobcr_request *rq)
{
	size_t ext = (size_t)h->info.extent_sectors << 9;
	struct blobcr_reply rp = {
		.id = rq->id, .op = BLOBCR_OP_FETCH,
		.extent = rq->extent, .nr_extents = rq->nr_extents,
	};
	void *buf;
	uint64_t e;

	if (rq->flags & BLOBCR_REQ_F_PREFETCH)
		STAT_ADD(h->stats->prefetch_reqs, 1);
	STAT_ADD(h->stats->fetch_reqs, 1);
	STAT_ADD(h->stats->fetch_extents, rq->nr_extents);
	if (h->o->fetch_delay_ms)
		sleep_ms(h->o->fetch_delay_ms);
	while (h->stats->hold_fetches)
		sleep_ms(1);
	if (h->o->fetch_status) {
		rp.status = h->o->fetch_status;
		return send_reply(h, &rp);
	}
	if (posix_memalign(&buf, 4096, ext))
		return -1;
	for (e = rq->extent; e < rq->extent + rq->nr_extents; e++) {
		size_t len = extent_bytes(h, e);
		off_t off = (off_t)e * ext;

		if (e < HELPER_MAX_EXTENTS)
			STAT_ADD(h->stats->extent_fetches[e], 1);
		memset(buf, 0, ext);
		if (h->remote_fd >= 0 &&
		    pread(h->remote_fd, buf, len, off) < 0) {
			rp.status = -EIO;
			break;
		}
		if (pwrite(h->cache_fd, buf, len, off) != (ssize_t)len) {
			rp.status = -EIO;
			break;
		}
	}
	free(buf);
	return send_reply(h, &rp);
}

struct commit_job {
	struct helper *h;
	struct blobcr_request rq;
};

static int upload(struct helper *h, const struct blobcr_request *rq,
		  uint64_t version)
{
	size_t ext = (size_t)h->info.extent_sectors << 9;
	uint64_t words = (h->info.nr_extents + 63) / 64, e;
	struct blobcr_bitmap b = { .which = BLOBCR_BITMAP_COMMIT };
	char path[PATH_MAX];
	uint64_t *map;
	void *buf;
	int r = 0;

	map = calloc(words, 8);
	if (!map || posix_memalign(&buf, 4096, ext)) {
		free(map);
		return -ENOMEM;
	}
	b.start = 0;
	b.count = h->info.nr_extents;
	b.addr = (uintptr_t)map;
	if (ioctl(h->fd, BLOBCR_IOC_GET_BITMAP, &b)) {
		r = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%llu", h->o->commit_dir,
		 (unsigned long long)version);
	if (h->o->commit_dir && mkdir(path, 0755)) {
		DIR *d;
		struct dirent *de;

		if (errno != EEXIST) {
			r = -errno;
			goto out;
		}
		/* Left over by an attempt that died: start afresh. */
		d = opendir(path);
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		if (d)
			closedir(d);
	}
	for (e = 0; e < h->info.nr_extents; e++) {
		size_t len = extent_bytes(h, e);
		int fd;

		if (!(map[e / 64] & (1ULL << (e % 64))))
			continue;
		while (h->stats->upload_limit &&
		       h->stats->uploaded >= h->stats->upload_limit)
			sleep_ms(1);
		if (h->o->upload_delay_ms)
			sleep_ms(h->o->upload_delay_ms);
		if (pread(h->cache_fd, buf, len, (off_t)e * ext) !=
		    (ssize_t)len) {
			r = -EIO;
			goto out;
		}
		/* Without a directory the upload only reads the extents. */
		if (h->o->commit_dir) {
			snprintf(path, sizeof(path), "%s/%llu/%llu",
				 h->o->commit_dir, (unsigned long long)version,
				 (unsigned long long)e);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
				r = -EIO;
				if (fd >= 0)
					close(fd);
				goto out;
			}
			close(fd);
		}
		STAT_ADD(h->stats->uploaded, 1);
		if (h->o->uploaded_replies) {
			struct blobcr_reply up = {
				.id = rq->id, .op = BLOBCR_OP_UPLOADED,
				.extent = e, .nr_extents = 1,
			};

			if (send_reply(h, &up)) {
				r = -EIO;
				goto out;
			}
		}
	}
out:
	free(buf);
	free(map);
	return r;
}

static void *commit_thread(void *arg)
{
	struct commit_job *job = arg;
	struct helper *h = job->h;
	struct blobcr_reply rp = {
		.id = job->rq.id, .op = BLOBCR_OP_COMMIT,
	};
	uint64_t version = h->stats->last_version + 1;

	rp.status = h->o->commit_status;
	if (!rp.status)
		rp.status = upload(h, &job->rq, version);
	if (!rp.status) {
		rp.version = version;
		h->stats->last_version = version;
		h->stats->commits++;
	}
	send_reply(h, &rp);
	free(job);
	return NULL;
}

/* Read requests and serve them until the channel goes away. */
static int serve_loop(struct helper *h)
{
	const struct helper_opts *o = h->o;
	struct blobcr_request rq[16];

	for (;;) {
		ssize_t n = read(h->fd, rq, sizeof(rq));
		unsigned int i;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENODEV ? 0 : -errno;
		}
		for (i = 0; i < n / sizeof(rq[0]); i++) {
			STAT_ADD(h->stats->requests_read, 1);
			if (o->no_reply)
				continue;
			if (rq[i].op == BLOBCR_OP_FETCH) {
				fetch(h, &rq[i]);
			} else if (rq[i].op == BLOBCR_OP_COMMIT) {
				struct commit_job *job = malloc(sizeof(*job));
				pthread_t t;

				if (!job)
					continue;
				job->h = h;
				job->rq = rq[i];
				if (pthread_create(&t, NULL, commit_thread, job))
					free(job);
				else
					pthread_detach(t);
			}
		}
	}
}

static void *serve_thread(void *arg)
{
	serve_loop(arg);
	return NULL;
}

int helper_serve(const struct helper_opts *o, struct helper_stats *stats,
		 int ready_fd)
{
	struct blobcr_attach a = { .features = BLOBCR_F_FETCH_RUNS |
				   BLOBCR_F_COMMIT | BLOBCR_F_UPLOADED };
	struct helper h = {
		.o = o, .stats = stats, .remote_fd = -1, .cache_fd = -1,
	};
	int r = 0;

	pthread_mutex_init(&h.reply_lock, NULL);
	h.fd = channel_open(o->channel, O_RDWR);
	if (h.fd < 0)
		return -errno;
	h.cache_fd = open(o->cache, O_RDWR | O_DIRECT);
	if (h.cache_fd < 0) {
		r = -errno;
		goto out;
	}
	if (o->remote) {
		/* Direct when the remote allows it (a block device). */
		h.remote_fd = open(o->remote, O_RDONLY | O_DIRECT);
		if (h.remote_fd < 0)
			h.remote_fd = open(o->remote, O_RDONLY);
		if (h.remote_fd < 0) {
			r = -errno;
			goto out;
		}
	}
	if (ioctl(h.fd, BLOBCR_IOC_ATTACH, &a) ||
	    ioctl(h.fd, BLOBCR_IOC_GET_INFO, &h.info)) {
		r = -errno;
		goto out;
	}
	if (ready_fd >= 0) {
		char c = 1;

		if (write(ready_fd, &c, 1) != 1) {
			r = -errno;
			goto out;
		}
	}

	if (o->threads > 1) {
		pthread_t t[o->threads - 1];
		unsigned int i, started = 0;

		for (i = 0; i < o->threads - 1; i++)
			if (!pthread_create(&t[i], NULL, serve_thread, &h))
				started++;
		r = serve_loop(&h);
		for (i = 0; i < started; i++)
			pthread_join(t[i], NULL);
	} else {
		r = serve_loop(&h);
	}
out:
	if (h.remote_fd >= 0)
		close(h.remote_fd);
	if (h.cache_fd >= 0)
		close(h.cache_fd);
	close(h.fd);
	return r;
}

pid_t helper_spawn(const struct helper_opts *o, struct helper_stats *stats)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		close(p[0]);
		_exit(helper_serve(o, stats, p[1]) ? 1 : 0);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		close(p[0]);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(p[0]);
	return pid;
}

void helper_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
