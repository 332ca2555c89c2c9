// SPDX-License-Identifier: GPL-2.0
/*
 * auth.c - keys, sessions and sealed frames (blobcr_auth.h).
 *
 * Ed25519 signs the two messages of a handshake, X25519 gives it a shared
 * secret, HKDF-SHA256 turns that into the session key, and AES-256-GCM
 * seals every frame of the session: the tag covers the header, the
 * trailer's session id and sequence number, and the payload (as additional
 * data, or encrypted).  The nonce is the direction (0 request, 1 reply)
 * and the request's sequence number: a client never reuses a sequence
 * number, and a server answers each accepted sequence number once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
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

#include "blobcr.h"
#include "blobcr_auth.h"
#include "blobcr_util.h"

#define KEYFILE_MAGIC "blobcr-key-v1"
#define PUBS_MAX 65536 /* lines of keys.pub */
#define SAME_NAME_MAX 8 /* public keys per name (rotations) */
#define RELOAD_CHECK_MS 1000 /* how often key files are looked at */
#define SESS_WINDOW 1024 /* out-of-order sequence numbers tolerated */
#define SESS_SLOTS 16384 /* sessions a server keeps (power of 2) */
#define SESS_LIFETIME_MS (24ull * 3600 * 1000)
#define SESS_PROBES 8 /* slots looked at to place a new session */
#define DIR_REQUEST 0
#define DIR_REPLY 1

/* ---- small helpers ---- */

static __thread char detail[256];

const char *blobcr_auth_detail(void)
{
	return detail;
}

void blobcr_auth_set_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
}

bool blobcr_auth_error(int err)
{
	return err == -ENOKEY || err == -EKEYEXPIRED || err == -EKEYREJECTED ||
	       err == -EACCES;
}

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
	size_t n = strlen(s);

	if (!n || n >= BLOBCR_KEYNAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
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

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- Ed25519, X25519, HKDF ---- */

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

static bool ed_verify(const uint8_t pub[32], const void *msg, size_t len,
		      const uint8_t sig[64])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = k && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) &&
		  EVP_DigestVerify(c, sig, 64, msg, len) == 1;

	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	return ok;
}

/* A fresh X25519 key pair. */
static int x_keypair(uint8_t priv[32], uint8_t pub[32])
{
	EVP_PKEY *k;
	size_t n = 32;
	int ok;

	if (RAND_bytes(priv, 32) != 1)
		return -EIO;
	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
	ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) && n == 32;
	EVP_PKEY_free(k);
	return ok ? 0 : -EIO;
}

static int x_shared(const uint8_t priv[32], const uint8_t peer[32],
		    uint8_t out[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
	EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
	EVP_PKEY_CTX *c = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
	size_t n = 32;
	int ok = k && p && c && EVP_PKEY_derive_init(c) > 0 &&
		 EVP_PKEY_derive_set_peer(c, p) > 0 &&
		 EVP_PKEY_derive(c, out, &n) > 0 && n == 32;

	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(p);
	EVP_PKEY_free(k);
	return ok ? 0 : -EKEYREJECTED; /* e.g. a low-order peer point */
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
static int hkdf(const uint8_t *salt, size_t slen, const uint8_t *ikm,
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

/* ---- AES-256-GCM over a frame ---- */

static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *gcm;
static pthread_key_t gcm_ctx_key;

static void ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void gcm_init(void)
{
	gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	pthread_key_create(&gcm_ctx_key, ctx_free);
}

/* One cipher context per thread, kept: setting one up costs more than a tag. */
static EVP_CIPHER_CTX *gcm_ctx(void)
{
	EVP_CIPHER_CTX *c;

	pthread_once(&gcm_once, gcm_init);
	if (!gcm)
		return NULL;
	c = pthread_getspecific(gcm_ctx_key);
	if (!c) {
		c = EVP_CIPHER_CTX_new();
		if (c && pthread_setspecific(gcm_ctx_key, c)) {
			EVP_CIPHER_CTX_free(c);
			c = NULL;
		}
	}
	return c;
}

/*
 * Seal or open @frame: header, @plen payload bytes, trailer (session id,
 * sequence, tag).  Sealing writes the tag; opening checks it.  With
 * @encrypt the payload is encrypted or decrypted in place, else it is
 * authenticated only.  Return: 0, or -EBADMSG for a tag that does not match.
 */
static int frame_aead(const uint8_t key[32], bool seal, uint32_t dir,
		      uint8_t *frame, size_t plen, bool encrypt)
{
	EVP_CIPHER_CTX *c = gcm_ctx();
	uint8_t *payload = frame + BLOBCR_HDR_SIZE, *trailer = payload + plen;
	uint8_t nonce[12];
	int n, ok;

	if (!c || plen > INT_MAX)
		return -EIO;
	nonce[0] = (uint8_t)(dir >> 24);
	nonce[1] = (uint8_t)(dir >> 16);
	nonce[2] = (uint8_t)(dir >> 8);
	nonce[3] = (uint8_t)dir;
	memcpy(nonce + 4, trailer + 8, 8);
	ok = EVP_CipherInit_ex(c, gcm, NULL, key, nonce, seal) &&
	     EVP_CipherUpdate(c, NULL, &n, frame, BLOBCR_HDR_SIZE) &&
	     EVP_CipherUpdate(c, NULL, &n, trailer, 16);
	if (ok && plen)
		ok = EVP_CipherUpdate(c, encrypt ? payload : NULL, &n, payload,
				      (int)plen);
	if (ok && !seal)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, trailer + 16);
	if (ok)
		ok = EVP_CipherFinal_ex(c, payload + plen, &n);
	if (ok && seal)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, trailer + 16);
	return ok ? 0 : seal ? -EIO : -EBADMSG;
}

/* Finish @e's header for @h and seal it under @key as @sid/@seq. */
static int seal_frame(const uint8_t key[32], uint8_t sflags, uint32_t dir,
		      struct blobcr_enc *e, const struct blobcr_hdr *h,
		      uint64_t sid, uint64_t seq)
{
	struct blobcr_hdr hh = *h;
	bool encrypt = sflags & BLOBCR_SESS_ENCRYPT;
	size_t plen;
	uint8_t *t;
	int err;

	hh.flags |= BLOBCR_F_AUTH | (encrypt ? BLOBCR_F_SEALED : 0);
	err = blobcr_enc_finish(e, &hh);
	if (err)
		return err;
	plen = e->len - BLOBCR_HDR_SIZE;
	/* blobcr_enc_*() always leave room for the trailer. */
	if (e->len + BLOBCR_TRAILER > e->cap)
		return -EMSGSIZE;
	t = e->buf + e->len;
	put64(t, sid);
	put64(t + 8, seq);
	err = frame_aead(key, true, dir, e->buf, plen, encrypt);
	if (!err)
		e->len += BLOBCR_TRAILER;
	return err;
}

/* Open the sealed frame @buf of @len bytes, already decoded into @h. */
static int open_frame(const uint8_t key[32], uint8_t sflags, uint32_t dir,
		      uint8_t *buf, size_t len, const struct blobcr_hdr *h)
{
	bool encrypt = sflags & BLOBCR_SESS_ENCRYPT;

	/* The frame must be sealed the way the session says: no downgrade. */
	if (!(h->flags & BLOBCR_F_AUTH) || !!(h->flags & BLOBCR_F_SEALED) != encrypt ||
	    len != BLOBCR_HDR_SIZE + (size_t)h->payload_len + BLOBCR_TRAILER)
		return -EBADMSG;
	return frame_aead(key, false, dir, buf, h->payload_len, encrypt);
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
	err = hkdf((const uint8_t *)"blobcr key mac", 14, k->seed, 32, purpose,
		   sub);
	pthread_mutex_unlock(&k->mu);
	if (!err && !(HMAC(EVP_sha256(), sub, 32, data, len, out, &n) && n == 32))
		err = -EIO;
	OPENSSL_cleanse(sub, sizeof(sub));
	return err;
}

/*
 * The public keys keys.pub lists for @name with a role in @roles, into
 * @out (at most SAME_NAME_MAX).  With @fresh, keys.pub is looked at first
 * (a key just added or rotated works at once).  Return: how many, and
 * *@role the role.
 */
static int pubs_of(struct blobcr_key *k, const char *name, unsigned int roles,
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

static int sign_with(struct blobcr_key *k, const void *msg, size_t len,
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

/* ---- the handshake ---- */

/* What the client signs: its name, flags and ephemeral key. */
static int hello_msg(struct blobcr_enc *m, const char *name, uint8_t flags,
		     const uint8_t eph[32])
{
	int err = blobcr_enc_init(m, 128);

	if (err)
		return err;
	blobcr_enc_str(m, "blobcr-hello-1");
	blobcr_enc_str(m, name);
	blobcr_enc_u8(m, flags);
	blobcr_enc_bytes(m, eph, 32);
	return m->err;
}

/* What the server signs: the whole exchange. */
static int accept_msg(struct blobcr_enc *m, const char *cname, uint8_t cflags,
		      const uint8_t ceph[32], const uint8_t csig[64],
		      const char *sname, uint64_t sid, uint8_t granted,
		      const uint8_t seph[32])
{
	int err = blobcr_enc_init(m, 256);

	if (err)
		return err;
	blobcr_enc_str(m, "blobcr-accept-1");
	blobcr_enc_str(m, cname);
	blobcr_enc_u8(m, cflags);
	blobcr_enc_bytes(m, ceph, 32);
	blobcr_enc_bytes(m, csig, 64);
	blobcr_enc_str(m, sname);
	blobcr_enc_u64(m, sid);
	blobcr_enc_u8(m, granted);
	blobcr_enc_bytes(m, seph, 32);
	return m->err;
}

/* The session key: HKDF of the X25519 secret, salted with the transcript. */
static int session_key(const uint8_t *my_priv, const uint8_t *peer_pub,
		       const struct blobcr_enc *transcript, uint8_t out[32])
{
	uint8_t shared[32], salt[32];
	int err = x_shared(my_priv, peer_pub, shared);

	if (!err)
		err = blobcr_chunk_id(transcript->buf + BLOBCR_HDR_SIZE,
				      transcript->len - BLOBCR_HDR_SIZE, salt);
	if (!err)
		err = hkdf(salt, 32, shared, 32, "blobcr session key v1", out);
	OPENSSL_cleanse(shared, sizeof(shared));
	return err;
}

static const uint8_t *msg_bytes(const struct blobcr_enc *m)
{
	return m->buf + BLOBCR_HDR_SIZE;
}

static size_t msg_len(const struct blobcr_enc *m)
{
	return m->len - BLOBCR_HDR_SIZE;
}

int blobcr_hello_begin(struct blobcr_key *k, uint8_t flags,
		       struct blobcr_hello *st, struct blobcr_enc *e)
{
	struct blobcr_enc m;
	int err = x_keypair(st->eph_priv, st->eph_pub);

	st->flags = flags;
	if (!err)
		err = hello_msg(&m, k->name, flags, st->eph_pub);
	if (!err)
		err = sign_with(k, msg_bytes(&m), msg_len(&m), st->sig);
	blobcr_enc_free(&m);
	if (err)
		return err;
	blobcr_enc_u8(e, 1); /* handshake version */
	blobcr_enc_str(e, k->name);
	blobcr_enc_u8(e, flags);
	blobcr_enc_bytes(e, st->eph_pub, 32);
	blobcr_enc_bytes(e, st->sig, 64);
	return e->err;
}

int blobcr_hello_finish(struct blobcr_key *k, const struct blobcr_hello *st,
			unsigned int want_roles, struct blobcr_dec *d,
			struct blobcr_session *out)
{
	char sname[BLOBCR_KEYNAME_MAX], roles[32];
	uint8_t pubs[SAME_NAME_MAX][32];
	const uint8_t *seph, *sig;
	struct blobcr_enc m;
	unsigned int role = 0;
	uint64_t sid;
	uint8_t granted;
	int n, i, err;

	if (blobcr_dec_str(d, sname, sizeof(sname)))
		return -EBADMSG;
	sid = blobcr_dec_u64(d);
	granted = blobcr_dec_u8(d);
	seph = blobcr_dec_bytes(d, 32);
	sig = blobcr_dec_bytes(d, 64);
	if (blobcr_dec_end(d) || !sid)
		return -EBADMSG;
	blobcr_roles_str(want_roles, roles, sizeof(roles));
	n = pubs_of(k, sname, want_roles, pubs, &role, NULL, true);
	if (!n) {
		blobcr_auth_set_detail("the server answered with key '%s', which "
				       "%s does not list as %s", sname,
				       k->pubpath, roles);
		return -EKEYREJECTED;
	}
	err = accept_msg(&m, k->name, st->flags, st->eph_pub, st->sig, sname,
			 sid, granted, seph);
	for (i = 0; !err && i < n; i++)
		if (ed_verify(pubs[i], msg_bytes(&m), msg_len(&m), sig))
			break;
	if (!err && i == n) {
		blobcr_auth_set_detail("the server's signature does not match "
				       "key '%s' of %s", sname, k->pubpath);
		err = -EKEYREJECTED;
	}
	if (!err && (granted & st->flags) != st->flags) {
		blobcr_auth_set_detail("server '%s' did not grant the session "
				       "flags asked for", sname);
		err = -EKEYREJECTED;
	}
	if (!err)
		err = session_key(st->eph_priv, seph, &m, out->key);
	blobcr_enc_free(&m);
	if (err)
		return err;
	out->sid = sid;
	out->seq = 0;
	out->flags = granted;
	return 0;
}

/* ---- sealed frames, client side ---- */

int blobcr_seal_request(struct blobcr_session *s, struct blobcr_enc *e,
			const struct blobcr_hdr *h, uint64_t *seq)
{
	*seq = ++s->seq;
	return seal_frame(s->key, s->flags, DIR_REQUEST, e, h, s->sid, *seq);
}

void blobcr_unseal(const struct blobcr_session *s, struct blobcr_enc *e)
{
	size_t plen;

	if (e->len < BLOBCR_HDR_SIZE + BLOBCR_TRAILER ||
	    !(be64(e->buf) >> 32 == BLOBCR_WIRE_MAGIC) ||
	    !(e->buf[7] & BLOBCR_F_AUTH))
		return;
	plen = e->len - BLOBCR_HDR_SIZE - BLOBCR_TRAILER;
	/* Counter mode: encrypting again with the same nonce decrypts. */
	if (e->buf[7] & BLOBCR_F_SEALED)
		frame_aead(s->key, true, DIR_REQUEST, e->buf, plen, true);
	e->len -= BLOBCR_TRAILER;
}

int blobcr_open_reply(const struct blobcr_session *s, uint64_t seq,
		      uint8_t *buf, size_t len, struct blobcr_hdr *h,
		      const uint8_t **payload)
{
	const uint8_t *t;

	if (!(h->flags & BLOBCR_F_AUTH))
		return -EBADMSG;
	t = buf + BLOBCR_HDR_SIZE + h->payload_len;
	if (len < BLOBCR_HDR_SIZE + BLOBCR_TRAILER || be64(t) != s->sid ||
	    be64(t + 8) != seq)
		return -EBADMSG;
	if (open_frame(s->key, s->flags, DIR_REPLY, buf, len, h))
		return -EBADMSG;
	*payload = buf + BLOBCR_HDR_SIZE;
	return 0;
}

/* ---- the server side ---- */

struct sess {
	uint64_t sid; /* 0: free */
	uint64_t top; /* highest sequence number accepted */
	uint64_t seen[SESS_WINDOW / 64]; /* bit i: top - i accepted */
	uint64_t created_ms, used_ms;
	uint64_t gen; /* keys.pub generation it was checked against */
	uint8_t key[BLOBCR_SESSION_KEY];
	uint8_t pub[32]; /* the client key that opened it */
	uint8_t flags;
	unsigned int role;
	char name[BLOBCR_KEYNAME_MAX];
};

struct blobcr_authsrv {
	struct blobcr_key *own;
	uint8_t required;
	pthread_mutex_t mu; /* the table */
	struct sess *tab; /* SESS_SLOTS */
};

int blobcr_authsrv_new(struct blobcr_key *own, uint8_t required,
		       struct blobcr_authsrv **out)
{
	struct blobcr_authsrv *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->tab = calloc(SESS_SLOTS, sizeof(*a->tab));
	if (!a->tab || pthread_mutex_init(&a->mu, NULL)) {
		free(a->tab);
		free(a);
		return -ENOMEM;
	}
	a->own = own;
	a->required = required;
	*out = a;
	return 0;
}

void blobcr_authsrv_free(struct blobcr_authsrv *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->mu);
	OPENSSL_clear_free(a->tab, SESS_SLOTS * sizeof(*a->tab));
	free(a);
}

static uint64_t rand64(void)
{
	uint64_t v = 0;

	if (RAND_bytes((uint8_t *)&v, sizeof(v)) != 1)
		v = blobcr_now_ms() * 0x9e3779b97f4a7c15ull; /* never used twice */
	return v;
}

/* A slot for a new session: a free one, or the least recently used. */
static struct sess *sess_slot(struct blobcr_authsrv *a, uint64_t now)
{
	struct sess *best = NULL;

	for (int i = 0; i < SESS_PROBES; i++) {
		struct sess *s = &a->tab[rand64() & (SESS_SLOTS - 1)];

		if (!s->sid || now - s->created_ms > SESS_LIFETIME_MS)
			return s;
		if (!best || s->used_ms < best->used_ms)
			best = s;
	}
	return best;
}

int blobcr_authsrv_hello(struct blobcr_authsrv *a, struct blobcr_dec *req,
			 struct blobcr_enc *reply, char *why, size_t whylen)
{
	char cname[BLOBCR_KEYNAME_MAX];
	uint8_t pubs[SAME_NAME_MAX][32], seph_priv[32], seph[32], sig[64];
	uint8_t key[BLOBCR_SESSION_KEY];
	const uint8_t *ceph, *csig;
	struct blobcr_enc m = { 0 }, am = { 0 };
	unsigned int role = 0;
	uint8_t version, cflags, granted;
	uint64_t sid, gen, now = blobcr_now_ms();
	struct sess *s;
	int n, i, err;

	version = blobcr_dec_u8(req);
	err = blobcr_dec_str(req, cname, sizeof(cname));
	cflags = blobcr_dec_u8(req);
	ceph = blobcr_dec_bytes(req, 32);
	csig = blobcr_dec_bytes(req, 64);
	if (err || blobcr_dec_end(req) || version != 1 ||
	    !blobcr_keyname_valid(cname)) {
		snprintf(why, whylen, "malformed AUTH request");
		return -EBADMSG;
	}
	err = hello_msg(&m, cname, cflags, ceph);
	if (err)
		return err;
	/* Known keys first; a key not (yet) known: keys.pub may just have changed. */
	for (int pass = 0, fresh = 0; pass < 2; pass++, fresh = 1) {
		n = pubs_of(a->own, cname, BLOBCR_ROLE_ANY, pubs, &role, &gen,
			    fresh);
		for (i = 0; i < n; i++)
			if (ed_verify(pubs[i], msg_bytes(&m), msg_len(&m), csig))
				break;
		if (n && i < n)
			break;
	}
	blobcr_enc_free(&m);
	if (!n) {
		snprintf(why, whylen, "key '%s' is not in the keys.pub of %s",
			 cname, a->own->name);
		return -EKEYREJECTED;
	}
	if (i == n) {
		snprintf(why, whylen, "key '%s': bad signature (a private key "
			 "keys.pub no longer lists?)", cname);
		return -EKEYREJECTED;
	}
	granted = (cflags & BLOBCR_SESS_ENCRYPT) | a->required;
	err = x_keypair(seph_priv, seph);
	if (err)
		return err;
	pthread_mutex_lock(&a->mu);
	s = sess_slot(a, now);
	sid = (rand64() & ~(uint64_t)(SESS_SLOTS - 1)) | (uint64_t)(s - a->tab);
	if (!(sid & ~(uint64_t)(SESS_SLOTS - 1)))
		sid |= 1ull << 63; /* the random part is never 0 */
	s->sid = 0; /* evicted: the slot is filled in below */
	pthread_mutex_unlock(&a->mu);
	err = accept_msg(&am, cname, cflags, ceph, csig, a->own->name,
				 sid, granted, seph);
	if (!err)
		err = sign_with(a->own, msg_bytes(&am), msg_len(&am), sig);
	if (!err)
		err = session_key(seph_priv, ceph, &am, key);
	blobcr_enc_free(&am);
	OPENSSL_cleanse(seph_priv, sizeof(seph_priv));
	if (err) {
		snprintf(why, whylen, "key agreement failed");
		return err == -EKEYREJECTED ? err : -EIO;
	}
	pthread_mutex_lock(&a->mu);
	memset(s, 0, sizeof(*s));
	s->sid = sid;
	s->created_ms = s->used_ms = now;
	s->gen = gen;
	memcpy(s->key, key, sizeof(key));
	memcpy(s->pub, pubs[i], 32);
	s->flags = granted;
	s->role = role;
	strcpy(s->name, cname);
	pthread_mutex_unlock(&a->mu);
	OPENSSL_cleanse(key, sizeof(key));
	blobcr_enc_str(reply, a->own->name);
	blobcr_enc_u64(reply, sid);
	blobcr_enc_u8(reply, granted);
	blobcr_enc_bytes(reply, seph, 32);
	blobcr_enc_bytes(reply, sig, 64);
	return reply->err;
}

/* Shift the window by @k sequence numbers: bit i becomes bit i + k. */
static void window_shift(uint64_t *w, uint64_t k)
{
	const unsigned int words = SESS_WINDOW / 64;
	unsigned int ws, bs;

	if (k >= SESS_WINDOW) {
		memset(w, 0, words * sizeof(*w));
		return;
	}
	ws = (unsigned int)(k / 64);
	bs = (unsigned int)(k % 64);
	for (int i = (int)words - 1; i >= 0; i--) {
		uint64_t v = i >= (int)ws ? w[i - ws] << bs : 0;

		if (bs && i >= (int)ws + 1)
			v |= w[i - ws - 1] >> (64 - bs);
		w[i] = v;
	}
}

/* Whether @seq may still be accepted; with @mark, accept it. */
static bool window_take(struct sess *s, uint64_t seq, bool mark)
{
	uint64_t d;

	if (!seq)
		return false;
	if (seq > s->top) {
		if (mark) {
			window_shift(s->seen, seq - s->top);
			s->seen[0] |= 1;
			s->top = seq;
		}
		return true;
	}
	d = s->top - seq;
	if (d >= SESS_WINDOW || (s->seen[d / 64] >> (d % 64) & 1))
		return false;
	if (mark)
		s->seen[d / 64] |= 1ull << (d % 64);
	return true;
}

/* Whether the key that opened @s is still in keys.pub (revocation). */
static bool sess_key_current(struct blobcr_authsrv *a, struct sess *s,
			     uint64_t gen)
{
	uint8_t pubs[SAME_NAME_MAX][32];
	unsigned int role = 0;
	int n;

	if (s->gen == gen)
		return true;
	n = pubs_of(a->own, s->name, s->role, pubs, &role, NULL, false);
	for (int i = 0; i < n; i++)
		if (!CRYPTO_memcmp(pubs[i], s->pub, 32))
			return true;
	return false;
}

int blobcr_authsrv_open(struct blobcr_authsrv *a, uint8_t *buf, size_t len,
			const struct blobcr_hdr *h, struct blobcr_principal *who,
			char *why, size_t whylen)
{
	const uint8_t *t;
	struct sess *s, snap;
	uint64_t sid, seq, gen, now = blobcr_now_ms();
	bool ok;

	if (!(h->flags & BLOBCR_F_AUTH)) {
		snprintf(why, whylen, "a request without a key: every request "
			 "needs one (BLOBCR_KEY, see Documentation/security.rst)");
		return -ENOKEY;
	}
	t = buf + BLOBCR_HDR_SIZE + h->payload_len;
	sid = be64(t);
	seq = be64(t + 8);
	pthread_mutex_lock(&a->own->mu);
	key_refresh_locked(a->own, false);
	gen = a->own->generation;
	pthread_mutex_unlock(&a->own->mu);

	pthread_mutex_lock(&a->mu);
	s = &a->tab[sid & (SESS_SLOTS - 1)];
	ok = sid && s->sid == sid && now - s->created_ms <= SESS_LIFETIME_MS;
	if (ok)
		snap = *s;
	pthread_mutex_unlock(&a->mu);
	if (!ok) {
		snprintf(why, whylen, "unknown or expired session: authenticate "
			 "again");
		return -EKEYEXPIRED;
	}
	if (!sess_key_current(a, &snap, gen)) {
		pthread_mutex_lock(&a->mu);
		if (s->sid == sid)
			s->sid = 0;
		pthread_mutex_unlock(&a->mu);
		snprintf(why, whylen, "key '%s' was revoked or rotated out of "
			 "keys.pub: authenticate again", snap.name);
		return -EKEYEXPIRED;
	}
	if (!window_take(&snap, seq, false)) {
		snprintf(why, whylen, "replayed or stale request (key '%s', "
			 "sequence %llu)", snap.name, (unsigned long long)seq);
		return -EKEYREJECTED;
	}
	if (open_frame(snap.key, snap.flags, DIR_REQUEST, buf, len, h)) {
		snprintf(why, whylen, "request with a bad tag (key '%s'): "
			 "forged or damaged", snap.name);
		return -EKEYREJECTED;
	}
	pthread_mutex_lock(&a->mu);
	ok = s->sid == sid && window_take(s, seq, true);
	if (ok) {
		s->used_ms = now;
		s->gen = gen;
	}
	pthread_mutex_unlock(&a->mu);
	if (!ok) {
		snprintf(why, whylen, "replayed request (key '%s', sequence %llu)",
			 snap.name, (unsigned long long)seq);
		return -EKEYREJECTED;
	}
	strcpy(who->name, snap.name);
	who->role = snap.role;
	who->sid = sid;
	who->seq = seq;
	who->flags = snap.flags;
	memcpy(who->key, snap.key, sizeof(who->key));
	OPENSSL_cleanse(&snap, sizeof(snap));
	return 0;
}

int blobcr_seal_reply(const struct blobcr_principal *who, struct blobcr_enc *e,
		      const struct blobcr_hdr *h)
{
	return seal_frame(who->key, who->flags, DIR_REPLY, e, h, who->sid,
			  who->seq);
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
	int fd, dfd, err = 0;

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
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
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
