import type { Check } from '../check.ts';

/** Reached only when loadSettings accepted the environment and the policy file (runChecks). */
export const configurationCheck: Check = async ({ config }) => ({
  part: 'configuration',
  ok: true,
  detail: `every variable that is set is valid${config.NIGHTSHIFT_POLICY ? `, and so is the policy file ${config.NIGHTSHIFT_POLICY}` : ''}`,
});
