/**
 * A real, unprivileged Unix user for the tests of the evidence sandbox's user
 * (NIGHTSHIFT_SANDBOX_USER): created with useradd on first use and reused after, as the sshd
 * fixture does for its login user. Needs root and useradd; a missing tool fails the test (CI
 * included), it never skips.
 */
import { spawnSync } from 'node:child_process';
import { requireTool, runTool } from './reference-tools.ts';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

/** Create `name` (a system user, no home, no login shell) unless it exists; its uid and gid. */
export async function ensureTestUser(name = 'nightshift-sandbox-test'): Promise<TestUser> {
  if (process.getuid?.() !== 0) throw new Error('creating a test user needs root (useradd)');
  for (const tool of ['useradd', 'getent']) requireTool(tool);
  // Test processes may race to create it; useradd takes a lock on /etc/passwd and fails while another holds it.
  for (let attempt = 1; ; attempt++) {
    try {
      if (getent(name) === null)
        await runTool('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
      const fields = getent(name)?.split(':');
      if (fields === undefined) throw new Error(`${name} vanished from /etc/passwd`);
      return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
    } catch (error) {
      if (attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
    }
  }
}

function getent(name: string): string | null {
  const result = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}
