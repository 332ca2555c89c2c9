/* SPDX-License-Identifier: GPL-2.0 */
/*
 * job.h - blobcrctl's job verbs: find a job's latest complete checkpoint
 * group, plan the restart of every VM of a group on given hosts, apply the
 * plan on one host.  Each returns blobcrctl's exit status and prints its
 * own errors.
 */
#ifndef BLOBCRCTL_JOB_H
#define BLOBCRCTL_JOB_H

struct blobcr_client;

int job_cmd_latest(struct blobcr_client *c, int argc, char **argv);
int job_cmd_plan(struct blobcr_client *c, int argc, char **argv);
int job_cmd_apply(struct blobcr_client *c, const char *meta,
		  int helper_wait_ms, int argc, char **argv);

#endif /* BLOBCRCTL_JOB_H */
