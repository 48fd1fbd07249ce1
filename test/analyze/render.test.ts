import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderReport } from '../../src/analyze/render.ts';
import type { Dump, Report } from '../../src/analyze/report-schema.ts';

function dump(pid: number, senderPid: number | null, code: number): Dump {
  return {
    file: `core.${pid}`,
    entry: null,
    container: 'raw',
    fileBytes: 100,
    sizeBytes: 100,
    mtime: '2026-11-25T03:00:00.000Z',
    time: '2026-11-25T03:00:00.000Z',
    timeSource: 'tar',
    arch: 'x86_64',
    pid,
    ppid: 1,
    uid: 1000,
    gid: 1000,
    processName: 'worker',
    commandLine: 'worker',
    commandLineSource: 'stack',
    psargs: 'worker',
    executable: '/usr/bin/worker',
    executableSource: 'nt_file',
    execfn: '/usr/bin/worker',
    libraries: [],
    mappedFiles: [],
    signal: {
      number: 6,
      name: 'SIGABRT',
      code,
      codeName: null,
      senderPid,
      senderUid: senderPid === null ? null : 1000,
      faultAddress: null,
      meaning: 'aborted',
    },
    threads: 1,
    threadList: [],
    truncated: false,
    expectedBytes: 100,
    urls: [],
    evidence: [],
    environment: [],
    redactions: 0,
    stringsScanned: 0,
    evidenceDropped: 0,
    signature: 'S1',
  };
}

function report(dumps: Dump[]): Report {
  return {
    version: 1,
    generatedAt: '2026-11-25T04:00:00.000Z',
    dumps,
    errors: [],
    correlations: [],
    signatures: [
      {
        id: 'S1',
        executable: '/usr/bin/worker',
        signal: 'SIGABRT',
        topEvidence: null,
        count: dumps.length,
        files: dumps.map((d) => d.file),
        firstSeen: '2026-11-25T03:00:00.000Z',
        lastSeen: '2026-11-25T03:00:00.000Z',
        timeSources: ['tar'],
      },
    ],
    findings: [],
    nextSteps: [],
    totals: { dumps: dumps.length, bytes: 100 * dumps.length, fileBytes: 100 * dumps.length, redactions: 0 },
  };
}

const signalLine = (text: string) => text.split('\n').find((l) => l.startsWith('  signal'));

describe('renderReport', () => {
  it('names no sender when every dump of a signature aborted itself', () => {
    // The de-duplicated senders ([11]) were once compared with the dumps by position: pid 12,
    // which has no sender, against 11, and "sender pid 11" was printed for a self-abort.
    const text = renderReport(report([dump(12, null, 128), dump(11, 11, -6), dump(10, 10, -6)]));
    assert.equal(signalLine(text), '  signal    SIGABRT (6)');
  });

  it('names the sender only for the dumps another process killed, and says how many', () => {
    const text = renderReport(report([dump(10, 10, -6), dump(11, 4242, 0), dump(12, 4242, 0)]));
    assert.equal(signalLine(text), '  signal    SIGABRT (6); sender pid 4242 (2 of 3 dumps)');
  });

  it('names every sender when all dumps were killed', () => {
    const text = renderReport(report([dump(10, 4242, 0), dump(11, 4243, 0)]));
    assert.equal(signalLine(text), '  signal    SIGABRT (6); sender pid 4242, 4243');
  });
});
