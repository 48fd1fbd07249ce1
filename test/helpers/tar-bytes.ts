/**
 * Tar archives built byte by byte, for the cases GNU tar will not write: a base-256 mtime past any
 * date, PAX records with garbage values, headers mutated by a fuzzer. Layout per POSIX ustar
 * (name 0..100, mode, uid, gid, size 124..136, mtime 136..148, checksum 148..156, typeflag 156,
 * magic 257..263); `withChecksum` recomputes the checksum so a mutated header still reads as one.
 */

export const BLOCK = 512;
export const FIELD = {
  name: [0, 100],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  magic: [257, 6],
} as const;

/** Sets the header's checksum to the sum of its bytes, the checksum field counted as spaces. */
export function withChecksum(header: Uint8Array): Uint8Array {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += header[i]!;
  const text = `${sum.toString(8).padStart(6, '0')}\0 `;
  for (let i = 0; i < 8; i++) header[148 + i] = text.charCodeAt(i);
  return header;
}

function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

export interface HeaderOptions {
  name: string;
  size: number;
  /** Seconds; a bigint is written base-256 (the high bit set), as GNU/Go tar do for large values. */
  mtime?: number | bigint;
  typeflag?: string;
}

export function tarHeader({ name, size, mtime = 1_764_547_200, typeflag = '0' }: HeaderOptions): Uint8Array {
  const header = new Uint8Array(BLOCK);
  const put = (at: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[at + i] = text.charCodeAt(i);
  };
  put(0, name.slice(0, 100));
  put(100, octal(0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  if (typeof mtime === 'bigint') {
    let value = mtime;
    for (let i = 147; i > 136; i--) {
      header[i] = Number(value & 0xffn);
      value >>= 8n;
    }
    header[136] = 0x80 | Number(value & 0x7fn);
  } else put(136, octal(mtime, 12));
  put(156, typeflag);
  put(257, 'ustar\0');
  put(263, '00');
  return withChecksum(header);
}

function padded(data: Uint8Array): Uint8Array[] {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return [data, new Uint8Array(pad)];
}

/** A file member: header, data, padding. */
export function tarMember(
  name: string,
  data: Uint8Array,
  options: Omit<HeaderOptions, 'name' | 'size'> = {},
) {
  return Buffer.concat([tarHeader({ name, size: data.length, ...options }), ...padded(data)]);
}

/** A PAX extended header ('x') carrying `records` for the member after it. */
export function paxMember(records: Record<string, string>): Buffer {
  let body = '';
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    // The length counts its own digits: find the fixed point.
    let length = Buffer.byteLength(rest) + 1;
    while (String(length).length + Buffer.byteLength(rest) !== length) length++;
    body += `${length}${rest}`;
  }
  const data = Buffer.from(body, 'utf8');
  return Buffer.concat([
    tarHeader({ name: 'PaxHeaders/x', size: data.length, typeflag: 'x' }),
    ...padded(data),
  ]);
}

/** The two zero blocks that end an archive. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
