import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/clock.ts';
import { ErrorCode } from '../../src/errors.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { failedMarker, followFile } from '../../src/evidence/follow.ts';
import { makePythonIncident, type PythonIncident } from '../helpers/cores.ts';

/**
 * Following a file as a pull writes it (`<path>.part`, renamed to `<path>` when whole, or a
 * `<path>.failed` marker), and the analysis of files read that way: the same report as the files
 * read once they are in, with the headline so far before the last one.
 */

async function collect(path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of followFile(path, { pollMs: 10 })) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Writes `data` to `<dest>.part` in `pieces`, pausing between them, then renames it as a pull does. */
async function writeLikeAPull(dest: string, data: Buffer, pieces: number, pauseMs: number) {
  const step = Math.ceil(data.length / pieces);
  await writeFile(`${dest}.part`, '');
  for (let at = 0; at < data.length; at += step) {
    await appendFile(`${dest}.part`, data.subarray(at, at + step));
    await sleep(pauseMs);
  }
  await rename(`${dest}.part`, dest);
}

describe('following a file as it is pulled', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nightshift-follow-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads every byte of a file written in pieces, and ends when it is renamed whole', async () => {
    const dest = join(dir, 'a.core');
    const data = Buffer.from(Array.from({ length: 50_000 }, (_, i) => `line ${i}\n`).join(''));
    const [read] = await Promise.all([collect(dest), writeLikeAPull(dest, data, 20, 15)]);
    assert.equal(read.length, data.length);
    assert.ok(read.equals(data));
  });

  it('reads a file that was whole before it looked', async () => {
    const dest = join(dir, 'b.core');
    await writeFile(dest, 'already here');
    assert.equal((await collect(dest)).toString(), 'already here');
  });

  it('says a pull that failed midway cut the file short, with the pull’s reason', async () => {
    const dest = join(dir, 'c.core');
    const reading = collect(dest);
    await writeFile(`${dest}.part`, 'some bytes');
    await sleep(50);
    await unlink(`${dest}.part`);
    await writeFile(failedMarker(dest), 'the connection dropped');
    await assert.rejects(reading, (error: { code: string; message: string }) => {
      assert.equal(error.code, ErrorCode.EvidenceIncomplete);
      assert.match(error.message, /stopped after 10 bytes.*cut short.*the connection dropped/);
      return true;
    });
  });

  it('says a pull that failed before any byte did', async () => {
    const dest = join(dir, 'd.core');
    const reading = collect(dest);
    await sleep(30);
    await writeFile(failedMarker(dest), 'less than 1073741824 bytes free on the bot’s disk');
    await assert.rejects(reading, /before any byte arrived: less than/);
  });

  it('says when the pull started again from the first byte', async () => {
    const dest = join(dir, 'e.core');
    const reading = collect(dest);
    await writeFile(`${dest}.part`, 'first try');
    await sleep(50);
    await unlink(`${dest}.part`);
    await writeFile(`${dest}.part`, 'second');
    await assert.rejects(reading, (error: { code: string }) => error.code === ErrorCode.FollowRestarted);
  });
});

describe('analysing cores as they are pulled', () => {
  let incident: PythonIncident;
  let coresDir: string;
  let dir: string;
  before(async () => {
    coresDir = await mkdtemp(join(tmpdir(), 'nightshift-follow-made-'));
    incident = await makePythonIncident(coresDir);
    dir = await mkdtemp(join(tmpdir(), 'nightshift-follow-cores-'));
  });
  after(async () => {
    await incident?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(coresDir, { recursive: true, force: true });
  });

  it('finds what the files read whole find, posts the headline so far, and names a failed pull', async () => {
    const whole = await analyzeFiles(
      incident.cores.map((c) => c.path),
      { now: systemClock, workers: 2 },
    );
    const dests = incident.cores.map((_, i) => join(dir, `core.${i}`));
    const partials: Array<{ headline: string | undefined; filesDone: number }> = [];
    const analysing = analyzeFiles([...dests, join(dir, 'lost.core')], {
      now: systemClock,
      workers: 2,
      follow: true,
      partialEveryMs: 0,
      onPartial: ({ headline, filesDone }) => partials.push({ headline, filesDone }),
    });
    // One after another, as the manual loop would; the analysis reads each as it lands.
    for (const [i, core] of incident.cores.entries())
      await writeLikeAPull(dests[i]!, await readFile(core.path), 8, 5);
    await writeFile(failedMarker(join(dir, 'lost.core')), 'the remote command failed (1): no such container');
    const followed = await analysing;
    assert.equal(followed.dumps.length, whole.dumps.length);
    assert.deepEqual(
      followed.findings.map((f) => f.title),
      whole.findings.map((f) => f.title),
    );
    assert.match(followed.findings[0]!.title, new RegExp(`in 6 of 8 dumps: ${incident.streamUrl}`));
    const lost = followed.errors.find((e) => e.file.endsWith('lost.core'));
    assert.equal(lost?.code, ErrorCode.EvidenceIncomplete);
    assert.match(lost?.message ?? '', /no such container/);
    // Before the last file: a headline on part of the set, growing with it; after it, the headline
    // of all of them, before the counts are made exact (each file's once, the failed one too).
    assert.equal(partials.length, dests.length + 1, JSON.stringify(partials));
    assert.ok(partials.some((p) => p.headline && /Likely endless stream in \d of \d dumps/.test(p.headline)));
    const last = partials.at(-1)!;
    assert.equal(last.filesDone, dests.length + 1);
    assert.match(last.headline ?? '', new RegExp(`in 6 of 8 dumps: ${incident.streamUrl}`));
  });

  it("makes a headline so far at most every partialEveryMs, and always the last file's", async () => {
    // A clock a second further on each time it is read: files end 1 s apart.
    let seconds = 0;
    const done: number[] = [];
    await analyzeFiles(
      incident.cores.map((c) => c.path),
      {
        now: () => new Date(1_764_750_000_000 + 1000 * seconds++),
        workers: 2,
        partialEveryMs: 2500,
        onPartial: ({ filesDone }) => done.push(filesDone),
      },
    );
    assert.deepEqual(done, [1, 4, 7, 8]);
  });
});
