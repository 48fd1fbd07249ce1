import { createProposal, type Proposal, sameProposal } from '../../approvals/service.ts';
import { collectHost, type HostCollection } from '../../collect/collect-host.ts';
import { formatBytes, planPull, pullText } from '../../collect/pull-plan.ts';
import type { SshConnections } from '../../collect/ssh.ts';
import { findHost, type HostsFile } from '../../config/hosts.ts';
import type { Services } from '../../services.ts';
import { findingsReply } from '../../slack/blocks/incident.ts';
import { md } from '../../slack/blocks/mrkdwn.ts';
import { queueProposalMessage } from '../../slack/proposal-messages.ts';
import { recordPendingArtifact } from '../../store/evidence-artifacts.ts';
import { QUEUES } from '../queues.ts';
import { asBody, type JobDeps, startJobRun } from './job-run.ts';

/**
 * The collection job a disk alert starts: the built-in, read-only collectors on the host over
 * SSH (filesystems, largest directories, cores in containers and on the host, core settings,
 * Docker's usage), each finding posted to the thread. A host missing from the hosts file gets a
 * reply saying so instead of a silent nothing.
 */
export interface CollectDeps extends JobDeps, Pick<Services, 'policy' | 'channel'> {
  hosts: HostsFile;
  ssh: SshConnections;
  /** Queues the run of a proposal the policy approved by itself (automatic pulls). */
  onApproved(proposal: Proposal): Promise<void>;
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
      ? md`:mag: Collecting on ${host.name} over SSH: disk usage, core dumps, Docker (job ${jobId.slice(0, 8)})`
      : md`:grey_question: ${payload.host} is not in the hosts file, so nothing is collected there. Add it (name, address, user, key) to collect on its next alert.`,
    'collection',
  );
  if (!host) {
    await run.finish(
      [],
      md`:grey_question: Nothing collected: ${payload.host} is not in the hosts file. Add it (name, address, user, key) to collect on its next alert.`,
    );
    return undefined;
  }
  try {
    const now = deps.now();
    const collection = await collectHost(deps.ssh.host(host.name), {
      now,
      needApproval: deps.policy.collectorsNeedApproval,
      coreSearchPaths: host.coreSearchPaths,
    });
    const problems =
      collection.errors.length > 0 ? `; could not collect: ${collection.errors.join('; ')}` : '';
    if (collection.findings.length === 0 && collection.errors.length > 0) {
      // Nothing collected at all (a refused host key, an unreachable host): say so plainly.
      await run.finish([], md`:lock: Could not collect on ${host.name}: ${collection.errors[0]}`, {
        host: host.name,
      });
      return collection;
    }
    await run.finish(
      collection.findings,
      md`:white_check_mark: Collection on ${host.name} done: ${collection.findings.length} finding(s), ${collection.cores.length} core file(s)${problems}`,
      { host: host.name, cores: collection.cores.length },
      (findings) =>
        findings.length === 0
          ? []
          : [asBody(findingsReply(findings, md`:mag: *What the collection found on ${host.name}*`))],
    );
    for (const held of collection.held) {
      // Fixed, read-only text, but the policy wants a human to say yes first: a host script proposal.
      const text = { kind: 'script' as const, target: host.name, text: held.command };
      if (await sameProposal(deps.db, payload.incidentId, text)) continue;
      const proposal = await createProposal(
        deps.db,
        {
          incidentId: payload.incidentId,
          kind: 'script',
          target: host.name,
          text: held.command,
          why: `The built-in collector "${held.name}" on ${host.name}: the policy asks for an approval before it runs.`,
          expects: 'its output, posted to this thread',
          proposedBy: 'nightshift',
        },
        deps.policy,
        now,
      );
      await queueProposalMessage(deps.db, proposal, deps.channel, now);
    }
    if (collection.cores.length > 0) await proposePull(deps, payload.incidentId, host.name, collection);
    return collection;
  } catch (error) {
    await run.fail(error);
    throw error;
  }
}

/**
 * Bringing gigabytes off production is itself a proposal: the cores found are recorded as
 * pending evidence (with their sizes, for the progress bar), and the newest are proposed for a
 * pull, which waits for an approver unless the policy makes pulls automatic.
 */
async function proposePull(deps: CollectDeps, incidentId: number, host: string, collection: HostCollection) {
  const now = deps.now();
  for (const core of collection.cores) {
    // What the host said of each core is kept: freeing the disk later deletes a file only while
    // it is still this one (free-plan.ts).
    const layer = core.container ? collection.layers.find((l) => l.container === core.container) : undefined;
    await recordPendingArtifact(
      deps.db,
      { incidentId, host, container: core.container, path: core.path },
      { sizeBytes: core.sizeBytes, mtime: core.mtime, file: core.file, layerDir: layer?.dir ?? null },
    );
  }
  const plan = planPull(collection.cores);
  if (await sameProposal(deps.db, incidentId, { kind: 'pull', target: host, text: pullText(plan.sources) }))
    return;
  const size = `${formatBytes(plan.knownBytes)}${plan.unknownSizes > 0 ? ` (+${plan.unknownSizes} of unknown size, in stopped containers)` : ''}`;
  const proposal = await createProposal(
    deps.db,
    {
      incidentId,
      kind: 'pull',
      target: host,
      text: pullText(plan.sources),
      why: `${plan.sources.length} core file(s), ${size}, found on ${host}${plan.leftOut > 0 ? ` (the newest; ${plan.leftOut} older left out)` : ''}. Each is streamed home with docker cp … - | gzip -1 (or zstd) over SSH, nothing written on the host, then analysed.`,
      expects: 'the signal, process and command line of each dump, and the strings they share',
      proposedBy: 'nightshift',
    },
    deps.policy,
    now,
  );
  await queueProposalMessage(deps.db, proposal, deps.channel, now);
  deps.kick?.();
  if (proposal.state === 'approved') await deps.onApproved(proposal);
}
