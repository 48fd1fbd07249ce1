import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SANDBOX_USER_SPEC } from '../config/env.ts';
import { CodedError, ErrorCode } from '../errors.ts';

/**
 * The user evidence scripts run as (NIGHTSHIFT_SANDBOX_USER): a user name, or a uid with an
 * optional gid (`1500`, `1500:1500`). A bot running as root that sets none runs approved scripts
 * as root inside bubblewrap, where RLIMIT_NPROC does not hold and a sandbox escape is root.
 *
 * The user reads the evidence through its group: before a script runs, the incident's evidence is
 * given the user's primary group, directories 0750 and files 0640 (the group reads, never
 * writes), and the evidence root 0710 (the group passes through, it cannot list other incidents).
 * Node starts the sandbox with setgroups(0) and the user's uid and primary gid, so the primary
 * group is the only one that counts.
 */

export interface SandboxUser {
  uid: number;
  gid: number;
  /** What NIGHTSHIFT_SANDBOX_USER said, for messages. */
  label: string;
}

/** Looks up a user's uid and primary gid by name or uid; undefined when there is no such user. */
export type UserLookup = (user: string) => { uid: number; gid: number } | undefined;

/** The system's answer, through `id` (so NSS users, LDAP included, are found too). */
export const lookupWithId: UserLookup = (user) => {
  try {
    const id = (flag: string) =>
      Number(
        execFileSync('id', [flag, '--', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
      );
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
};

/**
 * uid and gid for NIGHTSHIFT_SANDBOX_USER. A name must exist; a uid alone takes its user's
 * primary group, so it must exist too; uid:gid is taken as given (a uid without a passwd entry is
 * fine there). Root (uid 0 or gid 0) is refused: it would undo the point.
 */
export function resolveSandboxUser(spec: string, lookup: UserLookup = lookupWithId): SandboxUser {
  const m = SANDBOX_USER_SPEC.exec(spec.trim());
  if (!m?.groups)
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      `NIGHTSHIFT_SANDBOX_USER must be a user name or uid[:gid], not "${spec}"`,
    );
  const { name, uid, gid } = m.groups;
  let user: { uid: number; gid: number };
  if (uid !== undefined && gid !== undefined) user = { uid: Number(uid), gid: Number(gid) };
  else {
    const found = lookup(name ?? uid!);
    if (!found)
      throw new CodedError(
        ErrorCode.ConfigInvalid,
        name !== undefined
          ? `NIGHTSHIFT_SANDBOX_USER: there is no user named ${name} on this host; create one (useradd --system --no-create-home --shell /usr/sbin/nologin ${name}) or name another`
          : `NIGHTSHIFT_SANDBOX_USER: uid ${uid} has no user on this host, so its group is unknown; give it as ${uid}:<gid>`,
      );
    user = found;
  }
  if (user.uid === 0 || user.gid === 0)
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      `NIGHTSHIFT_SANDBOX_USER: ${spec} is root (uid ${user.uid}, gid ${user.gid}); name an unprivileged user`,
    );
  if (user.uid > 0xfffffffe || user.gid > 0xfffffffe)
    throw new CodedError(ErrorCode.ConfigInvalid, `NIGHTSHIFT_SANDBOX_USER: ${spec} is out of range`);
  return { ...user, label: spec.trim() };
}

/**
 * The sandbox user the bot can use, or an error saying why not: only root can start a process as
 * another user.
 */
export function checkCanSwitch(user: SandboxUser, botUid: number | undefined): void {
  if (botUid !== 0 && botUid !== user.uid)
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      `NIGHTSHIFT_SANDBOX_USER is ${user.label} (uid ${user.uid}), but the bot runs as uid ${botUid}, not root, and cannot start scripts as another user; unset it, or run the bot as root`,
    );
}

/** Other accounts in a group: those whose primary group it is, and its listed members. */
export type GroupSharers = (gid: number, except: number) => string[];

/** The system's answer, through `getent` (so NSS groups are seen too). */
export const groupSharersWithGetent: GroupSharers = (gid, except) => {
  const lines = (db: string, ...keys: string[]) => {
    try {
      return execFileSync('getent', [db, ...keys], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .filter(Boolean);
    } catch {
      return [];
    }
  };
  const others = new Set<string>();
  for (const line of lines('passwd')) {
    const [name, , uid, pgid] = line.split(':');
    if (Number(pgid) === gid && Number(uid) !== except && name) others.add(name);
  }
  const [group] = lines('group', String(gid));
  for (const member of group?.split(':')[3]?.split(',') ?? []) if (member) others.add(member);
  for (const line of lines('passwd')) {
    const [name, , uid] = line.split(':');
    if (Number(uid) === except && name) others.delete(name);
  }
  return [...others];
};

/** uid and gid 65534: nobody and nogroup, which other daemons run as too. */
const NOBODY = 65_534;

const run = promisify(execFile);

/** Whether `user` can pass through `dir` (search permission on it and everything above it). */
export async function userCanSearch(dir: string, user: SandboxUser): Promise<boolean> {
  try {
    await run('test', ['-d', dir, '-a', '-x', dir], {
      uid: user.uid,
      gid: user.gid,
      env: { PATH: '/usr/bin:/bin' },
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * Gives `user`'s group read access (no write) to one incident's evidence and passage through the
 * evidence root: the root becomes group-owned, 0710; the incident's directories 0750 and files
 * 0640, their owner unchanged. Symlinks are left alone (the sandbox does not follow them out of
 * /evidence anyway). Call it as root, before each run: evidence pulled before the setting
 * existed, or written under a strict umask (0640 root:root), becomes readable.
 */
export async function shareEvidence(
  evidenceRoot: string,
  incidentDir: string,
  user: SandboxUser,
): Promise<void> {
  await chown(evidenceRoot, -1, user.gid);
  await chmod(evidenceRoot, 0o710);
  const walk = async (path: string): Promise<void> => {
    const stat = await lstat(path);
    if (stat.isSymbolicLink()) return;
    if (stat.gid !== user.gid) await chown(path, -1, user.gid);
    const mode = stat.isDirectory() ? 0o750 : 0o640;
    if ((stat.mode & 0o7777) !== mode) await chmod(path, mode);
    if (stat.isDirectory()) for (const entry of await readdir(path)) await walk(join(path, entry));
  };
  await walk(incidentDir);
}

export type SandboxUserStatus =
  | { level: 'ok'; user?: SandboxUser; message: string }
  | { level: 'warn'; user?: SandboxUser; message: string }
  | { level: 'fail'; message: string };

/**
 * What start-up and `nightshift doctor` say about NIGHTSHIFT_SANDBOX_USER: the user it resolves
 * to and whether the bot can use it, a warning for a root bot without one, or why it cannot be
 * used. `evidenceDir` is the evidence root; the sandbox user must pass through the directory above it.
 */
export async function sandboxUserStatus(options: {
  spec: string | undefined;
  botUid: number | undefined;
  evidenceDir: string;
  lookup?: UserLookup;
  sharers?: GroupSharers;
}): Promise<SandboxUserStatus> {
  const { spec, botUid } = options;
  if (!spec)
    return botUid === 0
      ? {
          level: 'warn',
          message:
            'the bot runs as root and NIGHTSHIFT_SANDBOX_USER is not set: approved evidence scripts run as root inside the sandbox, where the per-user process limit does not hold and a script that escaped bubblewrap would be root; set it to a user of their own',
        }
      : { level: 'ok', message: `evidence scripts run as the bot's own user (uid ${botUid})` };
  let user: SandboxUser;
  try {
    user = resolveSandboxUser(spec, options.lookup);
    checkCanSwitch(user, botUid);
  } catch (error) {
    return { level: 'fail', message: (error as Error).message };
  }
  const about = `evidence scripts run as ${user.label} (uid ${user.uid}, gid ${user.gid})`;
  const parent = dirname(resolve(options.evidenceDir));
  if (botUid === 0 && existsSync(parent) && !(await userCanSearch(parent, user)))
    return {
      level: 'warn',
      user,
      message: `${about}, but that user cannot pass through ${parent}, above the evidence directory, so evidence scripts will fail: give it search permission (chmod o+x, or chgrp ${user.gid} and chmod g+x, on ${parent} and each directory above it)`,
    };
  // The group reads every incident's cores (and their secrets) and the user's processes share
  // limits and signals: both should be the sandbox's alone.
  if (user.uid === NOBODY || user.gid === NOBODY)
    return {
      level: 'warn',
      user,
      message: `${about}, but that is nobody or nogroup, which other services run as too: they could read the evidence its group is given, and signal its scripts; create a user of its own (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin nightshift-sandbox)`,
    };
  const sharers = (options.sharers ?? groupSharersWithGetent)(user.gid, user.uid);
  if (sharers.length > 0)
    return {
      level: 'warn',
      user,
      message: `${about}, but group ${user.gid} also has ${sharers.slice(0, 5).join(', ')}${sharers.length > 5 ? ` and ${sharers.length - 5} more` : ''}, who could read the evidence (cores, and the secrets in them) that group is given; give the user a group of its own (useradd --user-group)`,
    };
  return { level: 'ok', user, message: about };
}
