// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-blobcr: lazily fetched, incrementally committed virtual disks.
 *
 * The target splits the device into extents.  Bios on present extents are
 * remapped to the cache device in .map; bios on absent extents are parked
 * and a userspace helper fills the extents through the channel
 * /dev/blobcr/<channel_name>.  Writes are tracked per extent and a commit
 * hands the written extents to the helper.  See Documentation/dm-blobcr.rst.
 *
 * This file is the device-mapper glue: table parsing, status, messages,
 * suspend.  The state (bitmaps, requests, worker, commit) lives in
 * dm-blobcr-state.c behind dm-blobcr-state.h, and is shared by the old and
 * the new table across a reload.
 */

#include <linux/blkdev.h>
#include <linux/ctype.h>
#include <linux/device-mapper.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <uapi/linux/dm-blobcr.h>

#include "dm-blobcr-state.h"

#define DM_MSG_PREFIX "blobcr"

#define MIN_EXTENT_SECTORS	8		/* 4 KiB */
#define MAX_EXTENT_SECTORS	BIT(21)		/* 1 GiB */
#define DEFAULT_TIMEOUT_MS	60000
#define MAX_TIMEOUT_MS		(24U * 3600 * 1000)

struct blobcr_target {
	struct dm_target *ti;
	struct dm_dev *cache_dev;
	struct blobcr_state *st;
	u32 extent_sectors;
	char channel[BLOBCR_CHANNEL_MAX + 1];

	/* Feature arguments, as given, for STATUSTYPE_TABLE. */
	bool all_present;
	bool timeout_given;
	unsigned int timeout_ms;
};

/* ---- Constructor. ---- */

static int parse_cache_dev(struct blobcr_target *bt, struct dm_arg_set *as,
			   char **error)
{
	int r;

	r = dm_get_device(bt->ti, dm_shift_arg(as),
			  dm_table_get_mode(bt->ti->table), &bt->cache_dev);
	if (r) {
		*error = "Error opening cache device";
		return r;
	}
	/*
	 * Device-mapper lets a device of size 0 (an unbound loop device, say)
	 * through its own checks; every remapped bio would then fail.
	 */
	if (bdev_nr_sectors(bt->cache_dev->bdev) < bt->ti->len) {
		*error = "Cache device smaller than the target";
		dm_put_device(bt->ti, bt->cache_dev);
		return -EINVAL;
	}
	return 0;
}

static int parse_extent_sectors(struct blobcr_target *bt,
				struct dm_arg_set *as, char **error)
{
	unsigned int v;
	char dummy;

	if (sscanf(dm_shift_arg(as), "%u%c", &v, &dummy) != 1 ||
	    !is_power_of_2(v) || v < MIN_EXTENT_SECTORS ||
	    v > MAX_EXTENT_SECTORS) {
		*error = "Invalid extent size: expected a power of two, 8 to 2097152";
		return -EINVAL;
	}
	if (bt->ti->len < v) {
		*error = "Device smaller than one extent";
		return -EINVAL;
	}
	bt->extent_sectors = v;
	return 0;
}

static int parse_channel_name(struct blobcr_target *bt, struct dm_arg_set *as,
			      char **error)
{
	const char *name = dm_shift_arg(as);
	size_t i, len = strlen(name);

	if (!len || len > BLOBCR_CHANNEL_MAX || !strcmp(name, ".") ||
	    !strcmp(name, "..")) {
		*error = "Invalid channel name: 1 to 63 characters";
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		if (!isalnum(name[i]) && !strchr("_.-", name[i])) {
			*error = "Invalid channel name: only A-Z a-z 0-9 _ . -";
			return -EINVAL;
		}
	}
	strscpy(bt->channel, name, sizeof(bt->channel));
	return 0;
}

static int parse_features(struct blobcr_target *bt, struct dm_arg_set *as,
			  char **error)
{
	static const struct dm_arg _args[] = {
		{0, 3, "Invalid number of feature arguments"},
	};
	unsigned int argc, v;
	const char *arg;
	char dummy;
	int r;

	bt->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!as->argc)
		return 0;

	r = dm_read_arg_group(_args, as, &argc, error);
	if (r)
		return r;

	while (argc) {
		arg = dm_shift_arg(as);
		argc--;

		if (!strcasecmp(arg, "all_present")) {
			bt->all_present = true;
		} else if (!strcasecmp(arg, "helper_timeout_ms")) {
			if (!argc) {
				*error = "helper_timeout_ms needs a value";
				return -EINVAL;
			}
			arg = dm_shift_arg(as);
			argc--;
			if (sscanf(arg, "%u%c", &v, &dummy) != 1 ||
			    v > MAX_TIMEOUT_MS) {
				*error = "Invalid helper_timeout_ms: expected 0 to 86400000";
				return -EINVAL;
			}
			bt->timeout_given = true;
			bt->timeout_ms = v;
		} else {
			*error = "Unknown feature argument";
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * blobcr <cache_dev> <extent_sectors> <channel_name>
 *	  [<#feature args> [all_present] [helper_timeout_ms <ms>]]
 */
static int blobcr_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct blobcr_geometry geo;
	struct blobcr_target *bt;
	int r;

	if (argc < 3) {
		ti->error = "Expected <cache_dev> <extent_sectors> <channel_name>";
		return -EINVAL;
	}

	bt = kzalloc(sizeof(*bt), GFP_KERNEL);
	if (!bt) {
		ti->error = "Cannot allocate target context";
		return -ENOMEM;
	}
	bt->ti = ti;

	r = parse_cache_dev(bt, &as, &ti->error);
	if (r)
		goto out_free_bt;

	r = parse_extent_sectors(bt, &as, &ti->error);
	if (r)
		goto out_put_cache_dev;

	r = parse_channel_name(bt, &as, &ti->error);
	if (r)
		goto out_put_cache_dev;

	r = parse_features(bt, &as, &ti->error);
	if (r)
		goto out_put_cache_dev;

	if (as.argc) {
		ti->error = "Too many arguments";
		r = -EINVAL;
		goto out_put_cache_dev;
	}

	geo.owner = dm_table_get_md(ti->table);
	geo.cache_dev = bt->cache_dev->bdev->bd_dev;
	geo.dev_sectors = ti->len;
	geo.extent_sectors = bt->extent_sectors;
	/* Shares a live table's state: changes nothing until preresume. */
	r = blobcr_state_get(bt->channel, &geo, &bt->st, &ti->error);
	if (r)
		goto out_put_cache_dev;

	/*
	 * Flushes go to the cache device; the device has a write cache only
	 * if the cache device has one (no flush_supported).
	 */
	ti->num_flush_bios = 1;
	ti->per_io_data_size = sizeof(struct blobcr_bio);
	ti->private = bt;
	return 0;

out_put_cache_dev:
	dm_put_device(ti, bt->cache_dev);
out_free_bt:
	kfree(bt);
	return r;
}

static void blobcr_dtr(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	blobcr_state_put(bt->st);
	dm_put_device(ti, bt->cache_dev);
	kfree(bt);
}

/* ---- I/O. ---- */

static int blobcr_map(struct dm_target *ti, struct bio *bio)
{
	struct blobcr_target *bt = ti->private;
	struct blobcr_bio *pb = dm_per_bio_data(bio, sizeof(*pb));

	pb->overwrite = NULL;
	pb->flags = 0;
	bio_set_dev(bio, bt->cache_dev->bdev);
	if (bio_sectors(bio))
		bio->bi_iter.bi_sector = dm_target_offset(ti,
							  bio->bi_iter.bi_sector);
	return blobcr_state_map(bt->st, bio);
}

static int blobcr_end_io(struct dm_target *ti, struct bio *bio,
			 blk_status_t *error)
{
	struct blobcr_target *bt = ti->private;

	blobcr_state_end_io(bt->st, bio, *error);
	return DM_ENDIO_DONE;
}

static void blobcr_presuspend(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	/* A noflush suspend does not wait for fetches: dm requeues. */
	if (dm_noflush_suspending(ti))
		blobcr_state_requeue(bt->st, true);
}

static void blobcr_presuspend_undo(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	blobcr_state_requeue(bt->st, false);
}

/*
 * The table's settings reach the shared state only when the table goes
 * live: a reload that is never resumed changes nothing.
 */
static int blobcr_preresume(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	if (bt->all_present)
		blobcr_state_set_all_present(bt->st);
	blobcr_state_set_timeout(bt->st, bt->timeout_ms);
	return 0;
}

static void blobcr_resume(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	blobcr_state_requeue(bt->st, false);
}

static void blobcr_postsuspend(struct dm_target *ti)
{
	struct blobcr_target *bt = ti->private;

	blobcr_state_flush(bt->st);
}

/* ---- Status and messages. ---- */

/*
 * INFO: <present>/<extents> <dirty> <committing> <fetches> <commits>
 *	 <last_version> <helpers> <mode>
 * TABLE: the table line.
 */
static void blobcr_status(struct dm_target *ti, status_type_t type,
			  unsigned int status_flags, char *result,
			  unsigned int maxlen)
{
	struct blobcr_target *bt = ti->private;
	unsigned int sz = 0, nr;

	switch (type) {
	case STATUSTYPE_INFO:
		blobcr_state_status(bt->st, result, maxlen);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %u %s", bt->cache_dev->name, bt->extent_sectors,
		       bt->channel);
		nr = (bt->all_present ? 1 : 0) + (bt->timeout_given ? 2 : 0);
		if (nr)
			DMEMIT(" %u", nr);
		if (bt->all_present)
			DMEMIT(" all_present");
		if (bt->timeout_given)
			DMEMIT(" helper_timeout_ms %u", bt->timeout_ms);
		break;
	case STATUSTYPE_IMA:
		result[0] = '\0';
		break;
	}
}

static int blobcr_message(struct dm_target *ti, unsigned int argc,
			  char **argv, char *result, unsigned int maxlen)
{
	struct blobcr_target *bt = ti->private;
	bool mode_changed = false;
	int r;

	if (!argc)
		return -EINVAL;

	if (!strcasecmp(argv[0], "helper_timeout_ms")) {
		unsigned int v;
		char dummy;

		if (argc != 2 || sscanf(argv[1], "%u%c", &v, &dummy) != 1 ||
		    v > MAX_TIMEOUT_MS) {
			DMWARN("usage: helper_timeout_ms <0..86400000>");
			return -EINVAL;
		}
		bt->timeout_given = true;
		bt->timeout_ms = v;
		blobcr_state_set_timeout(bt->st, v);
		return 0;
	}

	r = blobcr_state_message(bt->st, argc, argv, result, maxlen,
				 &mode_changed);
	if (r == -EOPNOTSUPP) {
		DMWARN("unknown message: %s", argv[0]);
		return -EINVAL;
	}
	if (mode_changed)
		dm_table_event(ti->table);
	return r;
}

static int blobcr_iterate_devices(struct dm_target *ti,
				  iterate_devices_callout_fn fn, void *data)
{
	struct blobcr_target *bt = ti->private;

	return fn(ti, bt->cache_dev, 0, ti->len, data);
}

/*
 * A write that covers an absent extent whole needs no fetch, and a read
 * miss fetches its extent whole: the extent is the I/O size to aim for.
 * The block layer reads ahead twice io_opt, so a sequential reader of a
 * restarted disk keeps two extents' misses in flight, not one.  Like
 * dm-cache, keep the cache device's hints if they already fit.
 */
static void blobcr_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct blobcr_target *bt = ti->private;
	unsigned int extent_bytes = bt->extent_sectors << SECTOR_SHIFT;

	if (limits->io_opt < extent_bytes || limits->io_opt % extent_bytes) {
		limits->io_min = extent_bytes;
		limits->io_opt = extent_bytes;
	}
}

static struct target_type blobcr_target = {
	.name = "blobcr",
	.version = {1, 2, 0},
	.module = THIS_MODULE,
	.ctr = blobcr_ctr,
	.dtr = blobcr_dtr,
	.map = blobcr_map,
	.end_io = blobcr_end_io,
	.presuspend = blobcr_presuspend,
	.presuspend_undo = blobcr_presuspend_undo,
	.postsuspend = blobcr_postsuspend,
	.preresume = blobcr_preresume,
	.resume = blobcr_resume,
	.status = blobcr_status,
	.message = blobcr_message,
	.iterate_devices = blobcr_iterate_devices,
	.io_hints = blobcr_io_hints,
};

static int __init dm_blobcr_init(void)
{
	int r;

	r = blobcr_state_module_init();
	if (r)
		return r;
	r = dm_register_target(&blobcr_target);
	if (r)
		blobcr_state_module_exit();
	return r;
}

static void __exit dm_blobcr_exit(void)
{
	dm_unregister_target(&blobcr_target);
	blobcr_state_module_exit();
}

module_init(dm_blobcr_init);
module_exit(dm_blobcr_exit);

MODULE_DESCRIPTION(DM_NAME " target for lazily fetched, checkpointed disks");
MODULE_LICENSE("GPL");
