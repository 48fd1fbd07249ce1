import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createProposal, getProposal, getRun, type Proposal } from '../../src/approvals/service.ts';
import { systemClock } from '../../src/clock.ts';
import type { SshConnections } from '../../src/collect/ssh.ts';
import { openIncidentByHand } from '../../src/incidents/incidents.ts';
import { type RunnerDeps, runProposalJob } from '../../src/jobs/workers/run-proposal.ts';
import { createLogger } from '../../src/log.ts';
import { resolveSandboxUser, sandboxUserStatus } from '../../src/runners/sandbox-user.ts';
import type { Db } from '../../src/store/db.ts';
import { migrate } from '../../src/store/migrate.ts';
import { POSTGRES_URL, testDatabases } from '../helpers/db.ts';
import { APPROVER, approve, approvedProposal, approverPolicy } from '../helpers/proposals.ts';
import { connectionsTo, hostsBehind } from '../helpers/ssh-hosts.ts';
import { type Sshd, startSshd } from '../helpers/sshd.ts';
import { ensureTestUser } from '../helpers/users.ts';

/**
 * An approved script or query through the runner, end to end on the store: proposed, approved by
 * a button, run by runProposalJob (evidence scripts in the real bubblewrap sandbox, host scripts
 * over a real sshd, SQL on the real PostgreSQL), the run row, the audit trail, the redacted
 * result queued for the thread, and a second job that runs nothing.
 */
const policy = approverPolicy;
const TOKEN = 'xoxb-1234567890-abcdefghijkl';

interface Message {
  key: string;
  body: {
    type: string;
    text?: string;
    content?: string;
    filename?: string;
    comment?: string;
    blocks?: unknown[];
  };
}

for (const database of testDatabases()) {
  describe(`running approved proposals on ${database.name}`, () => {
    let db: Db;
    let work: string;
    let incidentId: number;
    let deps: RunnerDeps;
    const sent: string[] = [];

    before(async () => {
      db = await database.open();
      await migrate(db);
      work = mkdtempSync(join(tmpdir(), 'nightshift-run-proposal-'));
      ({
        incident: { id: incidentId },
      } = await openIncidentByHand(db, { host: 'web-1', note: 'radio', user: APPROVER, channel: 'C1' }));
      const evidence = join(work, 'evidence', `incident-${incidentId}`, 'run-1');
      mkdirSync(evidence, { recursive: true });
      writeFileSync(
        join(evidence, 'env.txt'),
        `ICY_URL=http://radio.example/live\nSLACK_BOT_TOKEN=${TOKEN}\n`,
      );
      deps = {
        db,
        log: createLogger({ level: 'silent' }),
        evidenceDir: join(work, 'evidence'),
        channel: '#incidents',
        send: async (queue) => {
          sent.push(queue);
        },
        now: () => new Date(),
        limits: { sandbox: { timeoutMs: 20_000 } },
      };
    });
    after(async () => {
      await db.close();
      rmSync(work, { recursive: true, force: true });
    });

    const approved = (kind: 'script' | 'sql', target: string, text: string): Promise<Proposal> =>
      approvedProposal(
        db,
        { incidentId, kind, target, text, why: 'test', proposedBy: 'agent' },
        '#incidents',
      );
    const audit = async (p: Proposal) =>
      (
        await db.executeSql<{ action: string }>(
          `SELECT action FROM audit_log WHERE subject->>'proposal' = $1 ORDER BY id`,
          [String(p.id)],
        )
      ).rows.map((r) => r.action);
    const messages = async (prefix: string): Promise<Message[]> =>
      (
        await db.executeSql<{ dedup_key: string; body: unknown }>(
          'SELECT dedup_key, body FROM thread_messages WHERE dedup_key LIKE $1 ORDER BY id',
          [`${prefix}%`],
        )
      ).rows.map((r) => ({
        key: r.dedup_key,
        body: (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as Message['body'],
      }));

    it('runs an approved evidence script once in the sandbox and posts its redacted output', async () => {
      const p = await approved('script', 'evidence', 'cat /evidence/run-1/env.txt; seq 1 20; pwd');
      await runProposalJob(deps, { proposalId: p.id });

      const run = await getRun(db, p.id);
      assert.ok(run);
      assert.equal(run.state, 'succeeded', run.error ?? '');
      assert.equal(run.exitCode, 0);
      assert.ok(run.outputBytes! > 60, `output bytes ${run.outputBytes}`);
      assert.equal((await getProposal(db, p.id))!.state, 'done');
      assert.deepEqual(await audit(p), [
        'proposal.created',
        'proposal.approved',
        'run.started',
        'run.finished',
        'run.result_posted',
      ]);

      const [reply, file] = await messages(`run:${run.id}:`);
      assert.equal(reply!.key, `run:${run.id}:result`);
      assert.equal(reply!.body.type, 'text');
      assert.match(
        reply!.body.text!,
        /^:white_check_mark: Script on the evidence \(proposal #\d+\): exit 0 in \d+\.\d s, \d+ B of output/,
      );
      assert.match(reply!.body.text!, /ICY_URL=http:\/\/radio\.example\/live/);
      assert.match(reply!.body.text!, /SLACK_BOT_TOKEN=\[REDACTED\]/);
      assert.match(reply!.body.text!, /run-\d+-output\.txt/);
      assert.equal(file!.key, `run:${run.id}:file`);
      assert.equal(file!.body.type, 'file');
      assert.equal(file!.body.filename, `run-${run.id}-output.txt`);
      assert.match(file!.body.content!, /\n20\n\/work\n$/);
      for (const m of [reply!, file!])
        assert.ok(!JSON.stringify(m.body).includes(TOKEN), 'the token is redacted');

      const [proposalMessage] = await messages(`proposal:${p.id}`);
      assert.match(JSON.stringify(proposalMessage!.body), /Done/);
      assert.match(JSON.stringify(proposalMessage!.body), /exit 0/);

      // The same job again (a retry, a second worker): nothing runs, nothing is posted twice.
      await runProposalJob(deps, { proposalId: p.id });
      assert.equal((await audit(p)).filter((a) => a === 'run.started').length, 1);
      assert.equal((await messages(`run:${run.id}:`)).length, 2);
      assert.equal((await getRun(db, p.id))!.id, run.id);
    });

    it('records a failing script as failed, with its exit code and a short reply', async () => {
      const p = await approved('script', 'evidence', 'echo looking; touch /evidence/x; exit 3');
      await runProposalJob(deps, { proposalId: p.id });
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed');
      assert.equal(run.exitCode, 3);
      assert.equal((await getProposal(db, p.id))!.state, 'failed');
      const replies = await messages(`run:${run.id}:`);
      assert.equal(replies.length, 1, 'short output: no file');
      assert.match(replies[0]!.body.text!, /^:x: .*exit 3/);
      assert.match(replies[0]!.body.text!, /Read-only file system/);
    });

    it('posts that an evidence script’s processes were killed at the memory limit of all of them', async () => {
      // Four processes of 200 MiB each: each fits its own address-space limit, not all of them 256 MiB.
      const p = await approved(
        'script',
        'evidence',
        `for i in 1 2 3 4; do python3 -c "
b = bytearray(200 * 2**20)
for i in range(0, len(b), 4096): b[i] = 1
print('held')" & done; wait; echo done`,
      );
      await runProposalJob(
        // As the bot sets it from NIGHTSHIFT_SANDBOX_MEMORY_MIB.
        { ...deps, sandboxLimits: { totalMemoryBytes: 256 * 1024 * 1024 } },
        { proposalId: p.id },
      );
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed', 'a script that lost processes at the limit did not run as written');
      const replies = await messages(`run:${run.id}:`);
      assert.match(
        replies[0]!.body.text!,
        /^:x: Script on the evidence \(proposal #\d+\): [^\n]*, \d+ process(es)? killed at the memory limit \(256\.0 MiB for all its processes\)/,
      );
      assert.ok(!replies[0]!.body.text!.includes('held\nheld\nheld\nheld'), 'not all four held their memory');
    });

    it('posts why an evidence script was not run where no cgroup can bound it', async () => {
      const p = await approved('script', 'evidence', 'echo ran');
      await runProposalJob(
        {
          ...deps,
          limits: { sandbox: { timeoutMs: 20_000, cgroup: { root: join(work, 'no-cgroup-fs') } } },
        },
        { proposalId: p.id },
      );
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed');
      const replies = await messages(`run:${run.id}:`);
      assert.equal(replies.length, 1);
      assert.match(
        replies[0]!.body.text!,
        /^:x: Script on the evidence \(proposal #\d+\): no cgroup can bound the script's memory and processes, so the script was not run: there is no cgroup file system at \S+no-cgroup-fs/,
      );
      assert.ok(!replies[0]!.body.text!.includes('ran'.concat('\n')), 'the script did not run');
    });

    it('runs an approved evidence script as NIGHTSHIFT_SANDBOX_USER, which reads the evidence and cannot write it', async () => {
      const user = await ensureTestUser();
      const sandboxUser = resolveSandboxUser(user.name);
      assert.deepEqual(sandboxUser, { uid: user.uid, gid: user.gid, label: user.name });
      // Evidence as a bot with UMask=0027 leaves it: 0640 root:root in 0700 directories.
      const evidenceRoot = deps.evidenceDir;
      const dir = join(evidenceRoot, `incident-${incidentId}`, 'run-2');
      mkdirSync(dir, { recursive: true });
      const secret = join(dir, 'core.strings');
      writeFileSync(secret, 'icy-name: Radio Nightly\n');
      for (const path of [evidenceRoot, join(evidenceRoot, `incident-${incidentId}`), dir])
        chmodSync(path, 0o700);
      chmodSync(secret, 0o640);
      const status = () => sandboxUserStatus({ spec: user.name, botUid: 0, evidenceDir: evidenceRoot });
      // The test's mkdtemp directory plays the data directory: the user must pass through it.
      chmodSync(work, 0o700);
      assert.equal((await status()).level, 'warn');
      assert.match((await status()).message, /cannot pass through .*chmod o\+x/);
      chmodSync(work, 0o711);
      assert.equal((await status()).level, 'ok');

      const p = await approved(
        'script',
        'evidence',
        'id -u; id -g; cat /evidence/run-2/core.strings; echo x >> /evidence/run-2/core.strings; echo "write $?"',
      );
      await runProposalJob({ ...deps, sandboxUser }, { proposalId: p.id });
      const run = (await getRun(db, p.id))!;
      const [reply] = await messages(`run:${run.id}:`);
      assert.match(
        reply!.body.text!,
        new RegExp(`\n${user.uid}\n${user.gid}\nicy-name: Radio Nightly\nwrite 2\n`),
        reply!.body.text,
      );
      assert.match(reply!.body.text!, /cannot create \/evidence\/run-2\/core\.strings: Permission denied/);
      assert.equal(readFileSync(secret, 'utf8'), 'icy-name: Radio Nightly\n');
      // Shared through the group, read-only: outside the sandbox too, the user cannot write it.
      assert.equal(statSync(secret).mode & 0o777, 0o640);
      assert.equal(statSync(secret).gid, user.gid);
      assert.equal(statSync(secret).uid, 0);
      assert.equal(statSync(evidenceRoot).mode & 0o777, 0o710);
      const write = spawnSync('/bin/sh', ['-c', `echo x >> ${secret}`], { uid: user.uid, gid: user.gid });
      assert.notEqual(write.status, 0);
      assert.match(String(write.stderr), /Permission denied/);
      assert.equal(readFileSync(secret, 'utf8'), 'icy-name: Radio Nightly\n');
      chmodSync(work, 0o700);
    });

    it('fails the run, running nothing, for a host that is not in the hosts file', async () => {
      const p = await approved('script', 'db-9', 'uptime');
      await runProposalJob(deps, { proposalId: p.id });
      const run = (await getRun(db, p.id))!;
      assert.equal(run.state, 'failed');
      assert.match(run.error!, /db-9 is not in the hosts file; nothing ran/);
      assert.deepEqual((await audit(p)).slice(-3), ['run.started', 'run.finished', 'run.result_posted']);
    });

    describe('SQL', { skip: POSTGRES_URL ? false : 'set DATABASE_URL' }, () => {
      const schema = `t_${randomBytes(6).toString('hex')}`;
      let admin: pg.Client;
      before(async () => {
        admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`CREATE SCHEMA ${schema}`);
        await admin.query(`CREATE TABLE ${schema}.sites (id int, name text, feed text, api_key text)`);
        await admin.query(
          `INSERT INTO ${schema}.sites VALUES (7, 'Radio, Nightly', 'http://radio.example/live', 'k-secret-123456')`,
        );
        deps = { ...deps, sqlDatabases: [{ name: 'reports', url: POSTGRES_URL! }] };
      });
      after(async () => {
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.end();
      });

      it('runs an approved query read-only and posts a summary and a redacted CSV', async () => {
        const p = await approved(
          'sql',
          'reports',
          `SELECT id, name, api_key FROM ${schema}.sites WHERE feed LIKE '%radio%'`,
        );
        await runProposalJob(deps, { proposalId: p.id });
        const run = (await getRun(db, p.id))!;
        assert.equal(run.state, 'succeeded', run.error ?? '');
        const [reply, file] = await messages(`run:${run.id}:`);
        assert.match(
          reply!.body.text!,
          /^:white_check_mark: SQL on reports \(proposal #\d+\): 1 row, 3 column\(s\)/,
        );
        assert.match(reply!.body.text!, /name: Radio, Nightly/);
        assert.equal(file!.body.type, 'file');
        assert.equal(file!.body.filename, `run-${run.id}-reports.csv`);
        assert.equal(file!.body.content, 'id,name,api_key\r\n7,"Radio, Nightly",[REDACTED]\r\n');
        for (const m of [reply!, file!]) {
          assert.ok(!JSON.stringify(m.body).includes('k-secret-123456'));
          assert.ok(!JSON.stringify(m.body).includes(POSTGRES_URL!));
        }
        assert.equal((await audit(p)).at(-1), 'run.result_posted');
      });

      it('re-checks the text before running: an approved DELETE is refused and nothing is deleted', async () => {
        const p = await approved('sql', 'reports', `DELETE FROM ${schema}.sites`);
        await runProposalJob(deps, { proposalId: p.id });
        const run = (await getRun(db, p.id))!;
        assert.equal(run.state, 'failed');
        assert.match(run.error!, /refused before running: DELETE writes; nothing ran/);
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.sites`);
        assert.equal(rows[0].n, 1);
      });

      it('fails a query on a database that is not configured', async () => {
        const p = await approved('sql', 'billing', 'SELECT 1');
        await runProposalJob(deps, { proposalId: p.id });
        assert.match((await getRun(db, p.id))!.error!, /no database named "billing" is configured/);
      });
    });
  });
}

describe('an approved host script over SSH', () => {
  let sshd: Sshd;
  let db: Db;
  let ssh: SshConnections;
  before(async () => {
    sshd = await startSshd();
    db = await testDatabases()[0]!.open();
    await migrate(db);
    ssh = connectionsTo(sshd, hostsBehind(sshd, [{ name: 'web-1' }]));
  });
  after(async () => {
    await ssh.closeAll();
    await db.close();
    await sshd.stop();
  });

  it('runs under nice with the output cap, once', async () => {
    const {
      incident: { id: incidentId },
    } = await openIncidentByHand(db, { host: 'web-1', note: '', user: APPROVER, channel: 'C1' });
    const p = await createProposal(
      db,
      {
        incidentId,
        kind: 'script',
        target: 'web-1',
        text: 'nice; echo on $(whoami); yes | head -c 100000',
        why: 't',
        proposedBy: 'agent',
      },
      policy,
      new Date(),
    );
    await approve(db, p);
    const deps: RunnerDeps = {
      now: systemClock,
      db,
      log: createLogger({ level: 'silent' }),
      evidenceDir: '/nonexistent',
      channel: '#incidents',
      send: async () => {},
      hosts: hostsBehind(sshd, [{ name: 'web-1' }]),
      ssh,
      limits: { host: { maxOutputBytes: 4096 } },
    };
    await runProposalJob(deps, { proposalId: p.id });
    await runProposalJob(deps, { proposalId: p.id });
    const run = (await getRun(db, p.id))!;
    assert.equal(run.state, 'failed', 'stopped at the output cap');
    assert.equal(run.outputBytes, 4096);
    const { rows } = await db.executeSql<{ dedup_key: string; body: unknown }>(
      `SELECT dedup_key, body FROM thread_messages WHERE dedup_key LIKE $1 ORDER BY id`,
      [`run:${run.id}:%`],
    );
    const text = JSON.stringify(rows.map((r) => r.body));
    assert.match(text, /Script on web-1/);
    assert.match(text, /stopped at the output cap \(4\.0 KiB\)/);
    assert.match(text, /19\\n/, 'nice reports the niceness the transport set');
    assert.match(text, new RegExp(`on ${sshd.user}`));
    const started = await db.executeSql<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_log WHERE action = 'run.started' AND subject->>'proposal' = $1`,
      [String(p.id)],
    );
    assert.equal(started.rows[0]!.n, 1);
  });
});
