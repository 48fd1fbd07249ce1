import { DEFAULT_POLICY, type Policy, parseApproverList, parsePolicy } from '../approvals/policy.ts';
import { COLLECTOR_NAMES } from '../collect/collect-host.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import { readConfigFile } from './read-file.ts';

/** The policy file (if any) with the approvers from the environment added to its own. */
export function loadPolicy(path: string | undefined, approvers: string | undefined): Policy {
  let policy = DEFAULT_POLICY;
  if (path) {
    const text = readConfigFile(path, 'policy file');
    policy = parsePolicy(text, path);
    const unknown = policy.collectorsNeedApproval.filter(
      (name) => !(COLLECTOR_NAMES as readonly string[]).includes(name),
    );
    if (unknown.length > 0)
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        `policy file ${path}: collectorsNeedApproval names no built-in collector: ${unknown.map((n) => `"${n}"`).join(', ')} (they are: ${COLLECTOR_NAMES.join(', ')})`,
      );
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
