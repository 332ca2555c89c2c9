// SPDX-License-Identifier: GPL-2.0
/*
 * deployment.c - find what deploy set up for a device-mapper device: its
 * blobcr channel (from the table), its device number, the image its
 * commits go to (from the helper's saved arguments), and its label file.
 */
#include <errno.h>
#include <fcntl.h>
#include <libdevmapper.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blobcr_host.h"

/* Quiet libdevmapper: callers report failures in their own words. */
static void dm_quiet(int level, const char *file, int line, int dm_errno,
		     const char *f, ...)
{
	(void)level; (void)file; (void)line; (void)dm_errno; (void)f;
}

/* The blobcr table of device @name: "cache extent_sectors channel ...". */
static int dm_blobcr_params(const char *name, char *params, size_t len)
{
	struct dm_task *dmt;
	uint64_t start, length;
	char *type = NULL, *p = NULL;
	int err = -ENOENT;

	dm_log_with_errno_init(dm_quiet);
	dmt = dm_task_create(DM_DEVICE_TABLE);
	if (!dmt)
		return -ENODEV; /* no device-mapper on this host */
	if (dm_task_set_name(dmt, name) && dm_task_run(dmt)) {
		dm_get_next_target(dmt, NULL, &start, &length, &type, &p);
		if (type && !strcmp(type, "blobcr") && p) {
			snprintf(params, len, "%s", p);
			err = 0;
		} else {
			err = type ? -EMEDIUMTYPE : -ENOENT;
		}
	}
	dm_task_destroy(dmt);
	return err;
}

int host_open_channel(const char *dm_name, int *fd)
{
	char params[PATH_MAX + 128], cache[PATH_MAX];
	char channel[BLOBCR_CHANNEL_MAX + 1], path[PATH_MAX];
	unsigned int extent_sectors;
	int err = dm_blobcr_params(dm_name, params, sizeof(params));

	if (err)
		return err;
	if (sscanf(params, "%4095s %u %63s", cache, &extent_sectors, channel) != 3)
		return -EINVAL;
	snprintf(path, sizeof(path), BLOBCR_DEV_DIR "%s", channel);
	*fd = open(path, O_RDWR | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

int host_dm_devno(const char *dm_name, dev_t *dev)
{
	struct dm_task *dmt;
	struct dm_info info;
	bool ok;

	dm_log_with_errno_init(dm_quiet);
	dmt = dm_task_create(DM_DEVICE_INFO);
	ok = dmt && dm_task_set_name(dmt, dm_name) && dm_task_run(dmt) &&
	     dm_task_get_info(dmt, &info) && info.exists;
	if (ok)
		*dev = makedev(info.major, info.minor);
	if (dmt)
		dm_task_destroy(dmt);
	return ok ? 0 : -ENOENT;
}

int host_open_mount_on(const char *dm_name, const char *mnt, int *fd)
{
	struct stat st;
	dev_t dev;
	int err;

	*fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	err = fstat(*fd, &st) ? -errno : host_dm_devno(dm_name, &dev);
	if (!err && st.st_dev != dev)
		err = -EXDEV;
	if (err) {
		close(*fd);
		*fd = -1;
	}
	return err;
}

int host_set_label(const char *dm_name, const char *label)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(path, sizeof(path), BLOBCR_RUN_DIR "/%s.label", dm_name);
	if (!label)
		return unlink(path) && errno != ENOENT ? -errno : 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", label);
	if (fclose(f) || rename(tmp, path))
		return -errno;
	return 0;
}

int host_helper_arg(const char *dm_name, const char *opt, char *val, size_t len)
{
	char path[PATH_MAX], line[PATH_MAX];
	bool next = false;
	int err = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), BLOBCR_RUN_DIR "/%s.args", dm_name);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (next) {
			snprintf(val, len, "%s", line);
			err = 0;
			break;
		}
		next = !strcmp(line, opt);
	}
	fclose(f);
	return err;
}

int host_commit_image(const char *dm_name, char *image, size_t len)
{
	int err = host_helper_arg(dm_name, "--commit-to", image, len);

	if (!err)
		image[strcspn(image, "@")] = '\0';
	return err;
}
