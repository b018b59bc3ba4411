// Compression names as Nix uses them in narinfo `Compression` fields, in NAR
// file extensions and in Content-Encoding headers of uploads.

export type Compression = 'none' | 'xz' | 'bzip2' | 'zstd' | 'br' | 'gzip';

/** NAR file extension Nix gives each compression (src/libstore/binary-cache-store.cc). */
const EXTENSIONS: Readonly<Record<Compression, string>> = {
  none: '',
  xz: '.xz',
  bzip2: '.bz2',
  zstd: '.zst',
  br: '.br',
  gzip: '.gz',
};

export function isCompression(name: string): name is Compression {
  return Object.hasOwn(EXTENSIONS, name);
}

export function narExtension(compression: Compression): string {
  return EXTENSIONS[compression];
}

/** The compression a NAR file name's extension stands for: `x.nar.zst` → zstd. */
export function compressionOfExtension(extension: string): Compression | undefined {
  for (const [name, ext] of Object.entries(EXTENSIONS)) if (ext === extension) return name as Compression;
  return undefined;
}

/** Content-Encoding values Nix and curl send, mapped to our names. */
export function compressionOfContentEncoding(encoding: string): Compression | undefined {
  const name = encoding.trim().toLowerCase();
  if (name === '' || name === 'identity') return 'none';
  if (name === 'x-gzip') return 'gzip';
  if (name === 'zst') return 'zstd';
  return isCompression(name) ? name : undefined;
}
