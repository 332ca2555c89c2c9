// SPDX-License-Identifier: GPL-2.0
/*
 * conf.c - the programs' configuration files (blobcr.conf(5)): each line a
 * setting of one of the program's long options, turned into that option
 * and put before the command line, so that getopt_long() reads both and
 * the command line, coming last, wins.
 */
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobcr_conf.h"

/* userspace/Makefile passes make's SYSCONFDIR. */
#ifndef BLOBCR_SYSCONFDIR
#define BLOBCR_SYSCONFDIR "/etc"
#endif
const char blobcr_config_dir[] = BLOBCR_SYSCONFDIR "/blobcr";

/* The file the settings came from, and the line of each (argv 1..count). */
static struct {
	char *path;
	unsigned int *lines;
	int count;
	char where[PATH_MAX + 16];
} origin;

const char *blobcr_conf_origin(int i)
{
	if (i < 1 || i > origin.count)
		return NULL;
	snprintf(origin.where, sizeof(origin.where), "%s:%u", origin.path,
		 origin.lines[i - 1]);
	return origin.where;
}

void blobcr_conf_bad(const struct option *opts, int c, const char *why)
{
	const char *where = blobcr_conf_origin(optind - 1);
	const struct option *o = opts;

	while (o->name && o->val != c)
		o++;
	fprintf(stderr, "%s: %s%sbad value '%s' for %s%s%s%s\n",
		program_invocation_short_name, where ? where : "",
		where ? ": " : "", optarg ? optarg : "", o->name ? "--" : "-",
		o->name ? o->name : (const char *)&(char[2]){ (char)c, 0 },
		why ? ": " : "", why ? why : "");
}

/* The path --config names on the command line, or NULL. */
static const char *given_path(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--config=", 9))
			return argv[i] + 9;
	}
	return NULL;
}

static char *trim(char *s)
{
	char *e = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static const struct option *find_option(const struct option *opts,
					const char *key)
{
	if (!strcmp(key, "help") || !strcmp(key, "config"))
		return NULL;
	for (; opts->name; opts++)
		if (!strcmp(opts->name, key))
			return opts;
	return NULL;
}

/* A flag's value: 1 yes, 0 no, -1 neither. */
static int flag_value(const char *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

static bool env_set(const struct blobcr_conf_env *env, const char *option)
{
	for (; env && env->option; env++)
		if (!strcmp(env->option, option))
			return getenv(env->var) != NULL;
	return false;
}

struct settings {
	char **args;
	unsigned int *lines;
	int count;
};

static int add(struct settings *s, char *arg, unsigned int line)
{
	char **args = realloc(s->args, sizeof(*args) * (size_t)(s->count + 1));
	unsigned int *lines = args ? realloc(s->lines, sizeof(*lines) *
					     (size_t)(s->count + 1)) : NULL;

	if (args)
		s->args = args;
	if (lines)
		s->lines = lines;
	if (!arg || !args || !lines) {
		free(arg);
		return -ENOMEM;
	}
	s->args[s->count] = arg;
	s->lines[s->count++] = line;
	return 0;
}

/* Whether an earlier line already set @key: its line, else 0. */
static unsigned int set_before(const struct settings *s, const char *key)
{
	for (int i = 0; i < s->count; i++)
		if (!strcmp(s->args[i] + 2, key))
			return s->lines[i];
	return 0;
}

/*
 * One line: blank, a comment, or KEY = VALUE.  A setting left out (a flag
 * set to no, a variable of @env set) is still checked, and counts as set.
 */
static int parse_line(const char *path, unsigned int no, char *line,
		      const struct option *opts,
		      const struct blobcr_conf_env *env, struct settings *s,
		      struct settings *seen)
{
	const char *prog = program_invocation_short_name;
	char *eq = strchr(line, '='), *key, *val, *arg = NULL;
	const struct option *o;
	unsigned int before;
	int flag = 1;

	line = trim(line);
	if (!*line || *line == '#')
		return 0;
	if (!eq) {
		fprintf(stderr, "%s: %s:%u: expected 'option = value', got '%s'\n",
			prog, path, no, line);
		return -EINVAL;
	}
	*eq = 0;
	key = trim(line);
	val = trim(eq + 1);
	o = find_option(opts, key);
	if (!o) {
		fprintf(stderr, "%s: %s:%u: unknown option '%s' (%s has no --%s)\n",
			prog, path, no, key, prog, key);
		return -EINVAL;
	}
	before = set_before(seen, key);
	if (before) {
		fprintf(stderr, "%s: %s:%u: '%s' is already set on line %u\n",
			prog, path, no, key, before);
		return -EINVAL;
	}
	if (o->has_arg == no_argument && (flag = flag_value(val)) < 0) {
		fprintf(stderr, "%s: %s:%u: '%s' is yes or no, not '%s'\n",
			prog, path, no, key, val);
		return -EINVAL;
	}
	if (o->has_arg != no_argument && !*val) {
		fprintf(stderr, "%s: %s:%u: '%s' needs a value\n", prog, path,
			no, key);
		return -EINVAL;
	}
	if (asprintf(&arg, "--%s", key) < 0 || add(seen, arg, no))
		return -ENOMEM;
	if (!flag || env_set(env, key))
		return 0;
	if (o->has_arg == no_argument ? asprintf(&arg, "--%s", key) < 0 :
	    asprintf(&arg, "--%s=%s", key, val) < 0)
		return -ENOMEM;
	return add(s, arg, no);
}

static void settings_free(struct settings *s)
{
	for (int i = 0; i < s->count; i++)
		free(s->args[i]);
	free(s->args);
	free(s->lines);
}

static int read_file(const char *path, FILE *f, const struct option *opts,
		     const struct blobcr_conf_env *env, struct settings *s)
{
	struct settings seen = { 0 };
	unsigned int no = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int err = 0;

	while (!err && (n = getline(&line, &cap, f)) >= 0) {
		no++;
		if (memchr(line, 0, (size_t)n)) {
			fprintf(stderr, "%s: %s:%u: a NUL byte: not a text file\n",
				program_invocation_short_name, path, no);
			err = -EINVAL;
		} else {
			err = parse_line(path, no, line, opts, env, s, &seen);
		}
	}
	if (!err && ferror(f))
		err = -EIO;
	free(line);
	settings_free(&seen);
	return err;
}

int blobcr_conf_args(const char *name, const struct option *opts,
		     const struct blobcr_conf_env *env, int *argc, char ***argv)
{
	const char *given = given_path(*argc, *argv), *dir;
	struct settings s = { 0 };
	char *path = NULL, **nargv;
	FILE *f;
	int err;

	dir = getenv("BLOBCR_CONFIG_DIR");
	if (given)
		path = strdup(given);
	else if (asprintf(&path, "%s/%s.conf", dir && *dir ? dir :
			  blobcr_config_dir, name) < 0)
		path = NULL;
	if (!path)
		return -ENOMEM;
	f = fopen(path, "re");
	if (!f && errno == ENOENT && !given) {
		free(path);
		return 0;
	}
	if (!f) {
		err = -errno;
		fprintf(stderr, "%s: cannot read %s: %s\n",
			program_invocation_short_name, path, strerror(-err));
		free(path);
		return err;
	}
	err = read_file(path, f, opts, env, &s);
	fclose(f);
	nargv = err ? NULL : malloc(sizeof(*nargv) * (size_t)(*argc + s.count + 1));
	if (!err && !nargv)
		err = -ENOMEM;
	if (err) {
		if (err == -EIO || err == -ENOMEM)
			fprintf(stderr, "%s: cannot read %s: %s\n",
				program_invocation_short_name, path, strerror(-err));
		settings_free(&s);
		free(path);
		return err;
	}
	/* argv[0], the file's settings, then the command line. */
	nargv[0] = (*argv)[0];
	memcpy(nargv + 1, s.args, sizeof(*nargv) * (size_t)s.count);
	memcpy(nargv + 1 + s.count, *argv + 1, sizeof(*nargv) * (size_t)*argc);
	*argc += s.count;
	*argv = nargv;
	free(s.args);
	origin.path = path;
	origin.lines = s.lines;
	origin.count = s.count;
	return 0;
}
