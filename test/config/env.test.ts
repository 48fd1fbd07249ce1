import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/env.ts';
import { CodedError } from '../../src/errors.ts';

describe('loadConfig', () => {
  it('runs on nothing: embedded store, no Slack, agent off, port 3000', () => {
    const config = loadConfig({});
    assert.equal(config.DATABASE_URL, undefined);
    assert.equal(config.NIGHTSHIFT_DATA_DIR, '.nightshift/data');
    assert.equal(config.DATABASE_SCHEMA, 'nightshift');
    assert.equal(config.INCIDENT_CHANNEL, '#incidents');
    assert.equal(config.PORT, 3000);
    assert.equal(config.SLACK_BOT_TOKEN, undefined);
    assert.equal(config.ANTHROPIC_API_KEY, undefined);
  });

  it('treats empty variables as unset', () => {
    assert.equal(loadConfig({ DATABASE_URL: '', PORT: ' ' }).PORT, 3000);
  });

  it('names every wrong variable, and never echoes a value', () => {
    const secret = 'xoxp-user-token-that-is-secret';
    try {
      loadConfig({
        SLACK_BOT_TOKEN: secret,
        PORT: '70000',
        DATABASE_URL: 'mysql://db',
        SLACK_SIGNING_SECRET: 'short',
      });
      assert.fail('accepted a bad configuration');
    } catch (error) {
      assert.ok(error instanceof CodedError);
      assert.equal(error.code, 'nightshift_config_invalid');
      assert.match(error.message, /SLACK_BOT_TOKEN: must be a bot token, starting with xoxb-/);
      assert.match(error.message, /PORT: must be a port number/);
      assert.match(error.message, /DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/);
      assert.match(error.message, /SLACK_SIGNING_SECRET: must be the 32 hex characters/);
      assert.ok(!error.message.includes(secret));
    }
  });

  it('says HTTP mode needs the signing secret', () => {
    assert.throws(
      () => loadConfig({ SLACK_BOT_TOKEN: 'xoxb-1' }),
      /neither SLACK_SIGNING_SECRET \(HTTP mode\) nor SLACK_APP_TOKEN/,
    );
  });

  it('says Socket Mode needs the bot token too', () => {
    assert.throws(
      () => loadConfig({ SLACK_APP_TOKEN: 'xapp-1-abc' }),
      /SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not/,
    );
  });

  it('takes NIGHTSHIFT_SANDBOX_USER as a user name or uid[:gid]; it is resolved at start', () => {
    assert.equal(loadConfig({}).NIGHTSHIFT_SANDBOX_USER, undefined);
    for (const spec of ['nightshift-sandbox', '1500', '1500:1500', '_sandbox'])
      assert.equal(loadConfig({ NIGHTSHIFT_SANDBOX_USER: ` ${spec} ` }).NIGHTSHIFT_SANDBOX_USER, spec);
    for (const spec of ['1500:', ':1500', 'a b', '-u', '../x'])
      assert.throws(
        () => loadConfig({ NIGHTSHIFT_SANDBOX_USER: spec }),
        /NIGHTSHIFT_SANDBOX_USER: must be a user name or uid\[:gid\]/,
        spec,
      );
  });

  it('takes the bounds on all of an evidence script’s processes, 1 GiB and 128 by default', () => {
    const defaults = loadConfig({});
    assert.equal(defaults.NIGHTSHIFT_SANDBOX_MEMORY_MIB, 1024);
    assert.equal(defaults.NIGHTSHIFT_SANDBOX_PROCESSES, 128);
    assert.equal(defaults.NIGHTSHIFT_SANDBOX_CGROUP, undefined);
    const set = loadConfig({
      NIGHTSHIFT_SANDBOX_MEMORY_MIB: '512',
      NIGHTSHIFT_SANDBOX_PROCESSES: '64',
      NIGHTSHIFT_SANDBOX_CGROUP: '/nightshift',
    });
    assert.equal(set.NIGHTSHIFT_SANDBOX_MEMORY_MIB, 512);
    assert.equal(set.NIGHTSHIFT_SANDBOX_PROCESSES, 64);
    assert.equal(set.NIGHTSHIFT_SANDBOX_CGROUP, '/nightshift');
    assert.throws(
      () => loadConfig({ NIGHTSHIFT_SANDBOX_MEMORY_MIB: '1g' }),
      /NIGHTSHIFT_SANDBOX_MEMORY_MIB: must be/,
    );
    assert.throws(
      () => loadConfig({ NIGHTSHIFT_SANDBOX_PROCESSES: '2' }),
      /NIGHTSHIFT_SANDBOX_PROCESSES: must be/,
    );
    for (const path of ['nightshift', '/a/../b'])
      assert.throws(
        () => loadConfig({ NIGHTSHIFT_SANDBOX_CGROUP: path }),
        /NIGHTSHIFT_SANDBOX_CGROUP: must be/,
      );
  });
});
