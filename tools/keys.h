/* SPDX-License-Identifier: GPL-2.0 */
/*
 * keys.h - blobcrctl's key verbs: create, rotate, retire and list the keys
 * of a repository (Documentation/security.rst).  Each returns blobcrctl's
 * exit status and prints its own errors.  @key_file is blobcrctl's --key
 * (or $BLOBCR_KEY): its directory is the default key directory.
 */
#ifndef BLOBCRCTL_KEYS_H
#define BLOBCRCTL_KEYS_H

int keys_cmd_create(const char *key_file, int argc, char **argv);
int keys_cmd_rotate(const char *key_file, int argc, char **argv);
int keys_cmd_retire(const char *key_file, int argc, char **argv);
int keys_cmd_list(const char *key_file, int argc, char **argv);

#endif /* BLOBCRCTL_KEYS_H */
