// SPDX-License-Identifier: GPL-2.0
/*
 * keyfile.c - keys: a private key file per entity, the repository's
 * keys.pub beside it, both read again when they change; and making,
 * rotating and retiring them (blobcr_auth.h, keyfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "blobcr_auth.h"
#include "blobcr_util.h"
#include "keyfile.h"

#define KEYFILE_MAGIC "blobcr-key-v1"
#define PUBS_MAX 65536 /* lines of keys.pub */
#define RELOAD_CHECK_MS 1000 /* how often key files are looked at */

/* ---- names and roles ---- */

static const char *const role_names[] = { "node", "host", "admin", "metad" };

const char *blobcr_role_name(unsigned int role)
{
	for (unsigned int i = 0; i < 4; i++)
		if (role == 1u << i)
			return role_names[i];
	return "?";
}

int blobcr_role_parse(const char *s)
{
	for (unsigned int i = 0; i < 4; i++)
		if (!strcmp(s, role_names[i]))
			return 1 << i;
	return -EINVAL;
}

void blobcr_roles_str(unsigned int roles, char *out, size_t len)
{
	size_t at = 0;

	out[0] = 0;
	for (unsigned int i = 0; i < 4; i++)
		if (roles & (1u << i))
			at += (size_t)snprintf(out + at, at < len ? len - at : 0,
					       "%s%s", at ? "," : "", role_names[i]);
}

bool blobcr_keyname_valid(const char *s)
{
	return blobcr_valid_name(s, BLOBCR_KEYNAME_MAX);
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < 2 * n; i++) {
		int c = s[i], v = c >= '0' && c <= '9' ? c - '0' :
				  c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
	}
	return 0;
}

/* ---- Ed25519, HMAC, HKDF ---- */

static EVP_PKEY *ed_private(const uint8_t seed[32])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
}

static int ed_public_of(const uint8_t seed[32], uint8_t pub[32])
{
	EVP_PKEY *k = ed_private(seed);
	size_t n = 32;
	int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) && n == 32;

	EVP_PKEY_free(k);
	return ok ? 0 : -EIO;
}

static int ed_sign(EVP_PKEY *k, const void *msg, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t n = 64;
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, k) &&
		 EVP_DigestSign(c, sig, &n, msg, len) && n == 64;

	EVP_MD_CTX_free(c);
	return ok ? 0 : -EIO;
}

static int hmac256(const void *key, size_t klen, const void *a, size_t alen,
		   const void *b, size_t blen, uint8_t out[32])
{
	uint8_t buf[256];
	unsigned int n = 32;

	if (alen + blen > sizeof(buf))
		return -EINVAL;
	memcpy(buf, a, alen);
	if (blen)
		memcpy(buf + alen, b, blen);
	return HMAC(EVP_sha256(), key, (int)klen, buf, alen + blen, out, &n) &&
	       n == 32 ? 0 : -EIO;
}

/* HKDF-SHA256 (RFC 5869) with one block of output. */
int keyfile_hkdf(const uint8_t *salt, size_t slen, const uint8_t *ikm,
		 size_t ilen, const char *info, uint8_t out[32])
{
	uint8_t prk[32];
	static const uint8_t one = 1;
	int err = hmac256(salt, slen, ikm, ilen, NULL, 0, prk);

	if (!err) {
		uint8_t in[128];
		size_t n = strlen(info);

		if (n + 1 > sizeof(in))
			return -EINVAL;
		memcpy(in, info, n);
		in[n] = one;
		err = hmac256(prk, 32, in, n + 1, NULL, 0, out);
	}
	OPENSSL_cleanse(prk, sizeof(prk));
	return err;
}

/* ---- key files ---- */

struct pubset {
	struct blobcr_pubkey *v;
	size_t n;
};

struct blobcr_key {
	pthread_mutex_t mu;
	char path[PATH_MAX], pubpath[PATH_MAX];
	/* fixed once loaded: */
	char name[BLOBCR_KEYNAME_MAX];
	unsigned int role;
	/* under mu, replaced when the files change: */
	uint8_t seed[32], pub[32];
	EVP_PKEY *priv;
	struct pubset pubs;
	struct stat key_st, pubs_st;
	uint64_t checked_ms;
	uint64_t generation; /* bumped when keys.pub changes */
};

static bool same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read a small file whole (NUL-terminated) into *@out; @st gets its state. */
static int read_small(const char *path, char **out, struct stat *st,
		      size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || (size_t)st->st_size > max) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, buf, (size_t)st->st_size, 0);
	close(fd);
	if (n != st->st_size) {
		free(buf);
		return -EIO;
	}
	buf[n] = 0;
	*out = buf;
	return 0;
}

/* Parse one "NAME ROLE HEX" line (@magic first if given). */
static int parse_key_line(char *line, const char *magic, char *name,
			  unsigned int *role, uint8_t key[32])
{
	char *save = NULL, *f[4];
	int nf = magic ? 4 : 3, r;

	for (int i = 0; i < nf; i++) {
		f[i] = strtok_r(i ? NULL : line, " \t", &save);
		if (!f[i])
			return -EINVAL;
	}
	if (strtok_r(NULL, " \t", &save))
		return -EINVAL;
	if (magic && strcmp(f[0], magic))
		return -EINVAL;
	if (!blobcr_keyname_valid(f[nf - 3]))
		return -EINVAL;
	r = blobcr_role_parse(f[nf - 2]);
	if (r < 0 || hex_decode(f[nf - 1], key, 32))
		return -EINVAL;
	strcpy(name, f[nf - 3]);
	*role = (unsigned int)r;
	return 0;
}

static int load_private(const char *path, char *name, unsigned int *role,
			uint8_t seed[32], struct stat *st)
{
	char *buf = NULL, *line, *save = NULL;
	int err = read_small(path, &buf, st, 4096);

	if (err) {
		blobcr_auth_set_detail("cannot read key file %s: %s", path,
				       strerror(-err));
		return err == -ENOENT ? -ENOKEY : -EKEYREJECTED;
	}
	err = -EKEYREJECTED;
	if (st->st_mode & 077) {
		blobcr_auth_set_detail("key file %s can be read by others: "
				       "chmod 600 %s", path, path);
		goto out;
	}
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || !line[strspn(line, " \t")])
			continue;
		if (!parse_key_line(line, KEYFILE_MAGIC, name, role, seed))
			err = 0;
		break;
	}
	if (err)
		blobcr_auth_set_detail("%s is not a blobcr key file", path);
out:
	OPENSSL_cleanse(buf, (size_t)st->st_size);
	free(buf);
	return err;
}

static int load_pubs(const char *path, struct pubset *ps, struct stat *st)
{
	char *buf = NULL, *line, *save = NULL;
	unsigned int lineno = 0;
	int err = read_small(path, &buf, st, PUBS_MAX * 160);

	ps->v = NULL;
	ps->n = 0;
	if (err) {
		blobcr_auth_set_detail("cannot read %s: %s", path, strerror(-err));
		return -EKEYREJECTED;
	}
	if (st->st_mode & 022) {
		blobcr_auth_set_detail("%s can be written by others: chmod 644 %s",
				       path, path);
		free(buf);
		return -EKEYREJECTED;
	}
	for (line = buf; line && !err; line = save) {
		struct blobcr_pubkey *pk;

		save = strchr(line, '\n');
		if (save)
			*save++ = 0;
		lineno++;
		if (line[0] == '#' || !line[strspn(line, " \t")])
			continue;
		if (ps->n == PUBS_MAX) {
			err = -E2BIG;
			break;
		}
		pk = realloc(ps->v, (ps->n + 1) * sizeof(*pk));
		if (!pk) {
			err = -ENOMEM;
			break;
		}
		ps->v = pk;
		pk = &ps->v[ps->n];
		if (parse_key_line(line, NULL, pk->name, &pk->role, pk->pub)) {
			blobcr_auth_set_detail("%s, line %u: not NAME ROLE PUBLIC-KEY",
					       path, lineno);
			err = -EKEYREJECTED;
			break;
		}
		ps->n++;
	}
	free(buf);
	if (err) {
		free(ps->v);
		ps->v = NULL;
		ps->n = 0;
	}
	return err;
}

static void pubs_path(const char *key_path, char *out, size_t len)
{
	const char *slash = strrchr(key_path, '/');

	if (!slash)
		snprintf(out, len, "keys.pub");
	else
		snprintf(out, len, "%.*s/keys.pub", (int)(slash - key_path),
			 key_path);
}

/*
 * Look at the key files again if a second passed since the last look (or
 * at once with @now_please: two stat() calls), and take what changed.  A file that became unreadable or bad leaves the last
 * good copy in use (logged).  Caller holds k->mu.
 */
static void key_refresh_locked(struct blobcr_key *k, bool now_please)
{
	uint64_t now = blobcr_now_ms();
	struct stat st;

	if (!now_please && now - k->checked_ms < RELOAD_CHECK_MS)
		return;
	k->checked_ms = now;
	if (!stat(k->pubpath, &st) && !same_file_state(&st, &k->pubs_st)) {
		struct pubset ps;

		if (load_pubs(k->pubpath, &ps, &st)) {
			log_warn("keeping the previous keys: %s", blobcr_auth_detail());
		} else {
			free(k->pubs.v);
			k->pubs = ps;
			k->pubs_st = st;
			k->generation++;
			log_info("%s: %zu public keys", k->pubpath, ps.n);
		}
	}
	if (!stat(k->path, &st) && !same_file_state(&st, &k->key_st)) {
		char name[BLOBCR_KEYNAME_MAX];
		unsigned int role;
		uint8_t seed[32], pub[32];
		EVP_PKEY *priv = NULL;

		if (load_private(k->path, name, &role, seed, &st) ||
		    strcmp(name, k->name) || role != k->role ||
		    ed_public_of(seed, pub) || !(priv = ed_private(seed))) {
			log_warn("keeping the previous private key of %s: %s changed "
				 "but cannot be used", k->name, k->path);
		} else {
			EVP_PKEY_free(k->priv);
			k->priv = priv;
			memcpy(k->seed, seed, 32);
			memcpy(k->pub, pub, 32);
			k->key_st = st;
			log_info("key %s: private key reloaded from %s", k->name,
				 k->path);
		}
		OPENSSL_cleanse(seed, sizeof(seed));
	}
}

int blobcr_key_load(const char *path, struct blobcr_key **out)
{
	struct blobcr_key *k;
	int err;

	if (!path || !*path)
		path = getenv("BLOBCR_KEY");
	if (!path || !*path) {
		blobcr_auth_set_detail("no key: give --key FILE or set BLOBCR_KEY "
				       "(Documentation/security.rst)");
		return -ENOKEY;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (strlen(path) >= sizeof(k->path) - 16) {
		free(k);
		return -ENAMETOOLONG;
	}
	strcpy(k->path, path);
	pubs_path(path, k->pubpath, sizeof(k->pubpath));
	err = load_private(path, k->name, &k->role, k->seed, &k->key_st);
	if (!err)
		err = ed_public_of(k->seed, k->pub);
	if (!err) {
		k->priv = ed_private(k->seed);
		err = k->priv ? 0 : -EIO;
	}
	if (!err)
		err = load_pubs(k->pubpath, &k->pubs, &k->pubs_st);
	if (!err && pthread_mutex_init(&k->mu, NULL))
		err = -ENOMEM;
	if (err) {
		EVP_PKEY_free(k->priv);
		OPENSSL_cleanse(k->seed, sizeof(k->seed));
		free(k);
		return err;
	}
	k->checked_ms = blobcr_now_ms();
	*out = k;
	return 0;
}

void blobcr_key_free(struct blobcr_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->priv);
	free(k->pubs.v);
	pthread_mutex_destroy(&k->mu);
	OPENSSL_clear_free(k, sizeof(*k));
}

const char *blobcr_key_name(const struct blobcr_key *k)
{
	return k->name;
}

unsigned int blobcr_key_role(const struct blobcr_key *k)
{
	return k->role;
}

const char *blobcr_key_path(const struct blobcr_key *k)
{
	return k->path;
}

int blobcr_key_mac(struct blobcr_key *k, const char *purpose, const void *data,
		   size_t len, uint8_t out[32])
{
	uint8_t sub[32];
	unsigned int n = 32;
	int err;

	pthread_mutex_lock(&k->mu);
	err = keyfile_hkdf((const uint8_t *)"blobcr key mac", 14, k->seed, 32, purpose,
		   sub);
	pthread_mutex_unlock(&k->mu);
	if (!err && !(HMAC(EVP_sha256(), sub, 32, data, len, out, &n) && n == 32))
		err = -EIO;
	OPENSSL_cleanse(sub, sizeof(sub));
	return err;
}

/* keyfile.h */
int keyfile_pubs_of(struct blobcr_key *k, const char *name, unsigned int roles,
		    uint8_t (*out)[32], unsigned int *role, uint64_t *gen,
		    bool fresh)
{
	int n = 0;

	pthread_mutex_lock(&k->mu);
	key_refresh_locked(k, fresh);
	for (size_t i = 0; i < k->pubs.n && n < SAME_NAME_MAX; i++) {
		const struct blobcr_pubkey *p = &k->pubs.v[i];

		if (strcmp(p->name, name) || !(p->role & roles))
			continue;
		memcpy(out[n++], p->pub, 32);
		*role = p->role;
	}
	if (gen)
		*gen = k->generation;
	pthread_mutex_unlock(&k->mu);
	return n;
}

int keyfile_sign(struct blobcr_key *k, const void *msg, size_t len,
		 uint8_t sig[64])
{
	EVP_PKEY *priv;
	int err;

	pthread_mutex_lock(&k->mu);
	key_refresh_locked(k, true); /* rare: sign with the newest key */
	priv = k->priv;
	EVP_PKEY_up_ref(priv); /* a reload may replace it meanwhile */
	pthread_mutex_unlock(&k->mu);
	err = ed_sign(priv, msg, len, sig);
	EVP_PKEY_free(priv);
	return err;
}

uint64_t keyfile_generation(struct blobcr_key *k)
{
	uint64_t gen;

	pthread_mutex_lock(&k->mu);
	key_refresh_locked(k, false);
	gen = k->generation;
	pthread_mutex_unlock(&k->mu);
	return gen;
}

const char *keyfile_pubs_path(const struct blobcr_key *k)
{
	return k->pubpath;
}

/* ---- key files: create, rotate, retire, list ---- */

/* Hold DIR/.keys.lock while keys.pub is rewritten.  Return: fd or -errno. */
static int lock_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/.keys.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Write @len bytes to @path through a temporary file, synced, renamed. */
static int write_atomic(const char *dir, const char *path, const void *data,
			size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode))
		err = -errno;
	else if (write(fd, data, len) != (ssize_t)len || fsync(fd))
		err = -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	blobcr_sync_dir(dir); /* the file is in place; its name, best effort */
	return 0;
}

static int pubs_text(const struct pubset *ps, char **out, size_t *len)
{
	size_t cap = 128 + ps->n * 140, at;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	at = (size_t)snprintf(buf, cap, "# blobcr public keys: NAME ROLE "
			      "PUBLIC-KEY (Documentation/security.rst)\n");
	for (size_t i = 0; i < ps->n; i++) {
		char hex[65];

		hex_encode(ps->v[i].pub, 32, hex);
		at += (size_t)snprintf(buf + at, cap - at, "%s %s %s\n",
				       ps->v[i].name,
				       blobcr_role_name(ps->v[i].role), hex);
	}
	*out = buf;
	*len = at;
	return 0;
}

static int write_pubs(const char *dir, const struct pubset *ps)
{
	char path[PATH_MAX], *text;
	size_t len;
	int err = pubs_text(ps, &text, &len);

	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/keys.pub", dir);
	err = write_atomic(dir, path, text, len, 0644);
	free(text);
	return err;
}

/* keys.pub of @dir, or an empty set if there is none yet. */
static int read_pubs(const char *dir, struct pubset *ps)
{
	char path[PATH_MAX];
	struct stat st;
	int err;

	snprintf(path, sizeof(path), "%s/keys.pub", dir);
	if (access(path, F_OK) && errno == ENOENT) {
		ps->v = NULL;
		ps->n = 0;
		return 0;
	}
	err = load_pubs(path, ps, &st);
	return err == -EKEYREJECTED ? -EINVAL : err;
}

int blobcr_keyfile_create(const char *dir, const char *name, unsigned int role,
			  bool rotate)
{
	char path[PATH_MAX], line[256], hex[65], oname[BLOBCR_KEYNAME_MAX];
	uint8_t seed[32];
	struct blobcr_pubkey *pk;
	struct pubset ps = { 0 };
	struct stat st;
	unsigned int orole;
	int lock, n, err;

	if (!blobcr_keyname_valid(name))
		return -EINVAL;
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	lock = lock_dir(dir);
	if (lock < 0)
		return lock;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	err = read_pubs(dir, &ps);
	if (!err && rotate) {
		err = load_private(path, oname, &orole, seed, &st);
		if (err == -ENOKEY)
			err = -ENOENT;
		else if (!err)
			role = orole;
	} else if (!err) {
		err = access(path, F_OK) ? 0 : -EEXIST;
		for (size_t i = 0; !err && i < ps.n; i++)
			if (!strcmp(ps.v[i].name, name))
				err = -EEXIST;
	}
	if (!err)
		err = RAND_bytes(seed, 32) == 1 ? 0 : -EIO;
	pk = err ? NULL : realloc(ps.v, (ps.n + 1) * sizeof(*pk));
	if (!err && !pk)
		err = -ENOMEM;
	if (!err) {
		ps.v = pk;
		pk = &ps.v[ps.n++];
		snprintf(pk->name, sizeof(pk->name), "%s", name);
		pk->role = role;
		err = ed_public_of(seed, pk->pub);
	}
	/* The new public key first: servers accept it before anyone uses it. */
	if (!err)
		err = write_pubs(dir, &ps);
	if (!err) {
		hex_encode(seed, 32, hex);
		n = snprintf(line, sizeof(line), "# blobcr private key of %s: keep "
			     "it secret\n%s %s %s %s\n", name, KEYFILE_MAGIC, name,
			     blobcr_role_name(role), hex);
		err = write_atomic(dir, path, line, (size_t)n, 0600);
		OPENSSL_cleanse(line, sizeof(line));
		OPENSSL_cleanse(hex, sizeof(hex));
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	free(ps.v);
	close(lock);
	return err;
}

int blobcr_keyfile_retire(const char *dir, const char *name, bool all)
{
	char path[PATH_MAX], oname[BLOBCR_KEYNAME_MAX];
	uint8_t seed[32], cur[32];
	struct pubset ps = { 0 };
	struct stat st;
	unsigned int role;
	size_t kept = 0;
	int lock, dropped = 0, err;

	if (!blobcr_keyname_valid(name))
		return -EINVAL;
	lock = lock_dir(dir);
	if (lock < 0)
		return lock;
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	err = read_pubs(dir, &ps);
	if (!err && !all) {
		err = load_private(path, oname, &role, seed, &st);
		if (err == -ENOKEY)
			err = -ENOENT;
		if (!err)
			err = ed_public_of(seed, cur);
		OPENSSL_cleanse(seed, sizeof(seed));
	}
	for (size_t i = 0; !err && i < ps.n; i++) {
		if (!strcmp(ps.v[i].name, name) &&
		    (all || memcmp(ps.v[i].pub, cur, 32))) {
			dropped++;
			continue;
		}
		ps.v[kept++] = ps.v[i];
	}
	ps.n = kept;
	if (!err && dropped)
		err = write_pubs(dir, &ps);
	free(ps.v);
	close(lock);
	return err ? err : dropped;
}

int blobcr_keyfile_list(const char *dir, struct blobcr_pubkey **out, size_t *n)
{
	struct pubset ps;
	int err = read_pubs(dir, &ps);

	if (err)
		return err;
	*out = ps.v;
	*n = ps.n;
	return 0;
}
