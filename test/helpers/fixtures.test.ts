/**
 * Proves the core-dump fixtures are real: every kind is made once and checked
 * only with what gdb, readelf, grep and tar say about it, never with our own
 * parser (that is what the fixtures exist to test).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type CCore,
  FAKE_SECRETS,
  makeCCore,
  makePythonIncident,
  PROFILE_PAYLOAD_JSON,
  PSARGS_LIMIT,
  type PythonIncident,
  REQUEST_LINE,
  STREAM_TITLE,
  truncateCopy,
  wrapAsDockerCp,
  wrapManyAsDockerCp,
} from './cores.ts';
import {
  escapeEre,
  gdbFacts,
  grepUrls,
  readelfNoteFiles,
  readelfNoteTypes,
  requireTool,
  runTool,
} from './reference-tools.ts';

/** Longer than the kernel keeps (PSARGS_LIMIT), so the core's copy must be cut short. */
const LONG_ARGS = [
  '--listen=127.0.0.1:8080',
  '--feeds=http://example.test/feeds/ok.xml,http://example.test/live/radio.mp3',
  '--workers=8',
];

let dir: string;

before(async () => {
  for (const tool of ['gcc', 'gdb', 'gcore', 'readelf', 'python3', 'grep', 'tar', 'gzip']) requireTool(tool);
  dir = await mkdtemp(join(tmpdir(), 'nightshift-fixtures-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function timed<T>(what: string, make: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const made = await make();
  console.log(`# made ${what} in ${Math.round(performance.now() - started)} ms`);
  return made;
}

async function countNotes(path: string, type: string): Promise<number> {
  return (await readelfNoteTypes(path)).filter((name) => name === type).length;
}

async function assertHeapUrl(core: CCore): Promise<void> {
  const urls = await grepUrls(core.path, escapeEre(core.heapUrl));
  assert.ok((urls.get(core.heapUrl) ?? 0) >= 1, `${core.heapUrl} not found in ${core.path}`);
}

describe('C cores', { concurrency: true }, () => {
  it('abort (kernel): SIGABRT, psargs cut at 80 bytes, heap string, NT_FILE maps the program', async () => {
    const core = await timed('C abort core (kernel)', () =>
      makeCCore(join(dir, 'c'), 'abort', { args: LONG_ARGS }),
    );
    assert.equal(core.via, 'kernel');
    assert.equal(core.signal, 6);
    const facts = await gdbFacts(core.executable, core.path);
    assert.equal(facts.signalName, 'SIGABRT');
    assert.equal(facts.signalDescription, 'Aborted');
    assert.equal(facts.threadCount, 1);
    assert.ok(facts.pc > 0n && facts.sp > 0n);
    const full = core.argv.join(' ');
    assert.ok(full.length > PSARGS_LIMIT, 'the test command line must exceed the psargs limit');
    assert.ok(
      facts.commandLine !== null && full.startsWith(facts.commandLine),
      `${facts.commandLine} vs ${full}`,
    );
    assert.ok(facts.commandLine.length < full.length && facts.commandLine.length <= PSARGS_LIMIT);

    const types = await readelfNoteTypes(core.path);
    for (const type of ['NT_PRSTATUS', 'NT_PRPSINFO', 'NT_SIGINFO', 'NT_AUXV', 'NT_FILE']) {
      assert.ok(types.includes(type), `${type} missing: ${types.join(', ')}`);
    }
    const files = await readelfNoteFiles(core.path);
    assert.equal(files[0]?.path, core.executable);
    assert.ok(files.some((file) => file.path.includes('libc.so')));
    assert.ok(files.every((file) => file.end > file.start));
    await assertHeapUrl(core);
  });

  it('segv (kernel): SIGSEGV', async () => {
    const core = await timed('C segv core (kernel)', () => makeCCore(join(dir, 'c'), 'segv'));
    assert.equal(core.signal, 11);
    const facts = await gdbFacts(core.executable, core.path);
    assert.equal(facts.signalName, 'SIGSEGV');
    assert.equal(facts.signalDescription, 'Segmentation fault');
    assert.equal(await countNotes(core.path, 'NT_PRSTATUS'), 1);
    await assertHeapUrl(core);
  });

  it('threads (kernel): 4 threads, one NT_PRSTATUS each', async () => {
    const core = await timed('C threads core (kernel)', () => makeCCore(join(dir, 'c'), 'threads'));
    const facts = await gdbFacts(core.executable, core.path);
    assert.equal(facts.signalName, 'SIGABRT');
    assert.equal(facts.threadCount, 4);
    assert.equal(facts.threads.filter((thread) => thread.current).length, 1);
    assert.equal(await countNotes(core.path, 'NT_PRSTATUS'), 4);
    await assertHeapUrl(core);
  });

  it('abort via gcore: a snapshot of a live process, which records no signal', async () => {
    const core = await timed('C abort core (gcore)', () =>
      makeCCore(join(dir, 'c'), 'abort', { via: 'gcore' }),
    );
    assert.equal(core.via, 'gcore');
    assert.equal(core.signal, 0);
    const facts = await gdbFacts(core.executable, core.path);
    assert.equal(facts.signalName, null, 'gcore sets pr_cursig 0, so gdb names no signal');
    assert.equal(facts.threadCount, 1);
    const types = await readelfNoteTypes(core.path);
    assert.ok(types.includes('NT_PRSTATUS') && types.includes('NT_FILE'), types.join(', '));
    assert.equal((await readelfNoteFiles(core.path))[0]?.path, core.executable);
    await assertHeapUrl(core);
  });
});

describe('the Python incident in miniature', () => {
  let incident: PythonIncident;

  before(async () => {
    incident = await timed('Python incident (3 workers, 2 on the stream)', () =>
      makePythonIncident(join(dir, 'incident'), { workers: 3, streamWorkers: 2 }),
    );
  });

  after(async () => {
    await incident?.close();
  });

  it('made one SIGABRT core per worker', { concurrency: true }, async () => {
    assert.equal(incident.cores.length, 3);
    assert.deepEqual(
      incident.cores.map((core) => core.streamWorker),
      [true, true, false],
    );
    await Promise.all(
      incident.cores.map(async (core) => {
        assert.equal(core.via, 'kernel');
        const facts = await gdbFacts(incident.python, core.path);
        assert.equal(facts.signalName, 'SIGABRT');
        assert.ok(facts.commandLine !== null && core.argv.join(' ').startsWith(facts.commandLine));
        const types = await readelfNoteTypes(core.path);
        assert.ok(types.includes('NT_PRSTATUS') && types.includes('NT_FILE'), types.join(', '));
      }),
    );
  });

  it('only the stream workers hold the stream URL; every worker holds the payload, request and secrets', async () => {
    const streamUrl = escapeEre(incident.streamUrl);
    const feedUrl = escapeEre(incident.feedUrl);
    for (const core of incident.cores) {
      const found = await grepUrls(core.path, `${streamUrl}|${feedUrl}`);
      if (core.streamWorker) {
        assert.ok((found.get(incident.streamUrl) ?? 0) >= 1, `${core.name}: ${[...found.keys()].join(', ')}`);
        assert.ok(!found.has(incident.feedUrl), `${core.name} holds the feed URL`);
        const title = await grepUrls(core.path, escapeEre(STREAM_TITLE));
        assert.ok(title.has(STREAM_TITLE), `${core.name} holds no ICY metadata`);
      } else {
        assert.ok(!found.has(incident.streamUrl), `${core.name} holds the stream URL`);
        assert.ok((found.get(incident.feedUrl) ?? 0) >= 1, `${core.name}: ${[...found.keys()].join(', ')}`);
      }
      for (const text of [PROFILE_PAYLOAD_JSON, REQUEST_LINE, ...Object.values(FAKE_SECRETS)]) {
        const hits = await grepUrls(core.path, escapeEre(text));
        assert.ok((hits.get(text) ?? 0) >= 1, `${core.name} does not hold ${text}`);
      }
    }
  });

  it('wraps cores as docker cp tar streams and cuts them short', async () => {
    const [first, second] = incident.cores;
    const tarPath = join(dir, 'web-1.core.tar.gz');
    await wrapAsDockerCp(first!.path, tarPath, { gzip: true, name: `core.${first!.pid}` });
    const listed = await runTool('tar', ['-tzvf', tarPath]);
    assert.match(
      listed.stdout,
      new RegExp(`^-rw------- .* ${(await stat(first!.path)).size} .* core\\.${first!.pid}$`, 'm'),
    );

    const manyPath = join(dir, 'crash.tar');
    await wrapManyAsDockerCp([first!.path, { path: second!.path, name: 'core.2' }], manyPath, {
      dir: 'crash',
    });
    const names = (await runTool('tar', ['-tf', manyPath])).stdout.trim().split('\n');
    assert.deepEqual(names, ['crash/', 'crash/core', 'crash/core.2']);

    const cut = await truncateCopy(first!.path, join(dir, 'cut.core'), 4096 + 100);
    assert.equal((await stat(cut)).size, 4196);
  });
});
