import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { runCli } from '../../src/cli/index.ts';
import type { CliIo } from '../../src/cli/io.ts';

/** The CLI's conventions: --version, help <command>, usage errors that name the flag. */

const root = new URL('../../', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

async function cli(argv: string[], env: Record<string, string | undefined> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const status = await runCli(argv, { stdout, stderr } as unknown as CliIo, env);
  return { status, stdout: out, stderr: err };
}

describe('the nightshift command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-cli-entry-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints its version for --version, -v and version, from package.json', async () => {
    for (const flag of ['--version', '-v', 'version']) {
      const run = await cli([flag]);
      assert.deepEqual(run, { status: 0, stdout: `nightshift ${version}\n`, stderr: '' }, flag);
    }
    const bin = spawnSync(join(root, 'bin/nightshift'), ['--version'], { encoding: 'utf8' });
    assert.equal(bin.stdout, `nightshift ${version}\n`);
    assert.equal(bin.status, 0);
  });

  it('prints a command’s own help for help <command>, the same as <command> --help', async () => {
    for (const command of ['analyze', 'collect', 'doctor', 'serve', 'migrate']) {
      const help = await cli(['help', command]);
      assert.equal(help.status, 0);
      assert.match(help.stdout, new RegExp(`^Usage: nightshift ${command}`));
      assert.equal(help.stdout, (await cli([command, '--help'])).stdout);
    }
    assert.match((await cli(['help'])).stdout, /^Usage: nightshift <command>/);
    const unknown = await cli(['help', 'analyse']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /help: no command "analyse" \(they are: analyze, migrate/);
  });

  it('names the flag that is wrong, and shows that command’s help', async () => {
    const workers = await cli(['analyze', '--workers', 'examples/']);
    assert.equal(workers.status, 2);
    assert.match(
      workers.stderr,
      /^nightshift: --workers must be a whole number from 0 to 64, got "examples\/"/,
    );
    assert.match(workers.stderr, /--workers takes a value/);
    assert.match(workers.stderr, /Usage: nightshift analyze/);
    assert.match((await cli(['analyze', '--workers', '2x', 'examples/'])).stderr, /--workers must be/);
    const unknown = await cli(['analyze', '--jsn', 'examples/']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /'--jsn'/);
    const collect = await cli(['collect', '--frobnicate', 'web-1']);
    assert.match(collect.stderr, /'--frobnicate'/);
    assert.match(collect.stderr, /Usage: nightshift collect/);
  });

  it('says a directory holds no core files, by name, and exits 1', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(join(empty, 'nested'), { recursive: true });
    const run = await cli(['analyze', '--no-progress', empty]);
    assert.equal(run.status, 1);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `nightshift: no core files found in ${empty}\n`);
    // Beside a directory that holds one, written as ./relative paths: only the empty one is named.
    const full = join(dir, 'full');
    mkdirSync(full);
    copyFileSync(join(root, 'examples/crash-abort.core.30457.gz'), join(full, 'core.gz'));
    const rel = (path: string) => `./${relative(process.cwd(), path)}`;
    const mixed = await cli([
      'analyze',
      '--no-progress',
      '--workers',
      '0',
      rel(full),
      rel(join(empty, 'nested')),
    ]);
    assert.equal(mixed.status, 0, mixed.stderr);
    assert.match(mixed.stdout, /^Nightshift: 1 dump analysed/);
    assert.equal(mixed.stderr, `nightshift: no core files found in ${rel(join(empty, 'nested'))}\n`);
  });

  it('refuses collect --into without --pull, naming both', async () => {
    const run = await cli(['collect', '--into', dir, 'web-1']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--into DIR says where --pull puts the cores: add --pull/);
  });

  it('says once, on stderr, that a host’s key file cannot be read', async () => {
    const hosts = join(dir, 'hosts.json');
    writeFileSync(
      hosts,
      JSON.stringify({
        hosts: [{ name: 'web-1', address: '127.0.0.1', port: 1, user: 'ops', key: join(dir, 'no-such-key') }],
        knownHosts: join(dir, 'known_hosts'),
      }),
    );
    const run = await cli(['collect', 'web-1'], { NIGHTSHIFT_HOSTS: hosts, NIGHTSHIFT_DATA_DIR: dir });
    assert.equal(run.status, 1);
    assert.equal(run.stdout, '', 'no "0 findings" report');
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0]!,
      /^nightshift: could not collect: cannot connect to web-1: cannot read its SSH key .*no-such-key \(ENOENT\)$/,
    );
  });
});
