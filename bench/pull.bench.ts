/**
 * Streaming evidence home over SSH, measured: `npm run bench:pull`.
 *
 * The same 1 GiB file (BENCH_PULL_MIB), pulled from a real OpenSSH server on loopback:
 *   1. by the bot with gzip: pullFile (remote `gzip -1 < file`, ssh2, local gunzip, sha256,
 *      .part → rename);
 *   2. by the bot as it runs by default, with zstd -1 where the host has it;
 *   3. by the plain pipeline an SRE would type: `ssh host "gzip -1 < file" | gunzip > out`;
 *   4. 8 files at once by the bot (parallel channels on one connection) versus that pipeline run
 *      8 times in sequence.
 * Goals: the bot within 1.1× of the pipeline with gzip, faster than it with zstd. The file is half
 * random, half zeros, so the compressor has work to do but the link is not idle. Remote
 * compression is the expected bottleneck.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/clock.ts';
import { parseKnownHosts } from '../src/collect/known-hosts.ts';
import { pullFile } from '../src/collect/pull.ts';
import { SshConnections } from '../src/collect/ssh.ts';
import { parseHostsFile } from '../src/config/hosts.ts';
import { createLogger } from '../src/log.ts';
import { startSshd } from '../test/helpers/sshd.ts';

const MIB = Number(process.env.BENCH_PULL_MIB ?? 1024);
const work = mkdtempSync(join(tmpdir(), 'nightshift-bench-pull-'));
chmodSync(work, 0o755);
const source = join(work, 'core.bin');
execFileSync('sh', [
  '-c',
  `{ head -c ${(MIB / 2) * 1048576} /dev/urandom; head -c ${(MIB / 2) * 1048576} /dev/zero; } > ${source} && chmod 644 ${source}`,
]);
const sshd = await startSshd({ binDir: work });
const hosts = parseHostsFile(
  JSON.stringify({
    hosts: [
      {
        name: 'box',
        address: sshd.host,
        port: sshd.port,
        user: sshd.user,
        key: sshd.privateKeyPath,
        maxSessions: 8,
      },
    ],
  }),
  'hosts.json',
);
const ssh = new SshConnections({
  now: systemClock,
  hosts,
  knownHosts: parseKnownHosts(sshd.knownHostsLine),
  log: createLogger({ level: 'silent' }),
});

function pipeline(out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'sh',
      [
        '-c',
        `ssh -i ${sshd.privateKeyPath} -o UserKnownHostsFile=${sshd.knownHostsPath} -o StrictHostKeyChecking=yes -p ${sshd.port} ${sshd.user}@127.0.0.1 "gzip -1 < ${source}" | gunzip > ${out}`,
      ],
      { stdio: 'inherit' },
    );
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pipeline exited ${code}`))));
  });
}

async function time(what: string, work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${what.padEnd(44)} ${seconds.toFixed(2)} s  ${((MIB * 1.048576) / seconds).toFixed(0)} MB/s per file`,
  );
  return seconds;
}

try {
  console.log(
    `file: ${MIB} MiB (half random, half zeros), loopback OpenSSH ${execFileSync('ssh', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || ''}`,
  );
  await pullFile(ssh.host('box'), { path: source }, join(work, 'warm'));
  const runs: Array<[number, number, number]> = [];
  let zstd = false;
  for (let i = 0; i < 3; i++) {
    const gzip = await time('bot: pullFile, gzip -1', () =>
      pullFile(ssh.host('box'), { path: source }, join(work, `bot-${i}`), { compression: 'gzip' }),
    );
    const auto = await time('bot: pullFile, as the host allows (zstd -1)', async () => {
      zstd =
        (await pullFile(ssh.host('box'), { path: source }, join(work, `auto-${i}`))).compression === 'zstd';
    });
    const plain = await time('ssh "gzip -1 < f" | gunzip > out', () => pipeline(join(work, `plain-${i}`)));
    runs.push([gzip, auto, plain]);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
  const plain = median(runs.map((r) => r[2]));
  const gzipRatio = median(runs.map((r) => r[0])) / plain;
  const autoRatio = median(runs.map((r) => r[1])) / plain;
  console.log(`bot with gzip / pipeline (median of 3): ${gzipRatio.toFixed(2)}×`);
  console.log(
    `${gzipRatio <= 1.1 ? 'PASS' : 'FAIL'}  the bot with gzip within 1.1× of the ssh | gunzip pipeline`,
  );
  console.log(
    `bot with ${zstd ? 'zstd' : 'gzip (no zstd on the host)'} / pipeline (median of 3): ${autoRatio.toFixed(2)}×`,
  );
  if (zstd)
    console.log(`${autoRatio < 1 ? 'PASS' : 'FAIL'}  the bot with zstd faster than the gzip pipeline`);
  const parallel = await time('bot: 8 files at once (parallel channels)', () =>
    Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        pullFile(ssh.host('box'), { path: source }, join(work, `par-${i}`)),
      ),
    ),
  );
  const sequence = await time('pipeline: 8 files one after another', async () => {
    for (let i = 0; i < 8; i++) await pipeline(join(work, `seq-${i}`));
  });
  console.log(
    `8 at once / 8 in sequence: ${(parallel / sequence).toFixed(2)}× (2 cores: remote gzip and local gunzip share them)`,
  );
} finally {
  await ssh.closeAll();
  await sshd.stop();
  rmSync(work, { recursive: true, force: true });
}
