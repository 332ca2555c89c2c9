// SPDX-License-Identifier: GPL-2.0
/*
 * leases.c - leases on deployed versions (metad.h).
 *
 * blobcrd takes a lease on the version its device shows and renews it
 * while it serves; a version with a live lease cannot be deleted, nor its
 * image, so gc keeps its chunks.  A lease ends when released, or when its
 * holder stops renewing it (dies): nothing needs cleaning up after a
 * crash.  Leases are kept in LMDB with a wall-clock expiry, so that a
 * restarted metad keeps honouring them.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "blobcr.h"
#include "blobcr_util.h"
#include "metad.h"

#define MAX_LEASE_MS (3600u * 1000) /* longest term of one renewal */

/* image id u64, version u32, holder bytes */
static size_t lease_key(uint8_t *k, uint64_t image, uint32_t ver,
			const char *holder)
{
	size_t n = strlen(holder);

	put_be64(k, image);
	put_be32(k + 8, ver);
	memcpy(k + 12, holder, n);
	return 12 + n;
}

static uint64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The first live lease on @image (at @ver, or any version if @any), its
 * holder in @holder and the ms left in *@left.  Expired leases met on
 * the way are deleted if @txn is a write transaction (@purge).
 * Return: 1 found, 0 none, -errno.
 */
static int lease_find(MDB_txn *txn, struct metad *m, uint64_t image,
		      uint32_t ver, bool any, bool purge,
		      char holder[BLOBCR_NAME_MAX], uint64_t *left)
{
	uint8_t kb[12];
	MDB_val k = { any ? 8 : 12, kb }, v;
	uint64_t now = now_wall_ms();
	MDB_cursor *cur;
	int rc, found = 0, err = db_err(mdb_cursor_open(txn, m->db.leases, &cur));

	if (err)
		return err;
	put_be64(kb, image);
	put_be32(kb + 8, ver);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && !found && !err && k.mv_size > 12 &&
	     !memcmp(k.mv_data, kb, any ? 8 : 12);
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t exp = v.mv_size == 8 ? get_be64(v.mv_data) : 0;
		size_t hl = k.mv_size - 12;

		if (exp > now) {
			found = 1;
			hl = hl < BLOBCR_NAME_MAX ? hl : BLOBCR_NAME_MAX - 1;
			memcpy(holder, (uint8_t *)k.mv_data + 12, hl);
			holder[hl] = 0;
			*left = exp - now;
		} else if (purge) {
			err = db_err(mdb_cursor_del(cur, 0));
		}
	}
	mdb_cursor_close(cur);
	return err ? err : found;
}

int lease_check(MDB_txn *txn, struct metad *m, const struct image *img,
		uint32_t ver)
{
	char holder[BLOBCR_NAME_MAX];
	uint64_t left = 0;
	int r = lease_find(txn, m, img->id, ver, ver == 0, true, holder, &left);

	if (r <= 0)
		return r;
	if (ver)
		log_warn("%s@%" PRIu32 " is deployed: %s holds a lease on it for "
			 "%" PRIu64 " s more", img->name, ver, holder, left / 1000);
	else
		log_warn("image %s is deployed: %s holds a lease on a version of "
			 "it for %" PRIu64 " s more", img->name, holder, left / 1000);
	return -EBUSY;
}

/*
 * LEASE: @holder takes, renews (ttl > 0) or releases (ttl 0) its lease on
 * image@version (0: the latest).
 */
int do_lease(struct metad *m, struct blobcr_dec *req)
{
	char holder[BLOBCR_NAME_MAX];
	uint8_t kb[12 + BLOBCR_NAME_MAX], vb[8];
	MDB_val k = { 0, kb }, v = { 8, vb };
	struct image img;
	uint32_t ver, ttl;
	MDB_txn *txn;
	int err = blobcr_dec_str(req, holder, sizeof(holder));

	if (err)
		return err;
	if (!blobcr_valid_name(holder, sizeof(holder)))
		return -EINVAL;
	err = begin_on_image(m, 0, req, &txn, &img);
	if (err)
		return err;
	ver = blobcr_dec_u32(req);
	ttl = blobcr_dec_u32(req);
	err = blobcr_dec_end(req);
	if (!err && ttl > MAX_LEASE_MS)
		err = -EINVAL;
	if (!err)
		err = resolve_version(txn, m, &img, &ver);
	k.mv_size = lease_key(kb, img.id, ver, holder);
	put_be64(vb, now_wall_ms() + ttl);
	if (!err && ttl)
		err = db_err(mdb_put(txn, m->db.leases, &k, &v, 0));
	else if (!err)
		err = db_err(mdb_del(txn, m->db.leases, &k, NULL));
	if (err == -ENOENT && !ttl)
		err = 0; /* released twice, or expired and purged */
	return txn_end(txn, err);
}
