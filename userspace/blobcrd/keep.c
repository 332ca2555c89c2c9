// SPDX-License-Identifier: GPL-2.0
/*
 * keep.c - kept caches: the present bitmap saved at a clean stop and
 * restored by the next deployment over the same cache device.
 *
 * At a clean stop blobcrd saves the extents whose cached bytes are those of
 * the version the device shows (present, not dirty, not being committed),
 * with that image@version, the cache's identity and geometry and a SHA-256
 * of the whole file, in KEEP_DIR/<identity>.kept (written aside, synced,
 * renamed).  A later blobcrd over the same cache reads the file, deletes it
 * before anything else happens, checks it, and then trusts no bit of it:
 * each saved extent is read back from the cache and hashed against the
 * chunk id its version names (a hole must read as zeros).  Only extents
 * that match are marked present (BLOBCR_IOC_SET_BITMAP), so a torn,
 * tampered, foreign or stale file, a cache written after the save, or a
 * save left by a crash can cost fetches but never show bytes that are not
 * the version's.  Documentation/man/blobcrd.8.rst, "Kept caches".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "blobcr_util.h"
#include "blobcrd.h"

#define KEEP_MAGIC "BLOBCRKC"
#define KEEP_FORMAT 1
#define KEEP_DIR_DEFAULT "/var/lib/blobcr/kept"
#define KEEP_ID_MAX 96

/* The file: this header, the bitmap's words, SHA-256 of both (host order). */
struct keep_header {
	char magic[8];
	uint32_t format;
	uint32_t extent_size;
	uint64_t dev_bytes;
	uint64_t nr_extents;
	uint64_t nr_kept;		/* bits set in the bitmap */
	uint32_t version;
	uint32_t pad;
	char identity[KEEP_ID_MAX];	/* cache_identity() */
	char image[BLOBCR_NAME_MAX];
};

/* A saved bitmap taken off the disk, to restore. */
struct kept {
	struct keep_header h;
	uint64_t *bits;
};

static const char *keep_dir(const struct deployment *d)
{
	return d->keep_dir ? d->keep_dir : KEEP_DIR_DEFAULT;
}

/*
 * What names the cache across deployments: a loop device by its backing
 * file (the loop device itself is new each time), a file by itself, any
 * other block device by its number.  The content check makes a wrong guess
 * cost fetches only.
 */
static int cache_identity(const char *cache, char *out, size_t len)
{
	char sys[96], file[4096];
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(cache, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode) && major(st.st_rdev) == 7) {
		snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file",
			 major(st.st_rdev), minor(st.st_rdev));
		fd = open(sys, O_RDONLY | O_CLOEXEC);
		n = fd < 0 ? -1 : read(fd, file, sizeof(file) - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			return -ENOENT;
		file[n] = '\0';
		file[strcspn(file, "\n")] = '\0';
		if (stat(file, &st) < 0)
			return -errno;
	}
	if (S_ISBLK(st.st_mode))
		snprintf(out, len, "blk-%u-%u", major(st.st_rdev), minor(st.st_rdev));
	else
		snprintf(out, len, "file-%llx-%llx", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
	return 0;
}

static void keep_path(const struct deployment *d, const char *identity,
		      char *out, size_t len)
{
	snprintf(out, len, "%s/%s.kept", keep_dir(d), identity);
}

static int sha256(const void *a, size_t alen, const void *b, size_t blen,
		  uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(ctx, a, alen) && EVP_DigestUpdate(ctx, b, blen) &&
		 EVP_DigestFinal_ex(ctx, out, NULL);

	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

static size_t bitmap_words(uint64_t nr)
{
	return (nr + 63) / 64 ? (nr + 63) / 64 : 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* mkdir -p @dir (0700 for what it makes). */
static int make_dirs(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1, c; ; p++) {
		if (*p && *p != '/')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

/* Write @h and @bits as @path: aside, synced, renamed, directory synced. */
static int write_keep(const char *dir, const char *path,
		      const struct keep_header *h, const uint64_t *bits)
{
	size_t blen = bitmap_words(h->nr_extents) * sizeof(*bits);
	char tmp[4300];
	uint8_t sum[32];
	int fd, err;

	err = make_dirs(dir);
	if (!err)
		err = sha256(h, sizeof(*h), bits, blen, sum);
	if (err)
		return err;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = write_all(fd, h, sizeof(*h));
	if (!err)
		err = write_all(fd, bits, blen);
	if (!err)
		err = write_all(fd, sum, sizeof(sum));
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err ? err : blobcr_sync_dir(dir);
}

void keep_save(struct deployment *d)
{
	size_t words = bitmap_words(d->info.nr_extents);
	uint64_t *p = calloc(words, 8), *dirty = calloc(words, 8);
	uint64_t *commit = calloc(words, 8);
	struct keep_header h = { .format = KEEP_FORMAT };
	struct blobcr_info info;
	char path[4200];
	int err = -ENOMEM;

	if (!p || !dirty || !commit)
		goto out;
	memcpy(h.magic, KEEP_MAGIC, sizeof(h.magic));
	err = cache_identity(d->cache, h.identity, sizeof(h.identity));
	if (!err)
		err = channel_info(d->chfd, &info);
	if (!err)
		err = channel_get_bitmap(d->chfd, BLOBCR_BITMAP_PRESENT,
					 d->info.nr_extents, p);
	if (!err)
		err = channel_get_bitmap(d->chfd, BLOBCR_BITMAP_DIRTY,
					 d->info.nr_extents, dirty);
	if (!err)
		err = channel_get_bitmap(d->chfd, BLOBCR_BITMAP_COMMIT,
					 d->info.nr_extents, commit);
	if (err)
		goto out;
	/* Written since the last commit: the VM's bytes, in no version. */
	for (size_t i = 0; i < words; i++) {
		p[i] &= ~dirty[i] & ~commit[i];
		h.nr_kept += (uint64_t)__builtin_popcountll(p[i]);
	}
	/* After a commit the clean extents hold the committed version. */
	if (info.commits_done) {
		snprintf(h.image, sizeof(h.image), "%s", d->commit_image);
		h.version = (uint32_t)info.last_version;
	} else {
		snprintf(h.image, sizeof(h.image), "%s", d->image);
		h.version = d->version;
	}
	h.extent_size = d->extent_size;
	h.dev_bytes = d->info.dev_sectors * 512;
	h.nr_extents = d->info.nr_extents;
	keep_path(d, h.identity, path, sizeof(path));
	err = write_keep(keep_dir(d), path, &h, p);
	if (!err)
		logmsg(d, "kept cache: saved %llu present extents of %s@%u in %s",
		       (unsigned long long)h.nr_kept, h.image, h.version, path);
out:
	if (err)
		logmsg(d, "kept cache: nothing saved: %s", strerror(-err));
	free(p);
	free(dirty);
	free(commit);
}

/*
 * Read @path into *@h and a malloc'ed *@bits, then delete it: from here on
 * the cache is written again, so no later deployment may find this file.
 * Return: 0, -ENOENT (no file), or why it is not usable (logged).
 */
static int take_keep(struct deployment *d, const char *path,
		     const char *identity, struct keep_header *h, uint64_t **bits)
{
	size_t blen = bitmap_words(d->info.nr_extents) * sizeof(**bits);
	size_t want = sizeof(*h) + blen + 32;
	char *raw = malloc(want + 1);
	uint8_t sum[32];
	const char *why = NULL;
	ssize_t n = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(raw);
		return -errno;
	}
	if (!raw)
		err = -ENOMEM;
	/* One byte more than a valid file has: a longer one is not ours. */
	for (size_t got = 0; !err && got < want + 1;) {
		ssize_t r = read(fd, raw + got, want + 1 - got);

		if (r < 0 && errno != EINTR)
			err = -errno;
		if (r == 0)
			break;
		got += r > 0 ? (size_t)r : 0;
		n = (ssize_t)got;
	}
	close(fd);
	if (unlink(path) < 0 || blobcr_sync_dir(keep_dir(d)) < 0) {
		logmsg(d, "kept cache: cannot delete %s: %s; not used", path,
		       strerror(errno));
		err = err ? err : -EIO;
	}
	if (err) {
		free(raw);
		return err;
	}
	memset(h, 0, sizeof(*h));
	memcpy(h, raw, (size_t)n < sizeof(*h) ? (size_t)n : sizeof(*h));
	if ((size_t)n != want || memcmp(h->magic, KEEP_MAGIC, sizeof(h->magic)) ||
	    h->format != KEEP_FORMAT)
		why = "not a kept bitmap of this format and geometry (torn or foreign)";
	else if (sha256(raw, sizeof(*h), raw + sizeof(*h), blen, sum) ||
		 memcmp(sum, raw + sizeof(*h) + blen, sizeof(sum)))
		why = "its checksum does not match (torn or tampered)";
	else if (strncmp(h->identity, identity, sizeof(h->identity)))
		why = "it was saved for another cache (foreign)";
	else if (h->extent_size != d->extent_size ||
		 h->dev_bytes != d->info.dev_sectors * 512 ||
		 h->nr_extents != d->info.nr_extents)
		why = "it was saved for another geometry (foreign)";
	else if (strncmp(h->image, d->image, sizeof(h->image)) ||
		 h->version != d->version)
		why = "it was saved for another image or version (stale)";
	if (why) {
		char shown[4 * BLOBCR_NAME_MAX];

		h->image[sizeof(h->image) - 1] = '\0';
		logmsg(d, "kept cache: ignoring %s (%s@%u): %s; fetching instead",
		       path, why[0] == 'n' ? "?" :
		       blobcr_printable(h->image, shown, sizeof(shown)),
		       why[0] == 'n' ? 0 : h->version, why);
		free(raw);
		return -EINVAL;
	}
	*bits = malloc(blen);
	if (*bits)
		memcpy(*bits, raw + sizeof(*h), blen);
	free(raw);
	return *bits ? 0 : -ENOMEM;
}

/* @buf (@len bytes of @e read from the cache) holds what @loc names. */
static bool extent_matches(struct deployment *d, const struct blobcr_extent_loc *loc,
			   char *buf, uint32_t len)
{
	uint8_t id[BLOBCR_ID_SIZE];

	memset(buf + len, 0, d->extent_size - len);
	/* A hole: zeros, each byte equal to the one before it. */
	if (loc->kind != BLOBCR_EXT_DATA)
		return !buf[0] && !memcmp(buf, buf + 1, d->extent_size - 1);
	return !blobcr_chunk_id(buf, d->extent_size, id) &&
	       !memcmp(id, loc->id, sizeof(id));
}

/*
 * Check the saved extents of word @wd of @bits (extents 64 * @wd on),
 * clearing those whose cached bytes are not the version's, then mark the
 * rest present.  Return: 0 (*@differ counts the cleared, *@restored the
 * marked) or -errno.
 */
static int restore_word(struct deployment *d, struct worker *w, uint64_t *bits,
			uint64_t wd, uint64_t *differ, uint64_t *restored)
{
	uint64_t nr = d->info.nr_extents, first = wd * 64;
	uint64_t count = nr - first < 64 ? nr - first : 64;
	size_t n = 0;
	int err = 0;

	for (uint64_t e = first; !err && e <= first + count; e++) {
		if (e < first + count && bitmap_test(bits, e))
			w->exts[n++] = e;
		if (!n || (n < BLOBCRD_BATCH && e < first + count))
			continue;
		err = extmap_get(d, w->cl, w->exts, n, w->locs);
		if (!err)
			err = cacheio_rw(&w->io, false, w->exts, w->bufs, n);
		for (size_t i = 0; !err && i < n; i++) {
			uint64_t x = w->exts[i];

			if (extent_matches(d, &w->locs[i], w->bufs[i],
					   cacheio_extent_len(&w->io, x)))
				continue;
			bits[wd] &= ~(1ULL << (x % 64));
			(*differ)++;
		}
		n = 0;
	}
	if (err || !bits[wd])
		return err;
	err = channel_set_bitmap(d->chfd, BLOBCR_BITMAP_PRESENT, first, count,
				 &bits[wd]);
	if (!err)
		*restored += (uint64_t)__builtin_popcountll(bits[wd]);
	return err;
}

struct kept *keep_take(struct deployment *d)
{
	char identity[KEEP_ID_MAX], path[4200];
	struct blobcr_info info;
	struct kept *k;
	int err;

	if (cache_identity(d->cache, identity, sizeof(identity)))
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	keep_path(d, identity, path, sizeof(path));
	err = take_keep(d, path, identity, &k->h, &k->bits);
	if (err == -ENOENT)
		logmsg(d, "kept cache: no saved bitmap for this cache (%s)", path);
	if (!err)
		err = channel_info(d->chfd, &info);
	if (!err && (info.nr_present || info.nr_dirty || info.commits_done)) {
		logmsg(d, "kept cache: the target already holds extents (a restarted helper): saved bitmap not needed");
		err = -EEXIST;
	} else if (!err && !(info.features & BLOBCR_F_SET_BITMAP)) {
		logmsg(d, "kept cache: the target cannot take a present bitmap (no SET_BITMAP); fetching instead");
		err = -EOPNOTSUPP;
	}
	if (!err)
		return k;
	keep_free(k);
	return NULL;
}

void keep_free(struct kept *k)
{
	if (k)
		free(k->bits);
	free(k);
}

void keep_restore(struct deployment *d, struct worker *w, struct kept *k)
{
	uint64_t words = (d->info.nr_extents + 63) / 64, differ = 0, restored = 0;
	uint64_t t0 = blobcr_now_ms();
	int err = 0;

	for (uint64_t wd = 0; !err && wd < words; wd++) {
		if (atomic_load(&d->stopping))
			err = -EINTR;
		else if (k->bits[wd])
			err = restore_word(d, w, k->bits, wd, &differ, &restored);
	}
	if (err)
		logmsg(d, "kept cache: restore stopped: %s; the rest is fetched",
		       blobcr_strerror(err));
	logmsg(d, "kept cache: restored %llu of %llu saved extents of %s@%u in %llu ms (%llu differ from the version: fetched again)",
	       (unsigned long long)restored,
	       (unsigned long long)k->h.nr_kept, d->image, d->version,
	       (unsigned long long)(blobcr_now_ms() - t0),
	       (unsigned long long)differ);
}
