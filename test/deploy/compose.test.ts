import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { EnvSchema } from '../../src/config/env.ts';
import { loadSettings } from '../../src/config/settings.ts';
import { ErrorCode } from '../../src/errors.ts';

/**
 * compose.yaml, checked as far as a machine without a compose engine allows (no `docker compose`
 * plugin here, no registry for postgres:16): read as compose reads it, with deploy/compose.env.example
 * as its .env, the bot's service gets an environment `serve` accepts (the schema `serve` and
 * `doctor` load, src/config/settings.ts), a DATABASE_URL naming the PostgreSQL service it waits
 * for, and the port, volume and build argument the Containerfile has.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const composeText = readFileSync(join(root, 'compose.yaml'), 'utf8');
const exampleEnv = readFileSync(join(root, 'deploy/compose.env.example'), 'utf8');
const containerfile = readFileSync(join(root, 'Containerfile'), 'utf8');

/** KEY=VALUE lines of a .env file, as compose reads them (no quotes in ours). */
function envFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  return vars;
}

/** Compose's interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (all, name, colon, op, arg) => {
      if (all === '$$') return '$';
      const value = vars[name as string];
      const missing = value === undefined || (colon === ':' && value === '');
      if (op === '?' && missing) throw new Error(`compose: ${name}: ${arg}`);
      if (op === '-' && missing) return arg as string;
      return value ?? '';
    },
  );
}

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
  volumes?: string[];
}

/** The compose file as the engine sees it with these .env variables: parsed, then each string interpolated. */
function composeWith(vars: Record<string, string>): { services: Record<string, Service> } {
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') return interpolate(node, vars);
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object')
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, walk(value)]));
    return node;
  };
  return walk(parse(composeText)) as { services: Record<string, Service> };
}

/** ENV NAME=VALUE pairs of the Containerfile's last stage (the image that runs). */
function imageEnv(): Record<string, string> {
  const last = containerfile.slice(containerfile.lastIndexOf('\nFROM '));
  const pairs: Record<string, string> = {};
  for (const env of last.matchAll(/\nENV ((?:[^\n]*\\\n)*[^\n]*)/g))
    for (const m of env[1]!.matchAll(/([A-Z_]+)=(\S+)/g)) pairs[m[1]!] = m[2]!;
  return pairs;
}

describe('compose.yaml', () => {
  const vars = envFile(exampleEnv);

  it('gives the bot an environment serve accepts, with the example .env', () => {
    const bot = composeWith(vars).services.nightshift!;
    const env = bot.environment!;
    const settings = loadSettings(env);
    assert.equal(settings.config.SLACK_BOT_TOKEN, vars.SLACK_BOT_TOKEN);
    assert.deepEqual(settings.policy.approvers.users, [vars.NIGHTSHIFT_APPROVERS]);
    // Every variable it sets is one serve reads: a misspelt name would be ignored silently.
    const known = new Set(Object.keys(EnvSchema.shape));
    for (const name of Object.keys(env)) assert.ok(known.has(name), `${name} is not a variable serve reads`);
  });

  it('is what serve checks: a wrong approver in .env is refused, and naming the variable', () => {
    const bot = composeWith({ ...vars, NIGHTSHIFT_APPROVERS: 'bob' }).services.nightshift!;
    assert.throws(
      () => loadSettings(bot.environment!),
      (error: { code?: string; message: string }) =>
        error.code === ErrorCode.ConfigInvalid && /NIGHTSHIFT_APPROVERS/.test(error.message),
    );
  });

  it('stops without POSTGRES_PASSWORD, naming it', () => {
    const { POSTGRES_PASSWORD: _, ...without } = vars;
    assert.throws(() => composeWith(without), /POSTGRES_PASSWORD: set POSTGRES_PASSWORD in \.env/);
  });

  it('points DATABASE_URL at the PostgreSQL service, its role and database, once it is healthy', () => {
    const { services } = composeWith(vars);
    const url = new URL(services.nightshift!.environment!.DATABASE_URL!);
    const postgres = services[url.hostname];
    assert.ok(postgres, `no service named ${url.hostname}`);
    assert.match(postgres.image!, /postgres:1[5-9]/);
    assert.equal(url.username, postgres.environment!.POSTGRES_USER);
    assert.equal(url.password, vars.POSTGRES_PASSWORD);
    assert.equal(url.pathname, `/${postgres.environment!.POSTGRES_DB}`);
    assert.equal(url.port, '5432');
    assert.match(postgres.healthcheck!.test.join(' '), /pg_isready/);
    assert.deepEqual(services.nightshift!.depends_on, { [url.hostname]: { condition: 'service_healthy' } });
  });

  it('matches the Containerfile: its build argument, port, and data volume', () => {
    const bot = composeWith(vars).services.nightshift!;
    assert.ok(existsSync(join(root, bot.build!.context, bot.build!.dockerfile)));
    const args = [...containerfile.matchAll(/^ARG ([A-Z_]+)/gm)].map((m) => m[1]);
    for (const arg of Object.keys(bot.build!.args ?? {})) assert.ok(args.includes(arg), `no ARG ${arg}`);
    const image = imageEnv();
    assert.equal(bot.environment!.PORT, image.PORT);
    assert.deepEqual(bot.ports, [`3000:${image.PORT}`]);
    assert.match(containerfile, new RegExp(`^EXPOSE ${image.PORT}$`, 'm'));
    const [volume] = bot.volumes!;
    const target = volume!.split(':')[1]!;
    assert.match(containerfile, new RegExp(`^VOLUME ${target}$`, 'm'));
    assert.ok(image.NIGHTSHIFT_DATA_DIR!.startsWith(`${target}/`), 'the data directory is in the volume');
  });
});
