import type { Finding } from '../analyze/report-schema.ts';
import { CodedError, ErrorCode } from '../errors.ts';
import { type Collector, type CollectorOutput, runCollector } from './collectors/collector.ts';
import {
  type ContainerLayer,
  type CoreFile,
  containerCores,
  coreSettings,
  dockerUsage,
  hostCores,
} from './collectors/cores.ts';
import { diskUsage, type Filesystem, largestDirectories } from './collectors/disk.ts';
import type { RemoteHost } from './transport.ts';

/**
 * The built-in collection on one host, in order: filesystems and inodes, then the largest
 * directories of the fullest filesystem. Each step's findings are kept even if a later one fails.
 */
export interface HostCollection {
  host: string;
  findings: Finding[];
  filesystems: Filesystem[];
  cores: CoreFile[];
  /** The containers' writable layers on the host, where the container collector found them. */
  layers: ContainerLayer[];
  /** kernel.core_pattern as the core settings collector read it ('' when it did not run). */
  corePattern: string;
  errors: string[];
  /** Collectors the policy holds for an approval: not run; their exact command, to propose. */
  held: Array<{ name: string; command: string }>;
}

/** The built-in collectors by name, as a policy file names them. */
export const COLLECTOR_NAMES = [
  diskUsage.name,
  largestDirectories.name,
  containerCores.name,
  hostCores.name,
  coreSettings.name,
  dockerUsage.name,
] as const;

export interface CollectOptions {
  /** When the collection runs: the time its findings and the cores' ages are measured from. */
  now: Date;
  /** Collectors that need an approval before they run (the policy's collectorsNeedApproval). */
  needApproval?: readonly string[];
  /** Where on the host to look for core files (the hosts file's coreSearchPaths). Default /. */
  coreSearchPaths?: readonly string[];
}

export async function collectHost(host: RemoteHost, options: CollectOptions): Promise<HostCollection> {
  const { now } = options;
  const collection: HostCollection = {
    host: host.name,
    findings: [],
    filesystems: [],
    cores: [],
    layers: [],
    corePattern: '',
    errors: [],
    held: [],
  };
  const keep = (output: CollectorOutput) => collection.findings.push(...output.findings);
  /** Runs a collector, or holds it (empty output) when the policy wants an approval first. */
  const run = async <Input>(collector: Collector<Input>, input: Input): Promise<CollectorOutput> => {
    if (options.needApproval?.includes(collector.name)) {
      collection.held.push({ name: collector.name, command: collector.command(input) });
      return { findings: [] };
    }
    return runCollector(host, collector, input);
  };
  const refused = (error: unknown) =>
    error instanceof CodedError &&
    (error.code === ErrorCode.HostKeyRejected || error.code === ErrorCode.SshFailed);
  try {
    const disk = await run(diskUsage, undefined);
    keep(disk);
    collection.filesystems = (disk.facts?.filesystems as Filesystem[] | undefined) ?? [];
    const fullest = [...collection.filesystems].sort((a, b) => b.usedPercent - a.usedPercent)[0];
    if (fullest && fullest.usedPercent >= 80) keep(await run(largestDirectories, { mount: fullest.mount }));
  } catch (error) {
    collection.errors.push((error as Error).message);
    // A refused or failed connection: every other collector would only say the same again.
    if (refused(error)) return collection;
  }
  // Then what fills disks at 2 a.m.: cores, in containers and on the host, and Docker's layers.
  // The host search is told what the containers hold, so a container's core seen again through
  // the engine's storage on the host is one core, not two.
  let layers: ContainerLayer[] = [];
  for (const step of [
    async () => {
      const output = await run(containerCores, { now });
      layers = (output.facts?.layers as ContainerLayer[] | undefined) ?? [];
      collection.layers = layers;
      return output;
    },
    () =>
      run(hostCores, {
        now,
        ...(options.coreSearchPaths ? { roots: options.coreSearchPaths } : {}),
        seen: { containerCores: collection.cores.filter((c) => c.container !== null), layers },
      }),
    async () => {
      const output = await run(coreSettings, undefined);
      collection.corePattern = (output.facts?.pattern as string | undefined) ?? '';
      return output;
    },
    () => run(dockerUsage, undefined),
  ]) {
    try {
      const output = await step();
      keep(output);
      collection.cores.push(...((output.facts?.cores as CoreFile[] | undefined) ?? []));
    } catch (error) {
      collection.errors.push((error as Error).message);
      if (refused(error)) break;
    }
  }
  return collection;
}
