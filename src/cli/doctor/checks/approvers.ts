import { approverCount } from '../../../config/settings.ts';
import type { Check } from '../check.ts';

/** WARN when nobody can approve: every proposal could then only be rejected or expire. */
export const approversCheck: Check = async ({ policy }) => {
  const part = 'approvers';
  if (approverCount(policy) === 0)
    return {
      part,
      ok: null,
      warning: true,
      detail:
        'nobody can approve: no NIGHTSHIFT_APPROVERS and no approvers in a policy file (NIGHTSHIFT_POLICY), so every proposal can only be rejected or expire',
    };
  const { users, usergroups } = policy.approvers;
  if (usergroups.length === 0 && users.length < policy.approvalsRequired)
    return {
      part,
      ok: null,
      warning: true,
      detail: `nobody can approve: a proposal needs ${policy.approvalsRequired} approvals (approvalsRequired) but only ${users.length} user(s) may approve`,
    };
  return {
    part,
    ok: true,
    detail: `${users.length} user(s) and ${usergroups.length} user group(s) may approve; ${policy.approvalsRequired} approval(s) per proposal`,
  };
};
