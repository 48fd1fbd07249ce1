import { readFileSync } from 'node:fs';
import { DEFAULT_POLICY, type Policy, parseApproverList, parsePolicy } from '../approvals/policy.ts';
import { CodedError, ErrorCode } from '../errors.ts';

/** The policy file (if any) with the approvers from the environment added to its own. */
export function loadPolicy(path: string | undefined, approvers: string | undefined): Policy {
  let policy = DEFAULT_POLICY;
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        `cannot read the policy file ${path}: ${(error as Error).message}`,
      );
    }
    policy = parsePolicy(text, path);
  }
  const extra = parseApproverList(approvers);
  return {
    ...policy,
    approvers: {
      users: [...new Set([...policy.approvers.users, ...extra.users])],
      usergroups: [...new Set([...policy.approvers.usergroups, ...extra.usergroups])],
    },
  };
}
