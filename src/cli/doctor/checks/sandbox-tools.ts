import { findExecutable } from '../../../runners/evidence-sandbox.ts';
import type { Check } from '../check.ts';

/** The runner refuses an approved evidence script without these; better heard before an incident. */
export const sandboxToolsCheck: Check = async ({ options }) => {
  const missing = [
    ['bwrap', 'bubblewrap'],
    ['prlimit', 'util-linux'],
  ].filter(([tool]) => !findExecutable(tool!, options.searchPath));
  return missing.length === 0
    ? {
        part: 'sandbox',
        ok: true,
        detail: 'bwrap and prlimit are installed: approved evidence scripts can run',
      }
    : {
        part: 'sandbox',
        ok: false,
        detail: `${missing.map(([tool]) => tool).join(' and ')} not found on PATH: approved evidence scripts would be refused (apt-get install ${missing.map(([, pkg]) => pkg).join(' ')})`,
      };
};
