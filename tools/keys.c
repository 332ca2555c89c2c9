// SPDX-License-Identifier: GPL-2.0
/*
 * keys.c - blobcrctl key create|rotate|retire|list (keys.h).
 *
 * A key directory holds the private keys made there (NAME.key, 0600) and
 * keys.pub, the public keys every server and client of the repository
 * reads.  Servers notice a changed keys.pub within a second: keys are
 * added, rotated and revoked without a restart.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_auth.h"
#include "blobcr_conf.h"
#include "deploy.h"
#include "keys.h"

/* --dir DIR, or the directory of our key, or blobcr_config_dir. */
static const char *key_dir(const char *opt, const char *key_file, char *buf,
			   size_t len)
{
	const char *slash;

	if (opt)
		return opt;
	if (!key_file || !(slash = strrchr(key_file, '/')))
		return key_file ? "." : blobcr_config_dir;
	snprintf(buf, len, "%.*s", (int)(slash - key_file), key_file);
	return buf[0] ? buf : "/";
}

/* Options shared by the verbs: --dir DIR, and --all for retire. */
static int parse_opts(int argc, char **argv, const char **dir, int *all)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "all", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+d:a", opts, NULL)) != -1) {
		if (c == 'd')
			*dir = optarg;
		else if (c == 'a' && all)
			*all = 1;
		else
			return -EINVAL;
	}
	return 0;
}

static int key_error(int err, const char *what, const char *name,
		     const char *dir)
{
	switch (err) {
	case -EEXIST:
		fprintf(stderr, "blobcrctl: key %s exists in %s (rotate it, or "
			"retire --all it first)\n", name, dir);
		return EXIT_CONFLICT;
	case -ENOENT:
		fprintf(stderr, "blobcrctl: no key %s in %s\n", name, dir);
		return EXIT_NOTFOUND;
	case -EINVAL:
		fprintf(stderr, "blobcrctl: %s: a key name is 1 to 63 of "
			"A-Z a-z 0-9 . _ - : +, and %s/keys.pub must be valid\n",
			what, dir);
		return EXIT_USAGE;
	default:
		fprintf(stderr, "blobcrctl: %s of key %s in %s: %s\n", what, name,
			dir, strerror(-err));
		return EXIT_FAIL;
	}
}

int keys_cmd_create(const char *key_file, int argc, char **argv)
{
	const char *dir = NULL;
	char buf[PATH_MAX];
	int role, err;

	if (parse_opts(argc, argv, &dir, NULL) || argc - optind != 2) {
		fprintf(stderr, "blobcrctl: key create [--dir DIR] NAME ROLE\n");
		return EXIT_USAGE;
	}
	role = blobcr_role_parse(argv[optind + 1]);
	if (role < 0) {
		fprintf(stderr, "blobcrctl: '%s' is not a role: node, host, admin "
			"or metad\n", argv[optind + 1]);
		return EXIT_USAGE;
	}
	dir = key_dir(dir, key_file, buf, sizeof(buf));
	err = blobcr_keyfile_create(dir, argv[optind], (unsigned int)role, false);
	if (err)
		return key_error(err, "creation", argv[optind], dir);
	printf("%s/%s.key\n", dir, argv[optind]);
	return 0;
}

int keys_cmd_rotate(const char *key_file, int argc, char **argv)
{
	const char *dir = NULL;
	char buf[PATH_MAX];
	int err;

	if (parse_opts(argc, argv, &dir, NULL) || argc - optind != 1) {
		fprintf(stderr, "blobcrctl: key rotate [--dir DIR] NAME\n");
		return EXIT_USAGE;
	}
	dir = key_dir(dir, key_file, buf, sizeof(buf));
	err = blobcr_keyfile_create(dir, argv[optind], 0, true);
	if (err)
		return key_error(err, "rotation", argv[optind], dir);
	printf("%s/%s.key\n", dir, argv[optind]);
	return 0;
}

int keys_cmd_retire(const char *key_file, int argc, char **argv)
{
	const char *dir = NULL;
	char buf[PATH_MAX];
	int all = 0, n;

	if (parse_opts(argc, argv, &dir, &all) || argc - optind != 1) {
		fprintf(stderr, "blobcrctl: key retire [--dir DIR] [--all] NAME\n");
		return EXIT_USAGE;
	}
	dir = key_dir(dir, key_file, buf, sizeof(buf));
	n = blobcr_keyfile_retire(dir, argv[optind], all);
	if (n < 0)
		return key_error(n, "retirement", argv[optind], dir);
	printf("retired=%d\n", n);
	return 0;
}

int keys_cmd_list(const char *key_file, int argc, char **argv)
{
	struct blobcr_pubkey *v;
	const char *dir = NULL;
	char buf[PATH_MAX];
	size_t n;
	int err;

	if (parse_opts(argc, argv, &dir, NULL) || argc != optind) {
		fprintf(stderr, "blobcrctl: key list [--dir DIR]\n");
		return EXIT_USAGE;
	}
	dir = key_dir(dir, key_file, buf, sizeof(buf));
	err = blobcr_keyfile_list(dir, &v, &n);
	if (err)
		return key_error(err, "listing", "*", dir);
	printf("%-24s %-6s %s\n", "NAME", "ROLE", "PUBLIC KEY (first 16 hex)");
	for (size_t i = 0; i < n; i++) {
		printf("%-24s %-6s ", v[i].name, blobcr_role_name(v[i].role));
		for (int k = 0; k < 8; k++)
			printf("%02x", v[i].pub[k]);
		putchar('\n');
	}
	free(v);
	return 0;
}
