/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_auth.h - who may talk to the repository's services, and the proof
 * of it on every frame (Documentation/security.rst).
 *
 * Every entity (metad, each storage node, each host, each operator) has an
 * Ed25519 key of its own and a role.  A private key lives in a file only
 * its owner can read; the public keys of the whole repository, each with
 * its name and role, are one file, keys.pub, next to it.  Servers admit
 * the keys keys.pub lists and check every request's opcode against the
 * sender's role; clients accept only a server that proves a key of the
 * role they expect (metad, node).
 *
 * A client opens a session with each server it talks to: one AUTH round
 * trip, both sides signing their X25519 ephemeral key, gives both a 256-bit
 * session key.  Every later frame of the session, both ways, carries a
 * 32-byte trailer (session id, sequence number, AES-256-GCM tag) covering
 * the header and the payload; with BLOBCR_SESS_ENCRYPT the payload is also
 * encrypted.  A server accepts each sequence number of a session once (a
 * window of 1024 tolerates reordering across sockets), so a replayed frame
 * is refused.  Sessions live in the server's memory only: after a restart
 * a client's frame is answered -EKEYEXPIRED and it opens a new session.
 *
 * Key files (one line each):
 *   NAME.key   "blobcr-key-v1 NAME ROLE <64 hex: Ed25519 seed>", mode 0600
 *   keys.pub   "NAME ROLE <64 hex: Ed25519 public key>" per key, a name may
 *              have several (a rotation in progress); '#' starts a comment
 */
#ifndef BLOBCR_AUTH_H
#define BLOBCR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blobcr_wire.h"

/* Roles, as bits so that a rule can name several. */
enum blobcr_role {
	BLOBCR_ROLE_NODE = 1 << 0, /* a storage node: heartbeats, copies */
	BLOBCR_ROLE_HOST = 1 << 1, /* a compute host: reads, commits */
	BLOBCR_ROLE_ADMIN = 1 << 2, /* an operator: deletes, gc, nodes */
	BLOBCR_ROLE_METAD = 1 << 3, /* the version manager: gc on nodes */
};
#define BLOBCR_ROLE_ANY 0xfu

#define BLOBCR_KEYNAME_MAX 64 /* 1 to 63 of A-Z a-z 0-9 . _ - : + */
#define BLOBCR_SESSION_KEY 32

/*
 * bench/repo/auth.sh builds the tree a second time with
 * -DBLOBCR_BENCH_NO_AUTH, as the baseline that authentication's cost is
 * measured against: sessions are opened, but frames go unsealed and
 * servers take every request from anyone.  Never anything else.
 */
#ifdef BLOBCR_BENCH_NO_AUTH
#define BLOBCR_AUTH_ON 0
#else
#define BLOBCR_AUTH_ON 1
#endif

/* Session flags, asked for by the client, granted by the server. */
#define BLOBCR_SESS_ENCRYPT 0x01 /* payloads are encrypted too */

/** blobcr_role_name() - "node", "host", "admin", "metad", or "?" */
const char *blobcr_role_name(unsigned int role);
/** blobcr_role_parse() - Return: the role bit named @s, or -EINVAL. */
int blobcr_role_parse(const char *s);
/** blobcr_roles_str() - the roles in @roles as "host,admin" into @out. */
void blobcr_roles_str(unsigned int roles, char *out, size_t len);
/** blobcr_keyname_valid() - 1 to 63 of A-Z a-z 0-9 . _ - : + (as image names) */
bool blobcr_keyname_valid(const char *s);

/*
 * An entity's identity: its private key, and the public keys of the
 * repository (keys.pub in the key file's directory).  Both files are read
 * again when they change, so that keys are added, rotated and revoked
 * without a restart.  Thread-safe.
 */
struct blobcr_key;

/**
 * blobcr_key_load() - load the private key file @path (NULL: $BLOBCR_KEY)
 * and the keys.pub beside it.  A key file that others can read, or a
 * keys.pub others can write, is refused.
 * Return: 0 and *@out; -ENOKEY (no key given), -EKEYREJECTED (a bad or
 * unsafe file), -errno; the reason in blobcr_auth_detail().
 */
int blobcr_key_load(const char *path, struct blobcr_key **out);
void blobcr_key_free(struct blobcr_key *k);
/** blobcr_key_name() - the key's name (stable for the key's lifetime). */
const char *blobcr_key_name(const struct blobcr_key *k);
/** blobcr_key_role() - the key's role bit. */
unsigned int blobcr_key_role(const struct blobcr_key *k);
/** blobcr_key_path() - the private key file's path. */
const char *blobcr_key_path(const struct blobcr_key *k);

/**
 * blobcr_key_mac() - HMAC-SHA256 of @len bytes under a secret derived from
 * this entity's private key and @purpose: a proof only this key's holder
 * can make (blobcrd marks its versions' labels with it).
 */
int blobcr_key_mac(struct blobcr_key *k, const char *purpose, const void *data,
		   size_t len, uint8_t out[32]);

/* ---- key files (blobcrctl key ...) ---- */

/**
 * blobcr_keyfile_create() - a new key @name of @role in directory @dir:
 * DIR/NAME.key written (0600) and its public key added to DIR/keys.pub.
 * With @rotate, NAME must exist: its key file is replaced and the new
 * public key added beside the old one.  Return: 0, -EEXIST, -ENOENT, -errno.
 */
int blobcr_keyfile_create(const char *dir, const char *name, unsigned int role,
			  bool rotate);
/**
 * blobcr_keyfile_retire() - drop from DIR/keys.pub the public keys of @name
 * other than the one of DIR/NAME.key (after a rotation), or every key of
 * @name with @all.  Return: how many were dropped, or -errno.
 */
int blobcr_keyfile_retire(const char *dir, const char *name, bool all);

/* One line of keys.pub. */
struct blobcr_pubkey {
	char name[BLOBCR_KEYNAME_MAX];
	unsigned int role;
	uint8_t pub[32];
};

/** blobcr_keyfile_list() - the entries of DIR/keys.pub; free() *@out. */
int blobcr_keyfile_list(const char *dir, struct blobcr_pubkey **out, size_t *n);

/* ---- the client side ---- */

/* A client's session with one server. */
struct blobcr_session {
	uint64_t sid; /* 0: none */
	uint64_t seq; /* last sequence number sent */
	uint8_t flags; /* BLOBCR_SESS_*, as granted */
	uint8_t key[BLOBCR_SESSION_KEY];
};

/* A handshake in progress: the client's ephemeral key. */
struct blobcr_hello {
	uint8_t flags;
	uint8_t eph_priv[32], eph_pub[32];
	uint8_t sig[64];
};

/**
 * blobcr_hello_begin() - the AUTH request's payload, into @e (already
 * initialised): this key's name, @flags, an ephemeral public key, signed.
 */
int blobcr_hello_begin(struct blobcr_key *k, uint8_t flags,
		       struct blobcr_hello *st, struct blobcr_enc *e);
/**
 * blobcr_hello_finish() - check the AUTH reply @d (the server's key must be
 * in keys.pub with a role in @want_roles and have signed it) and derive the
 * session.  Return: 0 and *@out; -EKEYREJECTED (reason in
 * blobcr_auth_detail()), -EBADMSG.
 */
int blobcr_hello_finish(struct blobcr_key *k, const struct blobcr_hello *st,
			unsigned int want_roles, struct blobcr_dec *d,
			struct blobcr_session *out);

/**
 * blobcr_seal_request() - finish the request frame in @e for header @h
 * (opcode, request id) as the next frame of session @s: flags, trailer,
 * tag, encryption.  *@seq gets its sequence number, for the reply.
 * Return: 0, -ENOMEM, -EMSGSIZE.
 */
int blobcr_seal_request(struct blobcr_session *s, struct blobcr_enc *e,
			const struct blobcr_hdr *h, uint64_t *seq);
/**
 * blobcr_unseal() - undo blobcr_seal_request() on @e (decrypt, drop the
 * trailer) so that it can be sealed again, for another session.
 */
void blobcr_unseal(const struct blobcr_session *s, struct blobcr_enc *e);
/**
 * blobcr_open_reply() - check (and decrypt, in place) the reply @buf to the
 * request of sequence @seq.  Return: 0 and the payload in @d, the header
 * in @h; -EBADMSG for a frame that is not this session's reply.
 */
int blobcr_open_reply(const struct blobcr_session *s, uint64_t seq,
		      uint8_t *buf, size_t len, struct blobcr_hdr *h,
		      const uint8_t **payload);

/* ---- the server side ---- */

/* Who sent a request, as the server verified it; the reply is sealed so. */
struct blobcr_principal {
	char name[BLOBCR_KEYNAME_MAX];
	unsigned int role;
	uint64_t sid, seq;
	uint8_t flags;
	uint8_t key[BLOBCR_SESSION_KEY];
};

struct blobcr_authsrv;

/**
 * blobcr_authsrv_new() - a server's sessions, signed with @own (not owned;
 * it must outlive the server).  @required: session flags every session
 * gets (BLOBCR_SESS_ENCRYPT to encrypt every session).  Return: 0, -ENOMEM.
 */
int blobcr_authsrv_new(struct blobcr_key *own, uint8_t required,
		       struct blobcr_authsrv **out);
void blobcr_authsrv_free(struct blobcr_authsrv *a);

/**
 * blobcr_authsrv_hello() - answer an AUTH request @req into @reply.
 * Return: 0; -EKEYREJECTED (unknown key, bad signature), -EBADMSG, with
 * the reason for the client in @why.
 */
int blobcr_authsrv_hello(struct blobcr_authsrv *a, struct blobcr_dec *req,
			 struct blobcr_enc *reply, char *why, size_t whylen);

/**
 * blobcr_authsrv_open() - verify (and decrypt, in place) the request frame
 * @buf, decoded into @h, and find out who sent it.
 * Return: 0 and *@who; -ENOKEY (not authenticated), -EKEYEXPIRED (unknown
 * session: authenticate again), -EKEYREJECTED (bad tag, replay), with the
 * reason for the client in @why.
 */
int blobcr_authsrv_open(struct blobcr_authsrv *a, uint8_t *buf, size_t len,
			const struct blobcr_hdr *h, struct blobcr_principal *who,
			char *why, size_t whylen);

/**
 * blobcr_seal_reply() - finish the reply frame in @e for header @h as the
 * answer to @who's request.  Return: 0, -ENOMEM, -EMSGSIZE.
 */
int blobcr_seal_reply(const struct blobcr_principal *who, struct blobcr_enc *e,
		      const struct blobcr_hdr *h);

/* ---- errors ---- */

/**
 * blobcr_auth_detail() - why the last authentication or permission error
 * of this thread happened ("key 'h1' (role host) may not send GC"), as the
 * server or the local key loading said; "" if none.
 */
const char *blobcr_auth_detail(void);
/** blobcr_auth_set_detail() - record such a reason (printf-like). */
void blobcr_auth_set_detail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/** blobcr_auth_error() - whether @err is an authentication/permission error. */
bool blobcr_auth_error(int err);

#endif /* BLOBCR_AUTH_H */
