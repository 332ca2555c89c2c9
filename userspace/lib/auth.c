// SPDX-License-Identifier: GPL-2.0
/*
 * auth.c - sessions and sealed frames (blobcr_auth.h); the key files are
 * keyfile.c's.
 *
 * Ed25519 signs the two messages of a handshake, X25519 gives it a shared
 * secret, HKDF-SHA256 turns that into the session key, and AES-256-GCM
 * seals every frame of the session: the tag covers the header, the
 * trailer's session id and sequence number, and the payload (as additional
 * data, or encrypted).  The nonce is the direction (0 request, 1 reply)
 * and the request's sequence number: a client never reuses a sequence
 * number, and a server answers each accepted sequence number once.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "blobcr.h"
#include "blobcr_auth.h"
#include "blobcr_util.h"
#include "keyfile.h"

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

/* ---- Ed25519 checks, X25519 ---- */

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

	if (!BLOBCR_AUTH_ON)
		return blobcr_enc_finish(e, h); /* the benchmark's baseline */
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
		err = keyfile_hkdf(salt, 32, shared, 32, "blobcr session key v1", out);
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
		err = hello_msg(&m, blobcr_key_name(k), flags, st->eph_pub);
	if (!err)
		err = keyfile_sign(k, msg_bytes(&m), msg_len(&m), st->sig);
	blobcr_enc_free(&m);
	if (err)
		return err;
	blobcr_enc_u8(e, 1); /* handshake version */
	blobcr_enc_str(e, blobcr_key_name(k));
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
	n = keyfile_pubs_of(k, sname, want_roles, pubs, &role, NULL, true);
	if (!n) {
		blobcr_auth_set_detail("the server answered with key '%s', which "
				       "%s does not list as %s", sname,
				       keyfile_pubs_path(k), roles);
		return -EKEYREJECTED;
	}
	err = accept_msg(&m, blobcr_key_name(k), st->flags, st->eph_pub, st->sig, sname,
			 sid, granted, seph);
	for (i = 0; !err && i < n; i++)
		if (ed_verify(pubs[i], msg_bytes(&m), msg_len(&m), sig))
			break;
	if (!err && i == n) {
		blobcr_auth_set_detail("the server's signature does not match "
				       "key '%s' of %s", sname, keyfile_pubs_path(k));
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

	if (!(h->flags & BLOBCR_F_AUTH) && !BLOBCR_AUTH_ON) {
		*payload = buf + BLOBCR_HDR_SIZE; /* the benchmark's baseline */
		return 0;
	}
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
	if (!BLOBCR_AUTH_ON)
		log_warn("built with BLOBCR_BENCH_NO_AUTH: requests are NOT "
			 "authenticated (a benchmark's baseline only)");
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
		n = keyfile_pubs_of(a->own, cname, BLOBCR_ROLE_ANY, pubs, &role, &gen,
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
			 cname, blobcr_key_name(a->own));
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
	err = accept_msg(&am, cname, cflags, ceph, csig, blobcr_key_name(a->own),
				 sid, granted, seph);
	if (!err)
		err = keyfile_sign(a->own, msg_bytes(&am), msg_len(&am), sig);
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
	blobcr_enc_str(reply, blobcr_key_name(a->own));
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
	n = keyfile_pubs_of(a->own, s->name, s->role, pubs, &role, NULL, false);
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

	if (!(h->flags & BLOBCR_F_AUTH) && !BLOBCR_AUTH_ON) {
		/* The benchmark's baseline: anyone may do anything. */
		memset(who, 0, sizeof(*who));
		strcpy(who->name, "baseline");
		who->role = BLOBCR_ROLE_ANY;
		return 0;
	}
	if (!(h->flags & BLOBCR_F_AUTH)) {
		snprintf(why, whylen, "a request without a key: every request "
			 "needs one (BLOBCR_KEY, see Documentation/security.rst)");
		return -ENOKEY;
	}
	t = buf + BLOBCR_HDR_SIZE + h->payload_len;
	sid = be64(t);
	seq = be64(t + 8);
	gen = keyfile_generation(a->own);

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
