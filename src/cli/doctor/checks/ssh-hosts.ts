import { systemClock } from '../../../clock.ts';
import { openSsh, type SshSetup } from '../../../collect/ssh-setup.ts';
import type { Host } from '../../../config/hosts.ts';
import { asCodedError } from '../../../errors.ts';
import { createLogger } from '../../../log.ts';
import type { Check, CheckResult } from '../check.ts';

/** Each host in the hosts file: logged in over SSH with its key pinned, as collection will. */
export const sshHostsCheck: Check = async ({ config }) => {
  if (!config.NIGHTSHIFT_HOSTS)
    return { part: 'ssh hosts', ok: null, detail: 'off: NIGHTSHIFT_HOSTS is not set (no collection)' };
  let setup: SshSetup;
  try {
    setup = await openSsh(config.NIGHTSHIFT_HOSTS, {
      log: createLogger({ level: 'silent' }),
      now: systemClock,
      readyTimeoutMs: 8000,
    });
  } catch (error) {
    return { part: 'ssh hosts', ok: false, detail: asCodedError(error).message };
  }
  try {
    return await Promise.all(setup.hosts.hosts.map((host) => sshHostCheck(setup, host)));
  } finally {
    await setup.ssh.closeAll();
  }
};

async function sshHostCheck({ ssh }: SshSetup, host: Host): Promise<CheckResult> {
  try {
    const result = await ssh.host(host.name).exec({
      command: 'command -v docker >/dev/null && echo docker || echo no-docker',
      timeoutMs: 10_000,
      maxOutputBytes: 1024,
    });
    const docker = result.stdout.includes('no-docker') ? ', no docker client' : ', docker found';
    return {
      part: `ssh ${host.name}`,
      ok: true,
      detail: `logged in as ${host.user}, host key pinned${docker}`,
    };
  } catch (error) {
    return { part: `ssh ${host.name}`, ok: false, detail: asCodedError(error).message };
  }
}
