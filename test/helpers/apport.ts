/**
 * apport crash reports (/var/crash/*.crash) made from a real core the way apport's
 * problem_report.py writes them: text fields first (ProblemType leading), then each binary field
 * as `Key: base64` and one indented base64 line per compressed chunk. The CoreDump is gzip (a gzip
 * header naming the key, raw deflate of 1 MiB reads at level 6, CRC and size), or, as apport
 * does with a core it took from systemd-coredump, the zstd file's own bytes in 1 MiB blocks.
 * Debian has no apport package, so this is its writer's logic run by python3 with the same zlib
 * calls; the zstd form compresses with the real zstd tool.
 */
import { requireTool, runTool } from './reference-tools.ts';

const WRITER = String.raw`
import base64, struct, sys, zlib
core, out, zst = sys.argv[1], sys.argv[2], sys.argv[3]
fields = [line.split('=', 1) for line in sys.argv[4:]]
def chunks():
    if zst:
        with open(zst, 'rb') as f:
            while True:
                block = f.read(1048576)
                if not block:
                    return
                yield block
    yield b'\037\213\010' + b'\010\000\000\000\000\002\377' + b'CoreDump' + b'\000'
    crc = zlib.crc32(b'')
    bc = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
    size = 0
    with open(core, 'rb') as f:
        while True:
            block = f.read(1048576)
            if not block:
                break
            size += len(block)
            crc = zlib.crc32(block, crc)
            outblock = bc.compress(block)
            if outblock:
                yield outblock
    yield bc.flush() + struct.pack('<L', crc & 0xFFFFFFFF) + struct.pack('<L', size & 0xFFFFFFFF)
with open(out, 'wb') as f:
    for key, value in fields:
        f.write(key.encode('ascii'))
        if '\n' in value:
            f.write(b':\n ' + value.encode('utf-8').replace(b'\n', b'\n '))
        else:
            f.write(b': ' + value.encode('utf-8'))
        f.write(b'\n')
    if core:
        f.write(b'CoreDump: base64')
        for chunk in chunks():
            f.write(b'\n ' + base64.b64encode(chunk))
        f.write(b'\n')
`;

export interface ApportOptions {
  /** The CoreDump field's compression (default gzip, as apport writes a core it read itself). */
  compression?: 'gzip' | 'zstd';
  /** Text fields after ProblemType (Date, ExecutablePath, Signal, ...), in order. */
  fields?: Record<string, string>;
  /** Leave the CoreDump field out (apport does when the core is too big or not wanted). */
  withoutCore?: boolean;
}

export async function writeApportCrash(
  corePath: string,
  outPath: string,
  opts: ApportOptions = {},
): Promise<string> {
  requireTool('python3');
  let zst = '';
  if (opts.compression === 'zstd' && !opts.withoutCore) {
    requireTool('zstd');
    zst = `${outPath}.CoreDump.zst`;
    await runTool('zstd', ['-q', '-f', corePath, '-o', zst]);
  }
  const fields = { ProblemType: 'Crash', Date: 'Thu Dec  3 04:12:09 2026', ...opts.fields };
  await runTool('python3', [
    '-c',
    WRITER,
    opts.withoutCore ? '' : corePath,
    outPath,
    zst,
    ...Object.entries(fields).map(([k, v]) => `${k}=${v}`),
  ]);
  return outPath;
}
