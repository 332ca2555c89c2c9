/* SPDX-License-Identifier: GPL-2.0 */
/*
 * deploy.h - blobcrctl's host-side verbs: deploy an image as a dm-blobcr
 * device, commit it, show its state, take it down.  Each returns
 * blobcrctl's exit status and prints its own errors.
 */
#ifndef BLOBCRCTL_DEPLOY_H
#define BLOBCRCTL_DEPLOY_H

struct blobcr_client;

/* blobcrctl's exit statuses, shared by every verb. */
enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_NOTFOUND = 3, EXIT_CONFLICT = 4,
       EXIT_UNAVAIL = 5, EXIT_DENIED = 6 };

/* Print "blobcrctl: " and the message on stderr; return @status. */
int say(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A deployment's blobcrd runs under systemd (blobcrd@DMNAME.service) when
 * systemd is PID 1 and the unit is installed, else in a session of its own;
 * deploy and reattach wait up to @helper_wait_ms for it to attach, undeploy
 * for it to stop.
 */
int deploy_cmd_deploy(struct blobcr_client *c, const char *meta,
		      int helper_wait_ms, int argc, char **argv);
int deploy_cmd_commit(int argc, char **argv);
int deploy_cmd_undeploy(int helper_wait_ms, int argc, char **argv);
int deploy_cmd_reattach(int helper_wait_ms, int argc, char **argv);
int deploy_cmd_status(int argc, char **argv);

#endif /* BLOBCRCTL_DEPLOY_H */
