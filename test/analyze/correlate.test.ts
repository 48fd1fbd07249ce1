import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CoreFacts } from '../../src/analyze/core.ts';
import {
  buildReport,
  type DumpRecord,
  HeadlineSoFar,
  headlineOf,
  streamReasons,
} from '../../src/analyze/correlate.ts';
import type { EvidenceItem } from '../../src/analyze/evidence.ts';
import type { EvidenceKind } from '../../src/analyze/extract.ts';
import { ReportSchema } from '../../src/analyze/report-schema.ts';

const STREAM = 'http://radio.example.net/live/stream.mp3';
const FURNITURE = 'https://docs.python.org/3/library/urllib.html';

function facts(pid: number, overrides: Partial<CoreFacts> = {}): CoreFacts {
  return {
    arch: 'x86_64',
    pid,
    ppid: 1,
    uid: 1000,
    gid: 1000,
    processName: 'python3',
    psargs: 'python3 worker.py',
    argv: ['python3', 'worker.py'],
    commandLine: 'python3 worker.py',
    commandLineSource: 'stack',
    executable: '/usr/bin/python3.11',
    executableSource: 'nt_file',
    execfn: '/usr/bin/python3',
    libraries: [],
    mappedFiles: [],
    signal: {
      number: 6,
      name: 'SIGABRT',
      code: 0,
      codeName: 'SI_USER',
      senderPid: 4242,
      senderUid: 1000,
      faultAddress: null,
      meaning: 'sent by the master',
    },
    threads: 1,
    threadList: [],
    environment: [],
    truncated: false,
    expectedBytes: 100,
    segments: 3,
    notesIncomplete: false,
    redactions: 0,
    secrets: [],
    ...overrides,
  };
}

function dump(
  i: number,
  evidence: Array<[EvidenceKind, string, number?]>,
  overrides: Partial<CoreFacts> = {},
): DumpRecord {
  const items: EvidenceItem[] = evidence.map(([kind, value, count]) => ({
    kind,
    value,
    count: count ?? 1,
    encoding: 'ascii',
  }));
  return {
    file: `core.${i}`,
    entry: null,
    container: 'raw',
    fileBytes: 100,
    sizeBytes: 100,
    mtime: new Date(Date.UTC(2026, 10, 25, 3, i)),
    facts: facts(1000 + i, overrides),
    evidence: { items, redactions: 0, dropped: 0, strings: 10, secrets: [], runs: [], unlistedElsewhere: [] },
  };
}

/** The incident: 8 workers, 6 stuck on the stream, every one holding interpreter furniture. */
function incident(): DumpRecord[] {
  return Array.from({ length: 8 }, (_, i) => {
    const onStream = i < 6;
    const evidence: Array<[EvidenceKind, string, number?]> = [
      ['url', FURNITURE, 3],
      ['env', 'LANG=C.UTF-8'],
      ['transaction', '/api/feeds/refresh'],
      ['url', `https://api.example.com/users/${i}`],
    ];
    if (onStream) {
      evidence.push(
        ['url', STREAM, 2],
        ['request', 'GET /live/stream.mp3'],
        ['header', 'content-type: audio/mpeg'],
      );
    } else {
      evidence.push(['url', 'http://feeds.example.org/ok.xml'], ['request', 'GET /ok.xml']);
    }
    return dump(i, evidence);
  });
}

describe('buildReport', () => {
  const report = buildReport(incident(), [], new Date('2026-11-25T04:00:00Z'));

  it('produces a document that satisfies the published schema', () => {
    ReportSchema.parse(report);
  });

  it('ranks the stream URL first, "in 6 of 8 dumps", and says why', () => {
    const top = report.correlations[0]!;
    assert.equal(top.value, STREAM);
    assert.equal(top.kind, 'url');
    assert.equal(top.dumps, 6);
    assert.equal(top.total, 8);
    assert.equal(top.stream, true);
    assert.deepEqual(top.files, ['core.0', 'core.1', 'core.2', 'core.3', 'core.4', 'core.5']);
    assert.match(top.why, /in 6 of 8 dumps/);
    assert.match(top.why, /\.mp3/);
    assert.match(top.why, /media Content-Type/);
    assert.match(top.why, /requested by the process/);
  });

  it('ranks runtime furniture below the evidence', () => {
    const furniture = report.correlations.findIndex((c) => c.value === FURNITURE);
    const transaction = report.correlations.findIndex((c) => c.value === '/api/feeds/refresh');
    assert.ok(furniture > transaction, 'documentation URL ranks below the transaction');
    assert.match(report.correlations[furniture]!.why, /furniture/);
  });

  it('leaves out values seen in one dump only and an environment shared by all', () => {
    assert.ok(!report.correlations.some((c) => c.value.startsWith('https://api.example.com/users/')));
    assert.ok(!report.correlations.some((c) => c.kind === 'env'));
  });

  it('groups dumps into signatures by executable, signal and top evidence, with their time range', () => {
    assert.deepEqual(
      report.signatures.map((s) => [s.count, s.signal, s.topEvidence]),
      [
        [6, 'SIGABRT', STREAM],
        [2, 'SIGABRT', 'http://feeds.example.org/ok.xml'],
      ],
    );
    assert.equal(report.signatures[0]!.firstSeen, '2026-11-25T03:00:00.000Z');
    assert.equal(report.signatures[0]!.lastSeen, '2026-11-25T03:05:00.000Z');
    assert.equal(report.dumps[7]!.signature, report.signatures[1]!.id);
  });

  it('raises a critical finding for the stream and names the sender of the signal', () => {
    assert.equal(report.findings[0]!.severity, 'critical');
    assert.match(report.findings[0]!.title, /endless stream in 6 of 8 dumps/);
    assert.ok(report.findings.some((f) => f.title === '8 dumps were killed by pid 4242'));
    assert.ok(report.nextSteps.some((s) => s.includes(STREAM)));
  });

  it('hides a secret found by name wherever it appears unnamed, in every dump', () => {
    const a = dump(1, [['env', 'DB_PASSWORD=[REDACTED]']]);
    a.evidence.secrets = ['hunter2-s3cret'];
    const b = dump(2, [['url', 'http://x.example/?q=hunter2-s3cret']], {
      commandLine: 'worker hunter2-s3cret',
    });
    const scrubbed = buildReport([a, b], [], new Date());
    assert.equal(scrubbed.dumps[1]!.urls[0]!.value, 'http://x.example/?q=[REDACTED]');
    assert.equal(scrubbed.dumps[1]!.commandLine, 'worker [REDACTED]');
    assert.equal(scrubbed.dumps[1]!.redactions, 2);
    assert.ok(!JSON.stringify(scrubbed).includes('hunter2'));
  });

  it('lists a dump it cannot report among the errors and reports the others', () => {
    const bad = dump(1, [['url', STREAM]]);
    bad.mtime = new Date(Number.NaN);
    const r = buildReport([dump(0, []), bad, dump(2, [])], [], new Date('2026-11-25T04:00:00Z'));
    ReportSchema.parse(r);
    assert.deepEqual(
      r.dumps.map((d) => d.file),
      ['core.0', 'core.2'],
    );
    assert.deepEqual(r.errors, [
      {
        file: 'core.1',
        entry: null,
        code: 'nightshift_internal',
        message: 'cannot report this dump: its modification time is not a valid date',
      },
    ]);
  });

  it('says application code in every dump is "in every dump" and ranks library strings below it', () => {
    const records = Array.from({ length: 3 }, (_, i) =>
      dump(i, [
        ['function', 'fetch_feed'],
        ['frame', 'feeds/fetch.py:42 in fetch_feed'],
        ['frame', '/usr/lib/python3.11/socket.py:706 in readinto'],
        ['url', 'http://ahad-haam:3128'],
      ]),
    );
    const r = buildReport(records, [], new Date());
    const rank = (value: string) => r.correlations.findIndex((c) => c.value === value);
    const why = (value: string) => r.correlations[rank(value)]!.why;
    assert.equal(why('fetch_feed'), 'in 3 of 3 dumps; in every dump');
    assert.equal(why('feeds/fetch.py:42 in fetch_feed'), 'in 3 of 3 dumps; in every dump');
    for (const library of ['/usr/lib/python3.11/socket.py:706 in readinto', 'http://ahad-haam:3128']) {
      assert.match(why(library), /in every dump, so it may come from the interpreter/);
      assert.ok(rank(library) > rank('fetch_feed'), library);
      assert.ok(rank(library) > rank('feeds/fetch.py:42 in fetch_feed'), library);
    }
  });

  it('puts a core cut short, holding nothing shared, in the signature of its program and signal', () => {
    const records = [0, 1, 2].map((i) => dump(i, [['url', STREAM]]));
    records.push(dump(3, [['url', 'http://127.0.0.1:80']], { truncated: true }));
    const r = buildReport(records, [], new Date());
    assert.deepEqual(
      r.signatures.map((s) => [s.count, s.topEvidence]),
      [[4, STREAM]],
    );
    assert.deepEqual(r.signatures[0]!.files, ['core.0', 'core.1', 'core.2', 'core.3']);
  });

  it('flags truncated cores', () => {
    const r = buildReport([dump(1, [], { truncated: true }), dump(2, [])], [], new Date());
    assert.ok(r.findings.some((f) => f.title === '1 of 2 cores are truncated'));
  });
});

describe('streamReasons', () => {
  it('says why a value looks like an endless stream', () => {
    assert.deepEqual(streamReasons('url', 'https://cdn.example.com/hls/live/index.m3u8?token=x'), [
      'its path ends in .m3u8, an audio/playlist format',
      'its path names a live stream',
    ]);
    assert.deepEqual(streamReasons('header', 'icy-br: 128'), ['icy-br is an Icecast/SHOUTcast radio header']);
    assert.deepEqual(streamReasons('header', 'content-type: video/mp2t'), [
      'the response was video/mp2t, a media type',
    ]);
    assert.deepEqual(streamReasons('url', 'https://api.example.com/v1/feeds?id=42'), []);
  });
});

describe('headlineOf', () => {
  const at = new Date('2026-11-25T04:00:00Z');
  it('is the headline buildReport gives the same dumps, on every part of the set as it grows', () => {
    const all = incident();
    for (let n = 1; n <= all.length; n++) {
      const some = all.slice(0, n);
      assert.equal(headlineOf(some), buildReport(some, [], at).findings[0]?.title, `${n} dumps`);
    }
    assert.match(headlineOf(all) ?? '', new RegExp(`in 6 of 8 dumps: ${STREAM}`));
  });

  it('is the same grouped a dump at a time (HeadlineSoFar), a secret found late and a bad dump included', () => {
    const secret = 'hunter2-s3cret';
    const all = incident();
    // A secret a later dump reveals, in the stream URL the dumps before it hold most; a dump the
    // report cannot hold.
    for (const d of all.slice(0, 6))
      d.evidence.items.push({ kind: 'url', value: `${STREAM}?key=${secret}`, count: 9, encoding: 'ascii' });
    all[5]!.evidence.secrets = [secret];
    const bad = dump(9, [['url', STREAM]]);
    bad.mtime = new Date(Number.NaN);
    all.splice(3, 0, bad);
    const soFar = new HeadlineSoFar();
    for (let n = 1; n <= all.length; n++) {
      soFar.add([all[n - 1]!]);
      const headline = soFar.headline();
      assert.equal(headline, headlineOf(all.slice(0, n)), `${n} dumps`);
      if (n >= 7) assert.ok(!headline?.includes(secret), headline);
    }
    // Added several at a time, too.
    const inTwos = new HeadlineSoFar();
    for (let n = 0; n < all.length; n += 2) inTwos.add(all.slice(n, n + 2));
    assert.equal(inTwos.headline(), headlineOf(all));
  });

  it('leaves out a dump the report cannot hold and hides a secret found anywhere, as the report does', () => {
    const secret = 'hunter2-s3cret';
    const records = [0, 1, 2].map((i) =>
      dump(i, [
        ['url', `${STREAM}?key=${secret}`, 2],
        ['header', 'icy-name: x'],
      ]),
    );
    records[0]!.evidence.secrets = [secret];
    const bad = dump(3, [['url', 'http://feeds.example.org/ok.xml']]);
    bad.mtime = new Date(Number.NaN);
    records.push(bad);
    const headline = headlineOf(records);
    assert.equal(headline, buildReport(records, [], at).findings[0]?.title);
    assert.match(headline ?? '', /in 3 of 3 dumps/);
    assert.ok(headline && !headline.includes(secret), headline);
  });

  it('is undefined when nothing stands out', () => {
    assert.equal(headlineOf([]), undefined);
    assert.equal(headlineOf([dump(0, [])]), buildReport([dump(0, [])], [], at).findings[0]?.title);
  });
});
