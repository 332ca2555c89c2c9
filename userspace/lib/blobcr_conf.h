/* SPDX-License-Identifier: GPL-2.0 */
/*
 * blobcr_conf.h - the configuration files of /etc/blobcr (blobcr.conf(5)):
 * one per program, "OPTION = VALUE" lines naming the program's own long
 * options.  Their settings go before the command line, whose options
 * therefore override them.  Not part of the client API (blobcr.h).
 */
#ifndef BLOBCR_CONF_H
#define BLOBCR_CONF_H

#include <getopt.h>

/*
 * The directory of the files and of the keys, unless $BLOBCR_CONFIG_DIR
 * (files) or --dir/--key (keys) name another: SYSCONFDIR/blobcr, SYSCONFDIR
 * as make was given it (as for make install; default /etc).
 */
extern const char blobcr_config_dir[];

/* An option whose environment variable, when set, beats the file. */
struct blobcr_conf_env {
	const char *option;
	const char *var;
};

/**
 * blobcr_conf_args() - read program @name's configuration file and put its
 * settings, as "--OPTION=VALUE" (or "--OPTION" for a flag set to yes), between
 * (*@argv)[0] and the command line.  The file is the one --config FILE names
 * (it must exist), else DIR/@name.conf, DIR being $BLOBCR_CONFIG_DIR or
 * blobcr_config_dir (if absent: no settings).  Every key must be one of
 * @opts' long options but help and config; a setting of an option in @env
 * (NULL-terminated, may be NULL) whose variable is set is left out.
 * Errors are printed to stderr as "PROG: FILE:LINE: what", PROG being
 * program_invocation_short_name.
 * Return: 0; -EINVAL for a malformed file, -errno if it cannot be read.
 */
int blobcr_conf_args(const char *name, const struct option *opts,
		     const struct blobcr_conf_env *env, int *argc, char ***argv);

/**
 * blobcr_conf_origin() - where argument @i of the argv blobcr_conf_args()
 * made comes from: "FILE:LINE" for a setting of the file, NULL for the
 * command line.
 */
const char *blobcr_conf_origin(int i);

/**
 * blobcr_conf_bad() - print "PROG: [FILE:LINE: ]bad value 'VALUE' for
 * --OPTION[: @why]" for the option getopt_long() just returned as @c from
 * @opts (optind and optarg as it left them); @why may be NULL.
 */
void blobcr_conf_bad(const struct option *opts, int c, const char *why);

#endif
