import { type FileHandle, open } from 'node:fs/promises';
import {
  type CoreFacts,
  type CoreParts,
  interpretCore,
  noteWindows,
  segmentHolding,
  stackWindow,
} from '../analyze/core.ts';
import {
  ELF_HEADER_SIZE,
  PROGRAM_HEADER_SIZE,
  PT_LOAD,
  parseElfHeader,
  parseProgramHeaders,
} from '../analyze/elf.ts';
import { AT_EXECFN, parseNotes } from '../analyze/notes.ts';
import { CodedError, ErrorCode } from '../errors.ts';

/**
 * Reads a raw core's structure by seeking: the header, the program headers, the notes and the top
 * of the stack, a few megabytes at most whatever the core's size. The strings in its memory are
 * scanned separately, in parallel ranges (see scan-range.ts).
 */

export interface RawStructure {
  facts: CoreFacts;
  size: number;
  /** File ranges worth scanning for strings: the whole file, so results match grep over it. */
  scanEnd: number;
  loadSegments: number;
}

async function readAt(handle: FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

export async function readRawStructure(file: string): Promise<RawStructure> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const header = parseElfHeader(await readAt(handle, 0, ELF_HEADER_SIZE));
    const phBytes = await readAt(handle, header.phoff, header.phnum * PROGRAM_HEADER_SIZE);
    if (phBytes.length < header.phnum * PROGRAM_HEADER_SIZE) {
      throw new CodedError(
        ErrorCode.MalformedElf,
        `core cut short in its program headers: ${size} bytes, ${header.phoff + header.phnum * PROGRAM_HEADER_SIZE} needed`,
      );
    }
    const segments = parseProgramHeaders(phBytes, header);
    const notes: Uint8Array[] = [];
    for (const window of noteWindows(segments))
      notes.push(await readAt(handle, window.offset, window.length));
    const parts: CoreParts = { header, segments, notes, size };
    const execfn = notes
      .map((n) => parseNotes(n, header.arch).auxv.get(AT_EXECFN))
      .find((v) => v !== undefined);
    const segment = execfn === undefined ? undefined : segmentHolding(segments, execfn);
    if (segment) {
      const window = stackWindow(segment);
      const bytes = await readAt(handle, window.offset, window.length);
      if (bytes.length > 0) parts.stack = { vaddr: window.vaddr, bytes };
    }
    return {
      facts: interpretCore(parts),
      size,
      scanEnd: size,
      loadSegments: segments.filter((s) => s.type === PT_LOAD).length,
    };
  } finally {
    await handle.close();
  }
}
