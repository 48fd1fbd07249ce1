import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseElfHeader } from '../../src/analyze/elf.ts';
import type { Report } from '../../src/analyze/report-schema.ts';
import { ReportSchema } from '../../src/analyze/report-schema.ts';
import { systemClock } from '../../src/clock.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { writeApportCrash } from '../helpers/apport.ts';
import {
  type CCore,
  makeCCore,
  makePythonIncident,
  type PythonIncident,
  type PythonWorkerCore,
  truncateCopy,
} from '../helpers/cores.ts';
import { requireTool, runTool } from '../helpers/reference-tools.ts';

/**
 * The forms real hosts keep cores in, each made by the real tool from a real core taken during the
 * run: systemd-coredump's zstd (and xz, lz4), compressed and sparse (tar -S) tars, apport's .crash
 * reports. Each must give the same report as the raw core.
 */

type Dump = Report['dumps'][number];
/** Everything about a dump that does not depend on how it was kept. */
function facts(d: Dump): Record<string, unknown> {
  const {
    file: _f,
    entry: _e,
    container: _c,
    fileBytes: _b,
    mtime: _m,
    time: _t,
    timeSource: _ts,
    signature: _s,
    ...rest
  } = d;
  return rest;
}

async function analyze(files: string | string[]): Promise<Report> {
  const report = await analyzeFiles(typeof files === 'string' ? [files] : files, {
    now: systemClock,
    workers: 0,
  });
  ReportSchema.parse(report);
  return report;
}

describe('core formats: compressed, sparse tar, apport', () => {
  let dir: string;
  let core: CCore;
  let raw: Dump;

  before(async () => {
    for (const tool of ['zstd', 'xz', 'lz4', 'tar']) requireTool(tool);
    dir = mkdtempSync(join(tmpdir(), 'nightshift-core-formats-'));
    core = await makeCCore(join(dir, 'abort'), 'abort', { args: ['--queue', 'feeds'] });
    const report = await analyze(core.path);
    assert.deepEqual(report.errors, []);
    raw = report.dumps[0]!;
    assert.equal(raw.pid, core.pid);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const compressors: Record<'zstd' | 'xz' | 'lz4', (input: string, output: string) => Promise<unknown>> = {
    zstd: (input, output) => runTool('zstd', ['-q', '-f', input, '-o', output]),
    xz: (input, output) => runTool('bash', ['-c', 'xz -c -T1 "$1" > "$2"', 'bash', input, output]),
    lz4: (input, output) => runTool('lz4', ['-q', '-f', input, output]),
  };

  for (const [kind, compress] of Object.entries(compressors) as Array<
    [keyof typeof compressors, typeof compressors.zstd]
  >) {
    it(`reads a core compressed by the real ${kind}, with the raw core's facts`, async () => {
      const file = join(dir, `core.${kind}-whole.${kind}`);
      await compress(core.path, file);
      const report = await analyze(file);
      assert.deepEqual(report.errors, []);
      assert.equal(report.dumps.length, 1);
      assert.equal(report.dumps[0]!.container, kind);
      assert.equal(report.dumps[0]!.fileBytes, statSync(file).size);
      assert.deepEqual(facts(report.dumps[0]!), facts(raw));
    });

    it(`reads what is left of a ${kind} core cut short, as truncated`, async () => {
      const whole = join(dir, `core.${kind}-cut-src.${kind}`);
      await compress(core.path, whole);
      const file = await truncateCopy(
        whole,
        join(dir, `core.${kind}-cut.${kind}`),
        Math.floor(statSync(whole).size * 0.6),
      );
      const report = await analyze(file);
      assert.deepEqual(report.errors, []);
      const dump = report.dumps[0]!;
      assert.equal(dump.truncated, true);
      assert.ok(dump.sizeBytes < raw.sizeBytes);
      assert.equal(dump.pid, core.pid);
      assert.equal(dump.signal?.name, 'SIGABRT');
    });

    it(`reads a tar of cores compressed by ${kind}, and ${kind} members of a tar`, async () => {
      const tar = join(dir, `cores-${kind}.tar`);
      const member = join(dir, `member-${kind}`);
      mkdirSync(member, { recursive: true });
      copyFileSync(core.path, join(member, 'core.1'));
      await compress(core.path, join(member, `core.2.${kind}`));
      await runTool('tar', ['-C', member, '-cf', tar, 'core.1', `core.2.${kind}`]);
      const file = `${tar}.${kind}`;
      await compress(tar, file);
      const report = await analyze(file);
      assert.deepEqual(report.errors, []);
      assert.deepEqual(
        report.dumps.map((d) => [d.entry, d.container]),
        [
          ['core.1', `tar+${kind}`],
          [`core.2.${kind}`, `tar+${kind}`],
        ],
      );
      for (const d of report.dumps) assert.deepEqual(facts(d), facts(raw));
    });
  }

  it('reads lz4 in 64 KiB linked blocks (lz4 -B4 -BD), each block reaching back into the last', async () => {
    const file = join(dir, 'core.linked.lz4');
    await runTool('lz4', ['-q', '-f', '-B4', '-BD', '--content-size', core.path, file]);
    const report = await analyze(file);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(facts(report.dumps[0]!), facts(raw));
  });

  const sparseForms: Record<string, string[]> = {
    gnu: ['--format=gnu'],
    'pax 0.0': ['--format=pax', '--sparse-version=0.0'],
    'pax 0.1': ['--format=pax', '--sparse-version=0.1'],
    'pax 1.0': ['--format=pax', '--sparse-version=1.0'],
  };
  for (const [form, args] of Object.entries(sparseForms)) {
    it(`reads every core of a ${form} sparse tar (tar -S), under its real name, plain and gzipped`, async () => {
      const stage = join(dir, `sparse-${form.replace(/\W/g, '')}`);
      mkdirSync(join(stage, 'crash'), { recursive: true });
      // Cores have long runs of zeros (pages never written); copied with holes there, as a kernel
      // core on disk often is, tar -S stores only the data.
      for (const name of ['core.1', 'core.2', 'core.3']) {
        await runTool('cp', ['--sparse=always', core.path, join(stage, 'crash', name)]);
      }
      const tar = `${stage}.tar`;
      await runTool('tar', ['-S', ...args, '--sort=name', '-C', stage, '-cf', tar, 'crash']);
      assert.ok(statSync(tar).size < 3 * raw.sizeBytes * 0.9, `${form}: the tar is not sparse`);
      await runTool('bash', ['-c', 'gzip -1 -c "$1" > "$1.gz"', 'bash', tar]);
      for (const [file, container] of [
        [tar, 'tar'],
        [`${tar}.gz`, 'tar+gzip'],
      ] as const) {
        const report = await analyze(file);
        assert.deepEqual(report.errors, [], `${form} ${container}`);
        assert.deepEqual(
          report.dumps.map((d) => [d.entry, d.container, d.sizeBytes]),
          ['crash/core.1', 'crash/core.2', 'crash/core.3'].map((e) => [e, container, raw.sizeBytes]),
        );
        for (const d of report.dumps) assert.deepEqual(facts(d), facts(raw));
      }
    });
  }

  it("takes pid, uid, name and time from a systemd-coredump file name where the core lacks them; the core's own win", async () => {
    const bootId = '0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6';
    const usec = 1_796_270_400_123_456; // 2026-12-03T04:00:00.123Z
    // The whole core, named for another uid: the core says 0, and the core wins.
    const whole = join(dir, `core.crash\x2dabort.1000.${bootId}.${core.pid}.${usec}.zst`);
    await compressors.zstd(core.path, whole);
    const report = await analyze(whole);
    assert.deepEqual(report.errors, []);
    assert.deepEqual(facts(report.dumps[0]!), facts(raw));
    assert.equal(report.dumps[0]!.mtime, '2026-12-03T04:00:00.123Z');

    // Cut short right after its program headers: no notes, so no pid, uid or name of its own.
    const header = parseElfHeader(readFileSync(core.path));
    const cut = await truncateCopy(
      core.path,
      join(dir, 'core.headers-only'),
      header.phoff + header.phnum * 56,
    );
    const bare = await analyze(cut);
    assert.deepEqual(
      bare.dumps.map((d) => [d.pid, d.uid, d.processName]),
      [[null, null, null]],
    );
    for (const [name, compress] of [
      [`core.crash\x2eabort.1000.${bootId}.4242.${usec}.zst`, compressors.zstd],
      [`core.crash\x2eabort.1000.${bootId}.4242.${usec}.lz4`, compressors.lz4],
      [`core.crash\x2eabort.1000.${bootId}.4242.${usec}`, async (i: string, o: string) => copyFileSync(i, o)],
    ] as const) {
      const file = join(dir, name);
      await compress(cut, file);
      const named = await analyze(file);
      assert.deepEqual(
        named.dumps.map((d) => [d.pid, d.uid, d.processName, d.mtime, d.truncated]),
        [[4242, 1000, 'crash.abort', '2026-12-03T04:00:00.123Z', true]],
        name,
      );
    }
    // apport's names (/var/lib/apport/coredump) give pid and uid; their last number is no date.
    const apportName = join(
      dir,
      'core._usr_bin_crash.1000.c2c91690-dade-4dba-ad0e-c9d72f5fa11a.4343.50429709',
    );
    copyFileSync(cut, apportName);
    const fromApport = await analyze(apportName);
    assert.deepEqual(
      fromApport.dumps.map((d) => [d.pid, d.uid, d.processName, d.mtime]),
      [[4343, 1000, null, statSync(apportName).mtime.toISOString()]],
    );
  });

  it('names compressed data that is not a core, and corrupt compressed data', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'nothing to see here\n'.repeat(100));
    await compressors.zstd(text, `${text}.zst`);
    const garbage = join(dir, 'garbage.xz');
    const xz = join(dir, 'text.xz');
    await compressors.xz(text, xz);
    const bytes = readFileSync(xz);
    bytes.fill(0x55, 24, 40);
    writeFileSync(garbage, bytes);
    const zstdReport = await analyze(`${text}.zst`);
    assert.deepEqual(
      zstdReport.errors.map((e) => [e.code, e.message]),
      [['nightshift_not_core', 'not a core dump: a zstd of a text file']],
    );
    const xzReport = await analyze(garbage);
    assert.deepEqual(xzReport.dumps, []);
    assert.deepEqual(
      xzReport.errors.map((e) => e.code),
      ['nightshift_malformed_compression'],
    );
    assert.match(xzReport.errors[0]!.message, /^xz data is corrupt/);
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    it(`reads the core in an apport .crash report (CoreDump ${compression}), also inside a tar of /var/crash`, async () => {
      const crash = join(dir, `_usr_bin_crash.${compression}.0.crash`);
      await writeApportCrash(core.path, crash, {
        compression,
        fields: {
          ExecutablePath: core.executable,
          ProcCmdline: core.argv.join(' '),
          ProcStatus: `Name:\tcrash-abort\nPid:\t${core.pid}\nUid:\t0\t0\t0\t0`,
          Signal: '6',
        },
      });
      const report = await analyze(crash);
      assert.deepEqual(report.errors, []);
      assert.equal(report.dumps.length, 1);
      assert.equal(report.dumps[0]!.container, 'apport');
      assert.deepEqual(facts(report.dumps[0]!), facts(raw));

      const crashDir = join(dir, `var-crash-${compression}`, 'crash');
      mkdirSync(crashDir, { recursive: true });
      copyFileSync(crash, join(crashDir, '_usr_bin_crash.0.crash'));
      const tar = join(dir, `var-crash-${compression}.tar.gz`);
      await runTool('tar', ['-C', join(crashDir, '..'), '-czf', tar, 'crash']);
      const inTar = await analyze(tar);
      assert.deepEqual(inTar.errors, []);
      assert.deepEqual(
        inTar.dumps.map((d) => [d.entry, d.container]),
        [['crash/_usr_bin_crash.0.crash', 'tar+gzip']],
      );
      assert.deepEqual(facts(inTar.dumps[0]!), facts(raw));
    });
  }

  it('says so when an apport report holds no core', async () => {
    const crash = join(dir, 'nocore.crash');
    await writeApportCrash(core.path, crash, {
      withoutCore: true,
      fields: { ExecutablePath: '/usr/bin/crash', Signal: '11' },
    });
    const report = await analyze(crash);
    assert.deepEqual(report.dumps, []);
    assert.deepEqual(
      report.errors.map((e) => [e.code, e.message]),
      [
        [
          'nightshift_malformed_report',
          'an apport Crash report for /usr/bin/crash (signal 11) with no CoreDump field: there is no core in it to read',
        ],
      ],
    );
  });
});

describe('core formats: the incident in miniature, each worker kept a different way', () => {
  let dir: string;
  let incident: PythonIncident;

  before(async () => {
    for (const tool of ['zstd', 'xz', 'lz4', 'tar']) requireTool(tool);
    dir = mkdtempSync(join(tmpdir(), 'nightshift-core-formats-incident-'));
    incident = await makePythonIncident(join(dir, 'run'), { workers: 4, streamWorkers: 3 });
  });
  after(async () => {
    await incident?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same dumps and the same shared strings as the raw cores', async () => {
    const raw = await analyze(incident.cores.map((c) => c.path));
    assert.deepEqual(raw.errors, []);
    const [a, b, c, d] = incident.cores as [
      PythonWorkerCore,
      PythonWorkerCore,
      PythonWorkerCore,
      PythonWorkerCore,
    ];
    const kept = join(dir, 'kept');
    mkdirSync(kept);
    const usec = 1_796_270_400_000_000;
    const boot = '0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6';
    const zst = join(kept, `core.python3.0.${boot}.${a.pid}.${usec}.zst`);
    await runTool('zstd', ['-q', '-f', a.path, '-o', zst]);
    const lz4 = join(kept, `core.python3.0.${boot}.${b.pid}.${usec}.lz4`);
    await runTool('lz4', ['-q', '-f', b.path, lz4]);
    const crash = await writeApportCrash(c.path, join(kept, '_usr_bin_python3.0.crash'));
    const stage = join(dir, 'stage');
    mkdirSync(stage);
    await runTool('cp', ['--sparse=always', d.path, join(stage, 'core.4')]);
    const tar = join(kept, 'web-4.tar.xz');
    await runTool('bash', [
      '-c',
      'tar -S --format=pax -C "$1" -cf - core.4 | xz -T1 -c > "$2"',
      'bash',
      stage,
      tar,
    ]);
    const kinds = await analyze([zst, lz4, crash, tar]);
    assert.deepEqual(kinds.errors, []);
    assert.deepEqual(
      kinds.dumps.map((x) => x.container),
      ['zstd', 'lz4', 'apport', 'tar+xz'],
    );
    const byPid = (r: Report) => new Map(r.dumps.map((x) => [x.pid, facts(x)]));
    assert.deepEqual(byPid(kinds), byPid(raw));
    // The correlations name the files, which differ; everything else about them must not.
    const shared = (r: Report) => r.correlations.map(({ files: _f, ...rest }) => rest);
    assert.deepEqual(shared(kinds), shared(raw));
    assert.ok(raw.correlations.some((x) => x.value === incident.streamUrl && x.dumps === 3));
  });
});
