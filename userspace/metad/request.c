// SPDX-License-Identifier: GPL-2.0
/*
 * request.c - what blobcr-metad's request handlers share: transactions,
 * the image a request names, list replies (metad.h).
 */
#include <errno.h>
#include <string.h>

#include "blobcr_util.h"
#include "metad.h"

int txn_begin(struct metad *m, unsigned int flags, MDB_txn **txn)
{
	return db_txn_begin(&m->db, flags, txn);
}

/* Commit @txn if @err is 0, else abort it.  Return: the outcome. */
int txn_end(MDB_txn *txn, int err)
{
	return db_txn_end(txn, err);
}

uint64_t image_extents(const struct image *img)
{
	return (img->size + img->extent_size - 1) / img->extent_size;
}

/* Resolve version 0 to the latest and check that it exists. */
int resolve_version(MDB_txn *txn, struct metad *m,
		    const struct image *img, uint32_t *ver)
{
	struct version v;

	if (*ver == 0)
		*ver = img->latest;
	if (*ver == 0)
		return 0; /* the empty version every image starts with */
	return db_version_get(txn, &m->db, img->id, *ver, &v);
}

/* Read the image the request names; on failure @img holds just that name. */
int read_image(MDB_txn *txn, struct metad *m, struct blobcr_dec *req,
	       struct image *img)
{
	char name[BLOBCR_NAME_MAX] = "";
	int err = blobcr_dec_str(req, name, sizeof(name));

	if (!err)
		err = db_image_get(txn, &m->db, name, img);
	if (err) {
		memset(img, 0, sizeof(*img));
		memcpy(img->name, name, sizeof(name));
	}
	return err;
}

/*
 * Many requests start with an image's name: begin a transaction and read
 * that image.  On failure no transaction is left open.
 */
int begin_on_image(struct metad *m, unsigned int flags,
		   struct blobcr_dec *req, MDB_txn **txn,
		   struct image *img)
{
	int err = txn_begin(m, flags, txn);

	if (err)
		return err;
	err = read_image(*txn, m, req, img);
	if (err)
		db_txn_abort(*txn);
	return err;
}

/* ---- list replies ---- */

/*
 * A list reply leads with its count, known only once every record is
 * encoded: reserve it, then fill it in.
 */
size_t enc_count_slot(struct blobcr_enc *reply)
{
	size_t off = reply->len; /* the buffer may move: remember an offset */

	blobcr_enc_u32(reply, 0);
	return off;
}

void enc_count_fill(struct blobcr_enc *reply, size_t off, uint32_t n)
{
	if (!reply->err)
		put_be32(reply->buf + off, n);
}

/* Encodes one record of a table: 1 if it did, 0 to pass it over, or -errno. */
typedef int (*enc_record_fn)(MDB_txn *txn, struct metad *m, const MDB_val *k,
			     const MDB_val *v, struct blobcr_enc *reply);

bool page_full(struct metad *m, struct blobcr_enc *reply, size_t before,
	       uint32_t n)
{
	if (n == 0 || reply->len <= m->list_page_bytes)
		return false;
	reply->len = before; /* the next page brings it */
	return true;
}

/*
 * A page of table @dbi (keys are names): the request names the key after
 * which it starts ("" for the first page); the reply is a count, the
 * records, and whether more follow.
 */
int reply_table(struct metad *m, struct blobcr_dec *req, MDB_dbi dbi,
		enc_record_fn enc_record, struct blobcr_enc *reply)
{
	char after[BLOBCR_ROOT_MAX];
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k = { 0, after }, v;
	uint32_t n = 0;
	size_t count_off;
	bool more = false;
	int rc, err = blobcr_dec_str(req, after, sizeof(after));

	if (!err)
		err = blobcr_dec_end(req);
	if (err || (err = txn_begin(m, MDB_RDONLY, &txn)))
		return err;
	err = db_err(mdb_cursor_open(txn, dbi, &cur));
	count_off = enc_count_slot(reply);
	k.mv_size = strlen(after);
	rc = err ? MDB_NOTFOUND : k.mv_size ?
	     mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
	     mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (!rc && k.mv_size == strlen(after) &&
	    !memcmp(k.mv_data, after, k.mv_size) && k.mv_size)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; !rc && !err && !more; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t before = reply->len;
		int r = enc_record(txn, m, &k, &v, reply);

		if (r < 0)
			err = r;
		else if (!(more = page_full(m, reply, before, n)))
			n += r;
	}
	if (cur)
		mdb_cursor_close(cur);
	db_txn_abort(txn);
	blobcr_enc_u8(reply, more);
	if (!err)
		enc_count_fill(reply, count_off, n);
	return err ? err : reply->err;
}
