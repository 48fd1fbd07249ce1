import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EvidenceCollector, MAX_DISTINCT_PER_KIND } from '../../src/analyze/evidence.ts';
import { executableOf, isSharedObject, librariesOf, parseNotes } from '../../src/analyze/notes.ts';

/** One ELF note: namesz, descsz, type, name and desc, each padded to 4 bytes. */
function note(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(`${name}\0`);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(n.length, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(type, 8);
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  return Buffer.concat([head, pad(n), pad(desc)]);
}

/**
 * aarch64 cores cannot be made on this x86_64 machine, so this builds their notes by the kernel's
 * layout (struct elf_prstatus with user_pt_regs: x0..x30, sp, pc, pstate from offset 112).
 */
describe('parseNotes on aarch64 notes', () => {
  const prstatus = Buffer.alloc(392);
  prstatus.writeUInt16LE(11, 12); // pr_cursig
  prstatus.writeInt32LE(4242, 32); // pr_pid
  prstatus.writeInt32LE(1, 36); // pr_ppid
  prstatus.writeBigUInt64LE(0xffffc0de0000n, 112 + 31 * 8); // sp
  prstatus.writeBigUInt64LE(0xaaaabbbb1234n, 112 + 32 * 8); // pc
  const psinfo = Buffer.alloc(136);
  psinfo[1] = 'R'.charCodeAt(0);
  psinfo.writeUInt32LE(1000, 16);
  psinfo.writeUInt32LE(1001, 20);
  psinfo.writeInt32LE(4242, 24);
  psinfo.write('worker', 40);
  psinfo.write('worker --queue feeds', 56);
  const siginfo = Buffer.alloc(128);
  siginfo.writeInt32LE(11, 0);
  siginfo.writeInt32LE(2, 8); // SEGV_ACCERR
  siginfo.writeBigUInt64LE(0xdead0000n, 16);
  const auxv = Buffer.alloc(48);
  auxv.writeBigUInt64LE(9n, 0); // AT_ENTRY
  auxv.writeBigUInt64LE(0x400100n, 8);
  auxv.writeBigUInt64LE(31n, 16); // AT_EXECFN
  auxv.writeBigUInt64LE(0xffffc0defff0n, 24);
  const names = Buffer.from('/usr/bin/worker\0/usr/lib/aarch64-linux-gnu/libc.so.6\0');
  const file = Buffer.alloc(16 + 2 * 24);
  file.writeBigUInt64LE(2n, 0);
  file.writeBigUInt64LE(4096n, 8);
  file.writeBigUInt64LE(0x400000n, 16);
  file.writeBigUInt64LE(0x401000n, 24);
  file.writeBigUInt64LE(0x7f0000n, 40);
  file.writeBigUInt64LE(0x7f1000n, 48);
  const bytes = Buffer.concat([
    note('CORE', 1, prstatus),
    note('CORE', 3, psinfo),
    note('CORE', 0x53494749, siginfo),
    note('CORE', 6, auxv),
    note('CORE', 0x46494c45, Buffer.concat([file, names])),
    note('LINUX', 0x400, Buffer.alloc(8)),
  ]);

  it('reads the registers at the arm64 offsets and everything else as on x86_64', () => {
    const notes = parseNotes(bytes, 'aarch64');
    assert.deepEqual(notes.threads, [
      { signal: 11, pid: 4242, ppid: 1, pc: 0xaaaabbbb1234n, sp: 0xffffc0de0000n },
    ]);
    assert.deepEqual(notes.process, {
      state: 'R',
      uid: 1000,
      gid: 1001,
      pid: 4242,
      ppid: 0,
      fname: 'worker',
      psargs: 'worker --queue feeds',
    });
    assert.deepEqual(notes.signal, { signo: 11, errno: 0, code: 2, faultAddress: 0xdead0000n });
    assert.equal(notes.auxv.get(31), 0xffffc0defff0n);
    assert.equal(executableOf(notes), '/usr/bin/worker');
    assert.deepEqual(librariesOf(notes, '/usr/bin/worker'), ['/usr/lib/aarch64-linux-gnu/libc.so.6']);
    assert.equal(notes.incomplete, false);
  });

  it('keeps the complete notes of a segment cut short', () => {
    const notes = parseNotes(bytes.subarray(0, bytes.length - 20), 'aarch64');
    assert.equal(notes.threads.length, 1);
    assert.equal(notes.incomplete, true);
  });
});

describe('parseNotes on NT_SIGINFO', () => {
  /** siginfo_t: si_signo, si_errno, si_code, then the union at offset 16 (pid, uid for kill()). */
  function siginfo(signo: number, code: number): Buffer {
    const info = Buffer.alloc(128);
    info.writeInt32LE(signo, 0);
    info.writeInt32LE(code, 8);
    info.writeInt32LE(4242, 16); // si_pid, or si_tid for SI_TIMER, si_band for SI_SIGIO
    info.writeUInt32LE(1000, 20); // si_uid, or si_overrun for SI_TIMER
    return note('CORE', 0x53494749, info);
  }

  it('reads a sender for SI_USER, SI_QUEUE, SI_MESGQ and SI_TKILL only', () => {
    const senders = [0, -1, -2, -3, -4, -5, -6, -7, 128].map((code) => {
      const s = parseNotes(siginfo(6, code), 'x86_64').signal!;
      return [code, s.senderPid ?? null, s.senderUid ?? null];
    });
    assert.deepEqual(senders, [
      [0, 4242, 1000], // SI_USER: kill()
      [-1, 4242, 1000], // SI_QUEUE: sigqueue()
      [-2, null, null], // SI_TIMER: a timer id and overrun count, not a process
      [-3, 4242, 1000], // SI_MESGQ: mq_notify()
      [-4, null, null], // SI_ASYNCIO
      [-5, null, null], // SI_SIGIO: a band and fd
      [-6, 4242, 1000], // SI_TKILL: tgkill(), raise(), abort()
      [-7, null, null], // SI_DETHREAD
      [128, null, null], // SI_KERNEL
    ]);
  });

  it('reads a fault address, not a sender, for a fault the kernel raised', () => {
    assert.deepEqual(parseNotes(siginfo(11, 1), 'x86_64').signal, {
      signo: 11,
      errno: 0,
      code: 1,
      faultAddress: 0x3e800001092n,
    });
  });
});

describe('EvidenceCollector', () => {
  it('bounds what it keeps and counts what it drops', () => {
    const collector = new EvidenceCollector();
    for (let i = 0; i < MAX_DISTINCT_PER_KIND + 10; i++) {
      collector.add({ kind: 'url', value: `http://x.example/${i}`, count: 1, encoding: 'ascii' });
    }
    collector.add({ kind: 'url', value: 'http://x.example/0', count: 5, encoding: 'ascii' });
    const snapshot = collector.snapshot();
    assert.equal(snapshot.items.length, MAX_DISTINCT_PER_KIND);
    assert.equal(snapshot.dropped, 10);
    assert.equal(snapshot.items[0]!.count, 6);
  });
});

describe('isSharedObject', () => {
  it('tells shared objects from the other files a process maps', () => {
    const shared = [
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
      '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13',
      '/opt/py/lib/libpython3.11.so.1.0',
      '/opt/py/lib/python3.11/lib-dynload/_socket.cpython-311-x86_64-linux-gnu.so',
      '/usr/lib/jvm/java-17/lib/server/libjvm.so',
      '/usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)',
    ];
    const other = [
      '/usr/lib/locale/locale-archive',
      '/usr/lib/locale/C.utf8/LC_CTYPE',
      '/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache',
      '/tmp/hsperfdata_app/4711',
      'anon_inode:[io_uring]',
      '/memfd:jit (deleted)',
      '/etc/ld.so.cache',
      '/var/lib/app/data.sqlite',
    ];
    assert.deepEqual(shared.filter(isSharedObject), shared);
    assert.deepEqual(other.filter(isSharedObject), []);
  });
});
