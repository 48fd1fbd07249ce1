import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CodedError, ErrorCode } from '../errors.ts';
import type { ProposalKind } from './proposal.ts';

/**
 * Who may approve what, and how (the policy file in NIGHTSHIFT_POLICY, YAML or JSON, plus
 * NIGHTSHIFT_APPROVERS), pure: config/policy.ts reads the file. With no approvers configured nobody can approve anything: the safe
 * default for a bot that can run commands on production hosts.
 */

/** A Slack user id (U…, W… on Enterprise Grid) and a user group id (S…), as approvers are named. */
export const SLACK_USER_ID = /^[UW][A-Z0-9]{2,}$/;
export const SLACK_GROUP_ID = /^S[A-Z0-9]{2,}$/;
const SlackUser = z.string().regex(SLACK_USER_ID, 'a Slack user id (U…)');
const SlackGroup = z.string().regex(SLACK_GROUP_ID, 'a Slack user group id (S…)');

export const PolicySchema = z
  .object({
    approvers: z
      .object({
        users: z.array(SlackUser).default([]),
        /** Members of these user groups may approve (looked up with usergroups.users.list). */
        usergroups: z.array(SlackGroup).default([]),
      })
      .strict()
      .default({ users: [], usergroups: [] }),
    /** Distinct approvers a proposal needs. Default 1. */
    approvalsRequired: z.number().int().min(1).max(5).default(1),
    /** Whether the person who asked for a proposal may approve it. Default true. */
    selfApproval: z.boolean().default(true),
    /** Minutes an unapproved proposal stays open. Default 30. */
    expiresMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .default(30),
    /** Kinds that run without a human (only `pull` may be made automatic). Default none. */
    automatic: z.array(z.literal('pull')).default([]),
    /** Built-in collectors that need an approval before they run (by name). Default none. */
    collectorsNeedApproval: z.array(z.string().min(1)).default([]),
  })
  .strict();

export type Policy = z.output<typeof PolicySchema>;

export const DEFAULT_POLICY: Policy = PolicySchema.parse({});

/** `U123,S456`: users and groups in one list, as the environment variable carries them. */
export function parseApproverList(list: string | undefined): { users: string[]; usergroups: string[] } {
  const ids = (list ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const users: string[] = [];
  const usergroups: string[] = [];
  for (const id of ids) {
    if (SlackGroup.safeParse(id).success) usergroups.push(id);
    else if (SlackUser.safeParse(id).success) users.push(id);
    else
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        `NIGHTSHIFT_APPROVERS: "${id}" is neither a Slack user id (U…) nor a user group id (S…)`,
      );
  }
  return { users, usergroups };
}

export function parsePolicy(text: string, path: string): Policy {
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new CodedError(ErrorCode.ConfigInvalid, `${path} is not valid: ${(error as Error).message}`);
  }
  const result = PolicySchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
  throw new CodedError(ErrorCode.ConfigInvalid, `policy file ${path} is not valid:\n  ${lines.join('\n  ')}`);
}

export function isAutomatic(policy: Policy, kind: ProposalKind): boolean {
  return kind === 'pull' && policy.automatic.includes('pull');
}

/** Whether a user may approve, given the groups they are in (looked up by the caller). */
export function isApprover(policy: Policy, user: string, groupsOfUser: readonly string[]): boolean {
  return (
    policy.approvers.users.includes(user) || groupsOfUser.some((g) => policy.approvers.usergroups.includes(g))
  );
}
