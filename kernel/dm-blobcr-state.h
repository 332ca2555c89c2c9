/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-blobcr: the state of one lazily fetched, committed device, and its
 * channel to the helper.  The target (dm-blobcr-target.c) sees only this
 * interface; the state outlives a table reload because the old and the new
 * table of a device share it, looked up by channel name.
 */
#ifndef DM_BLOBCR_STATE_H
#define DM_BLOBCR_STATE_H

#include <linux/bio.h>
#include <linux/bits.h>
#include <linux/types.h>

struct blobcr_state;

/**
 * struct blobcr_geometry - what a table line says about the state
 * @cache_dev: device number of the cache device
 * @dev_sectors: length of the device, in sectors
 * @extent_sectors: extent size, in sectors, a power of two
 * @owner: the mapped device; only its tables may share a state
 */
struct blobcr_geometry {
	const void *owner;
	dev_t cache_dev;
	sector_t dev_sectors;
	u32 extent_sectors;
};

struct blobcr_req;

/* Per-bio data the target reserves (ti->per_io_data_size). */
struct blobcr_bio {
	struct blobcr_req *overwrite;	/* a whole-extent write's record */
	unsigned int flags;
};

#define BLOBCR_BIO_COUNTED	BIT(0)	/* counted in blobcr_state.writes */

/* At most this many extents (the four bitmaps then take 1 GiB). */
#define BLOBCR_MAX_EXTENTS	BIT_ULL(31)

/*
 * Get the state named @name, creating it (and /dev/blobcr/@name) if no
 * table uses it yet.  An existing state must have the same geometry.
 * Changes nothing a live table sees.  Process context, may block.
 * Returns 0 or -errno with *@error set.
 */
int blobcr_state_get(const char *name, const struct blobcr_geometry *geo,
		     struct blobcr_state **st, char **error);

/*
 * Drop a table's reference.  The last one removes the character device,
 * fails every request and bio still queued, and detaches the helpers.
 * Process context, may block.
 */
void blobcr_state_put(struct blobcr_state *st);

/*
 * Mark every extent present but those a FETCH or a whole-extent write is
 * filling (they become present when it ends).  For a table being resumed
 * (.preresume).  Process context, may sleep; takes the state's lock per
 * BLOBCR_CHUNK extents.
 */
void blobcr_state_set_all_present(struct blobcr_state *st);

/*
 * 0 waits for a helper forever.  For a table being resumed or a message.
 * Process context, may sleep.
 */
void blobcr_state_set_timeout(struct blobcr_state *st, unsigned int ms);

/*
 * Map a bio already remapped to the cache device (sector relative to the
 * target; an empty flush has none).  Returns DM_MAPIO_REMAPPED (fast
 * path, possibly for a prefix of the bio: dm_accept_partial_bio()),
 * DM_MAPIO_SUBMITTED (parked for the worker), DM_MAPIO_REQUEUE or
 * DM_MAPIO_KILL.  Never sleeps, never allocates.
 */
int blobcr_state_map(struct blobcr_state *st, struct bio *bio);

/*
 * Bio completion bookkeeping, with the bio's status.  Any context,
 * including hard irq; never sleeps, takes no lock.
 */
void blobcr_state_end_io(struct blobcr_state *st, struct bio *bio,
			 blk_status_t status);

/*
 * @on (presuspend with noflush): hand every parked bio back to
 * device-mapper to be requeued (fetches go on), and until called again with
 * !@on (resume, presuspend_undo) requeue bios instead of parking them.
 * Process context, may sleep (it waits for the worker, which never
 * sleeps).
 */
void blobcr_state_requeue(struct blobcr_state *st, bool on);

/* Wait until the worker is idle.  Process context, may sleep. */
void blobcr_state_flush(struct blobcr_state *st);

/* Emit the STATUSTYPE_INFO fields.  Any context but hard irq. */
unsigned int blobcr_state_status(struct blobcr_state *st, char *result,
				 unsigned int maxlen);

/*
 * A "dmsetup message" for the state (argv[0] is the verb).  Returns 0, 1
 * if it wrote a result (as target_type.message), -EINVAL on bad arguments,
 * -EOPNOTSUPP if the verb is not the state's, or the error of the verb.
 * Process context, may sleep.  *@mode_changed tells the caller to raise
 * an event.
 */
int blobcr_state_message(struct blobcr_state *st, unsigned int argc,
			 char **argv, char *result, unsigned int maxlen,
			 bool *mode_changed);

/* The module's slab cache for requests.  Module init and exit only. */
int blobcr_state_module_init(void);
void blobcr_state_module_exit(void);

#endif /* DM_BLOBCR_STATE_H */
