import { stat } from 'node:fs/promises';
import { TarReader } from '../../analyze/tar.ts';
import type { Policy } from '../../approvals/policy.ts';
import { createProposal, type Proposal, sameProposal } from '../../approvals/service.ts';
import { runCollector } from '../../collect/collectors/collector.ts';
import { coreSettings } from '../../collect/collectors/cores.ts';
import { diskUsage, type Filesystem } from '../../collect/collectors/disk.ts';
import {
  diskChange,
  type FreeItem,
  type FreeOutcome,
  freeCommand,
  freeText,
  type PulledArtifact,
  parseFreeOutput,
  planFree,
} from '../../collect/free-plan.ts';
import { planGuard } from '../../collect/guard-plan.ts';
import type { RemoteHost } from '../../collect/transport.ts';
import { readContentHead } from '../../evidence/content-stream.ts';
import { formatBytes, ONE_DECIMAL } from '../../format-bytes.ts';
import { joinMrkdwn, md } from '../../slack/blocks/mrkdwn.ts';
import { queueProposalMessage } from '../../slack/proposal-messages.ts';
import type { Db } from '../../store/db.ts';
import { completeArtifacts, markFreed } from '../../store/evidence-artifacts.ts';
import { appendAudit, queueThreadMessage } from '../../store/records.ts';
import type { JobDeps } from './job-run.ts';

/**
 * Stopping the bleeding once the cores are home (issue 17): a proposal to delete exactly the files
 * pulled whole, and one to keep the next crash from filling the disk again; and the run of an
 * approved `free` proposal, which deletes a file only while it is still the one pulled, then reads
 * the disk again.
 */

export interface FreeDeps extends JobDeps {
  policy?: Policy | undefined;
  channel: string;
}

/**
 * The core's own bytes in a pulled file: its member's size in docker cp's tar (read from the tar's
 * first blocks, decoded first when it was kept as zstd), or the file's content size: its size,
 * or for a file kept compressed, the size the pull counted when it decoded it (`recorded`).
 */
export async function pulledContentBytes(
  localPath: string,
  container: string | null,
  recorded: { keptAs: string | null; contentBytes: number | null },
): Promise<number | null> {
  try {
    if (!container)
      return recorded.keptAs === 'compressed' ? recorded.contentBytes : (await stat(localPath)).size;
    const head = await readContentHead(localPath, 64 * 1024);
    let size: number | null = null;
    const reader = new TarReader((h) => {
      if (size === null && h.type === 'file') size = h.size;
      return undefined;
    });
    // The first member's header is in the first blocks (after PAX headers); its data need not be.
    reader.push(head);
    return size;
  } catch {
    return null;
  }
}

/** The incident's pulled files on a host, with what came home of each. */
export async function pulledArtifacts(db: Db, incidentId: number, host: string): Promise<PulledArtifact[]> {
  return Promise.all(
    (await completeArtifacts(db, incidentId, host)).map(async (a) => ({
      ...(a.container ? { container: a.container } : {}),
      path: a.path,
      state: a.state,
      sha256: a.sha256,
      deleted: a.remoteDeletedAt !== null,
      kept: a.deletedAt === null,
      remoteSizeBytes: a.remoteSizeBytes,
      remoteMtime: a.remoteMtime,
      file: a.file,
      layer: a.layerDir,
      contentBytes: a.localPath ? await pulledContentBytes(a.localPath, a.container, a) : null,
    })),
  );
}

/**
 * After a pull: proposes deleting the files that came home whole (nothing when none did), and the
 * guard against the next crash. Neither runs without an approval: the policy approves pulls alone.
 */
export async function proposeFreeing(
  deps: FreeDeps,
  remote: RemoteHost,
  incidentId: number,
): Promise<Proposal | undefined> {
  const now = deps.now();
  const host = remote.name;
  if (!deps.policy) return undefined;
  const plan = planFree(await pulledArtifacts(deps.db, incidentId, host));
  let proposal: Proposal | undefined;
  if (plan.items.length > 0) {
    const text = { kind: 'free' as const, target: host, text: freeText(plan.items) };
    proposal = await sameProposal(deps.db, incidentId, text);
    if (!proposal) {
      const left =
        plan.skipped.length > 0
          ? ` Not proposed: ${plan.skipped.map((s) => `${s.source.container ? `${s.source.container}:` : ''}${s.source.path} (${s.reason})`).join('; ')}.`
          : '';
      proposal = await createProposal(
        deps.db,
        {
          incidentId,
          ...text,
          why: `Frees up to ${formatBytes(plan.bytes, ONE_DECIMAL)} on ${host} (less for sparse cores): the ${plan.items.length} core file(s) are home whole. Each is deleted only if it is still the file pulled (size, mtime, device:inode; the sha256 of what came home too when it is small), in the container (docker exec rm) or, for a stopped container, in its layer on the host; the disk is read again afterwards.${left}`,
          expects: 'per file: deleted, or skipped and why; the disk before → after',
          proposedBy: 'nightshift',
        },
        deps.policy,
        now,
      );
      await queueProposalMessage(deps.db, proposal, deps.channel, now);
    }
  }
  await proposeGuard(deps, remote, incidentId, [
    ...new Set(plan.items.flatMap((i) => (i.container ? [i.container] : []))),
  ]);
  deps.kick?.();
  return proposal;
}

async function proposeGuard(deps: FreeDeps, remote: RemoteHost, incidentId: number, containers: string[]) {
  if (!deps.policy) return;
  const now = deps.now();
  let corePattern = '';
  try {
    corePattern = ((await runCollector(remote, coreSettings, undefined)).facts?.pattern as string) ?? '';
  } catch (error) {
    deps.log.warn({ err: error, host: remote.name }, 'could not read how the host writes cores');
  }
  const guard = planGuard({ host: remote.name, corePattern, containers });
  if (guard.advice.length > 0) {
    await queueThreadMessage(deps.db, {
      incidentId,
      key: `guard:${remote.name}:advice`,
      fallbackChannel: deps.channel,
      body: {
        type: 'text',
        text: joinMrkdwn(
          [
            md`:shield: Against the next crash filling ${remote.name}:`,
            ...guard.advice.map((a) => md`• ${a}`),
          ],
          '\n',
        ).text,
        blocks: [],
      },
    });
  }
  if (!guard.script) return;
  const text = { kind: 'script' as const, target: remote.name, text: guard.script.text };
  if (await sameProposal(deps.db, incidentId, text)) return;
  const proposal = await createProposal(
    deps.db,
    {
      incidentId,
      ...text,
      why: guard.script.why,
      expects: 'the new setting, printed',
      proposedBy: 'nightshift',
    },
    deps.policy,
    now,
  );
  await queueProposalMessage(deps.db, proposal, deps.channel, now);
}

export interface FreeReport {
  outcomes: Array<{ item: FreeItem; outcome: FreeOutcome }>;
  freedBytes: number;
  disk: { before: Filesystem[]; after: Filesystem[]; lines: string[] };
}

/** How long one file's check and delete may take on the host (a hash of up to 256 MiB included). */
const FREE_TIMEOUT_MS = 120_000;

async function filesystems(remote: RemoteHost): Promise<Filesystem[]> {
  const output = await runCollector(remote, diskUsage, undefined);
  return (output.facts?.filesystems as Filesystem[] | undefined) ?? [];
}

/**
 * Deletes the approved files one at a time, each only while it is still the one pulled, with the
 * disk read before and after. Every file's end is audited; one deleted is marked so it is never
 * named again.
 */
export async function freeFiles(
  deps: Pick<FreeDeps, 'db' | 'log'>,
  remote: RemoteHost,
  proposal: Proposal,
  items: readonly FreeItem[],
): Promise<FreeReport> {
  const before = await filesystems(remote).catch((error: unknown) => {
    deps.log.warn({ err: error }, 'could not read the disk before freeing it');
    return [];
  });
  const outcomes: FreeReport['outcomes'] = [];
  for (const item of items) {
    const r = await remote
      .exec({ command: freeCommand(item), timeoutMs: FREE_TIMEOUT_MS, maxOutputBytes: 64 * 1024 })
      .catch((error: unknown) => ({ stdout: '', stderr: (error as Error).message, exitCode: null }));
    const outcome = parseFreeOutput(r.stdout, r.stderr, r.exitCode);
    outcomes.push({ item, outcome });
    if (outcome.status === 'deleted')
      await markFreed(deps.db, {
        incidentId: proposal.incidentId,
        host: remote.name,
        container: item.container ?? null,
        path: item.path,
      });
    await appendAudit(deps.db, {
      actor: 'nightshift',
      action: outcome.status === 'deleted' ? 'evidence.deleted' : 'evidence.not_deleted',
      incidentId: proposal.incidentId,
      subject: {
        proposal: proposal.id,
        host: remote.name,
        container: item.container ?? null,
        path: item.path,
        // Not `bytes`: the timeline reads that as a reply's length (audit-text.ts).
        sizeBytes: item.sizeBytes,
        status: outcome.status,
        ...(outcome.detail ? { detail: outcome.detail } : {}),
      },
    });
  }
  const after = await filesystems(remote).catch((error: unknown) => {
    deps.log.warn({ err: error }, 'could not read the disk after freeing it');
    return [];
  });
  return {
    outcomes,
    freedBytes: outcomes
      .filter((o) => o.outcome.status === 'deleted')
      .reduce((sum, o) => sum + o.item.sizeBytes, 0),
    disk: { before, after, lines: diskChange(before, after) },
  };
}
