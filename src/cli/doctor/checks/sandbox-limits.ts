import { describeHome, probeCgroup } from '../../../runners/cgroup.ts';
import type { Check } from '../check.ts';

/** A script is refused too where no cgroup can hold all its processes: one is made and removed. */
export const sandboxLimitsCheck: Check = async ({ config, options }) => {
  const found = await probeCgroup({ root: options.cgroupRoot, parent: config.NIGHTSHIFT_SANDBOX_CGROUP });
  return found.ok
    ? {
        part: 'sandbox limits',
        ok: true,
        detail: `each evidence script gets a cgroup of its own, ${describeHome(found.home)}: ${config.NIGHTSHIFT_SANDBOX_MEMORY_MIB} MiB and ${config.NIGHTSHIFT_SANDBOX_PROCESSES} processes for all its processes together`,
      }
    : {
        part: 'sandbox limits',
        ok: false,
        detail: `no cgroup can bound all of an evidence script's processes, so approved scripts would be refused: ${found.reason}`,
      };
};
