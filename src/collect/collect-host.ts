import type { Finding } from '../analyze/report-schema.ts';
import { type CollectorOutput, runCollector } from './collectors/collector.ts';
import { type CoreFile, containerCores, coreSettings, dockerUsage, hostCores } from './collectors/cores.ts';
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
  errors: string[];
}

export async function collectHost(host: RemoteHost, now: Date = new Date()): Promise<HostCollection> {
  const collection: HostCollection = {
    host: host.name,
    findings: [],
    filesystems: [],
    cores: [],
    errors: [],
  };
  const keep = (output: CollectorOutput) => collection.findings.push(...output.findings);
  try {
    const disk = await runCollector(host, diskUsage, undefined);
    keep(disk);
    collection.filesystems = (disk.facts?.filesystems as Filesystem[] | undefined) ?? [];
    const fullest = [...collection.filesystems].sort((a, b) => b.usedPercent - a.usedPercent)[0];
    if (fullest && fullest.usedPercent >= 80)
      keep(await runCollector(host, largestDirectories, { mount: fullest.mount }));
  } catch (error) {
    collection.errors.push((error as Error).message);
  }
  // Then what fills disks at 2 a.m.: cores, in containers and on the host, and Docker's layers.
  for (const step of [
    () => runCollector(host, containerCores, { now }),
    () => runCollector(host, hostCores, { now }),
    () => runCollector(host, coreSettings, undefined),
    () => runCollector(host, dockerUsage, undefined),
  ]) {
    try {
      const output = await step();
      keep(output);
      collection.cores.push(...((output.facts?.cores as CoreFile[] | undefined) ?? []));
    } catch (error) {
      collection.errors.push((error as Error).message);
    }
  }
  return collection;
}
