import { collectHost, type HostCollection } from '../../collect/collect-host.ts';
import type { SshConnections } from '../../collect/ssh.ts';
import { findHost, type HostsFile } from '../../config/hosts.ts';
import { QUEUES } from '../queues.ts';
import { type JobDeps, startJobRun } from './job-run.ts';

/**
 * The collection job a disk alert starts: the built-in, read-only collectors on the host over
 * SSH (filesystems, largest directories, cores in containers and on the host, core settings,
 * Docker's usage), each finding posted to the thread. A host missing from the hosts file gets a
 * reply saying so instead of a silent nothing.
 */
export interface CollectDeps extends JobDeps {
  hosts: HostsFile;
  ssh: SshConnections;
}

export async function collectHostJob(
  deps: CollectDeps,
  jobId: string,
  raw: unknown,
): Promise<HostCollection | undefined> {
  const payload = QUEUES.collectHost.payload.parse(raw);
  const host = findHost(deps.hosts, payload.host);
  const run = await startJobRun(
    deps,
    QUEUES.collectHost.name,
    jobId,
    payload.incidentId,
    payload,
    host
      ? `:mag: Collecting on ${host.name} over SSH: disk usage, core dumps, Docker (job ${jobId.slice(0, 8)})`
      : `:grey_question: ${payload.host} is not in the hosts file, so nothing is collected there. Add it (name, address, user, key) to collect on its next alert.`,
  );
  if (!host) {
    await run.finish([], 'Collection skipped: unknown host.');
    return undefined;
  }
  try {
    const collection = await collectHost(deps.ssh.host(host.name));
    const problems =
      collection.errors.length > 0 ? `; could not collect: ${collection.errors.join('; ')}` : '';
    await run.finish(
      collection.findings,
      `:white_check_mark: Collection on ${host.name} done: ${collection.findings.length} finding(s), ${collection.cores.length} core file(s)${problems}`,
      { host: host.name, cores: collection.cores.length },
    );
    return collection;
  } catch (error) {
    await run.fail(error);
    throw error;
  }
}
