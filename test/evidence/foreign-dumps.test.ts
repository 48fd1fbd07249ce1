import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseElfHeader, parseProgramHeaders } from '../../src/analyze/elf.ts';
import { ReportSchema } from '../../src/analyze/report-schema.ts';
import { systemClock } from '../../src/clock.ts';
import { analyzeFiles } from '../../src/evidence/analyze-files.ts';
import { type CCore, makeCCore } from '../helpers/cores.ts';
import { requireTool, runTool } from '../helpers/reference-tools.ts';
import { tarEnd, tarMember } from '../helpers/tar-bytes.ts';

/**
 * Dumps that are not Linux cores must be named for what they are, never accepted with empty facts
 * or called something they are not: a NetBSD core (a real core's segments with the notes NetBSD
 * writes in place of Linux's) and Breakpad/Crashpad minidumps (built around a real crash's pid,
 * signal and command line; no tool on Debian writes one).
 */

const align4 = (n: number) => (n + 3) & ~3;
function note(name: string, type: number, desc: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32LE(name.length + 1, 0);
  head.writeUInt32LE(desc.length, 4);
  head.writeUInt32LE(type, 8);
  const nameBytes = Buffer.alloc(align4(name.length + 1));
  nameBytes.write(name, 'latin1');
  return Buffer.concat([head, nameBytes, desc, Buffer.alloc(align4(desc.length) - desc.length)]);
}

/** The real core with its notes segment rewritten as NetBSD's: procinfo, then one LWP's registers. */
function asNetbsdCore(core: Buffer, pid: number): Buffer {
  const header = parseElfHeader(core);
  const notes = parseProgramHeaders(core.subarray(header.phoff), header).find((s) => s.type === 4)!;
  const procinfo = Buffer.alloc(160);
  procinfo.writeUInt32LE(1, 0); // cpi_version
  procinfo.writeUInt32LE(160, 4); // cpi_cpisize
  procinfo.writeUInt32LE(10, 8); // cpi_signo: SIGBUS on NetBSD (SIGUSR1 on Linux)
  procinfo.writeUInt32LE(2, 12);
  procinfo.writeInt32LE(pid, 80);
  procinfo.writeUInt32LE(1000, 96); // cpi_ruid
  procinfo.writeUInt32LE(1, 120); // cpi_nlwps
  procinfo.write('crash', 124, 'latin1');
  const first = note('NetBSD-CORE', 1, procinfo);
  const lwpHead = 12 + align4('NetBSD-CORE@1'.length + 1);
  const registers = Buffer.alloc(notes.filesz - first.length - lwpHead, 0x41);
  const rewritten = Buffer.concat([first, note('NetBSD-CORE@1', 33, registers)]);
  assert.equal(rewritten.length, notes.filesz);
  const copy = Buffer.from(core);
  rewritten.copy(copy, notes.offset);
  return copy;
}

interface Stream {
  type: number;
  data: Buffer;
}
/** A minidump: header, directory, then each stream; `pad` puts the streams past the first block. */
function minidump(streams: Stream[], pad = 0): Buffer {
  const header = Buffer.alloc(32);
  header.write('MDMP', 0, 'latin1');
  header.writeUInt32LE(0xa793, 4);
  header.writeUInt32LE(streams.length, 8);
  header.writeUInt32LE(32, 12);
  const directory = Buffer.alloc(12 * streams.length);
  let rva = 32 + directory.length + pad;
  streams.forEach((s, i) => {
    directory.writeUInt32LE(s.type, i * 12);
    directory.writeUInt32LE(s.data.length, i * 12 + 4);
    directory.writeUInt32LE(rva, i * 12 + 8);
    rva += align4(s.data.length);
  });
  return Buffer.concat([
    header,
    directory,
    Buffer.alloc(pad),
    ...streams.map((s) => Buffer.concat([s.data, Buffer.alloc(align4(s.data.length) - s.data.length)])),
  ]);
}
function systemInfo(platform: number): Stream {
  const data = Buffer.alloc(56);
  data.writeUInt16LE(9, 0); // AMD64
  data.writeUInt32LE(platform, 20);
  return { type: 7, data };
}
function exception(signal: number): Stream {
  const data = Buffer.alloc(168);
  data.writeUInt32LE(signal, 8);
  return { type: 6, data };
}

describe('dumps that are not Linux cores are named for what they are', () => {
  let dir: string;
  let core: CCore;

  before(async () => {
    requireTool('zstd');
    dir = mkdtempSync(join(tmpdir(), 'nightshift-foreign-'));
    core = await makeCCore(join(dir, 'segv'), 'segv', { args: ['--port', '8080'] });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('says a NetBSD core is one, with its pid, name and signal, raw or compressed, instead of empty facts', async () => {
    const file = join(dir, 'netbsd.core');
    writeFileSync(file, asNetbsdCore(readFileSync(core.path), 4242));
    await runTool('zstd', ['-q', '-f', file, '-o', `${file}.zst`]);
    for (const path of [file, `${file}.zst`]) {
      const report = await analyzeFiles([path], { now: systemClock, workers: 0 });
      ReportSchema.parse(report);
      assert.deepEqual(report.dumps, [], path);
      assert.deepEqual(
        report.errors.map((e) => [e.code, e.message]),
        [
          [
            'nightshift_unsupported_elf',
            'a NetBSD core, not a Linux one: pid 4242 (crash), uid 1000, signal 10 (SIGBUS); only Linux cores are read (open it with gdb on NetBSD)',
          ],
        ],
        path,
      );
    }
  });

  it('calls a Linux minidump from Breakpad or Crashpad one, with its command line and signal, not a Windows one', async () => {
    const cmdline = { type: 0x47670006, data: Buffer.from(`${core.argv.join('\0')}\0`) };
    const maps = {
      type: 0x47670009,
      data: Buffer.from('00400000-00401000 r-xp 00000000 08:01 1234 /usr/bin/crash\n'),
    };
    const breakpadInfo = { type: 0x47670001, data: Buffer.alloc(12) };
    const crashpadInfo = { type: 0x43500001, data: Buffer.alloc(52) };
    const argv = core.argv.join(' ');
    const cases: Array<[string, Buffer, string]> = [
      [
        'breakpad.dmp',
        // The streams past the first 512 bytes, where the sniffer alone would not see them.
        minidump([exception(core.signal), systemInfo(0x8201), breakpadInfo, cmdline, maps], 4096),
        `a minidump from Breakpad of a Linux process, of ${argv}, signal 11 (SIGSEGV), not an ELF core: read it with minidump_stackwalk, or turn it into a core with minidump-2-core`,
      ],
      [
        'crashpad.dmp',
        minidump([systemInfo(0x8201), crashpadInfo, exception(6)]),
        'a minidump from Crashpad of a Linux process, signal 6 (SIGABRT), not an ELF core: read it with minidump_stackwalk, or turn it into a core with minidump-2-core',
      ],
      [
        'windows.dmp',
        minidump([systemInfo(2), exception(0xc0000005)]),
        'a Windows minidump, not a Linux core',
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      const report = await analyzeFiles([file], { now: systemClock, workers: 0 });
      assert.deepEqual(
        report.errors.map((e) => [e.code, e.message]),
        [['nightshift_not_core', `not a core dump: ${message}`]],
        name,
      );
    }
    // Inside a tar the member's first bytes are what is looked at: there the directory says Linux.
    const tar = join(dir, 'dumps.tar');
    writeFileSync(
      tar,
      Buffer.concat([
        tarMember('breakpad.dmp', minidump([cmdline, maps, systemInfo(0x8201)], 4096)),
        tarEnd(),
      ]),
    );
    const inTar = await analyzeFiles([tar], { now: systemClock, workers: 0 });
    assert.deepEqual(
      inTar.errors.map((e) => [e.entry, e.message]),
      [
        [
          'breakpad.dmp',
          `not a core dump: a minidump from Breakpad of a Linux process, of ${argv}, not an ELF core: read it with minidump_stackwalk, or turn it into a core with minidump-2-core`,
        ],
      ],
    );
  });
});
