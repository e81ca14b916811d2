/**
 * Reads the symbol versions a shared object requires (its ELF `.gnu.version_r` section, the
 * "version needs"), without binutils: the glibc floor test reads the built addon with it.
 * ELF64 little-endian only (x86_64, aarch64), which is every target the package builds.
 */
import { readFileSync } from 'node:fs';

/** One required version: the library that must provide it and its name, e.g. GLIBC_2.17. */
export interface VersionNeed {
  file: string;
  name: string;
}

/** The section type of the version needs (SHT_GNU_verneed). */
const SHT_GNU_VERNEED = 0x6ffffffe;

/** Every version the ELF file at `path` requires, in file order. */
export function requiredVersions(path: string): VersionNeed[] {
  const b = readFileSync(path);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46)
    throw new Error(`${path}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${path}: not a 64-bit little-endian ELF file`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  if (shoff === 0 || shnum === 0) throw new Error(`${path}: no section headers`);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    if (i >= shnum || at + 64 > b.length) throw new Error(`${path}: section ${i} out of range`);
    return {
      type: b.readUInt32LE(at + 4),
      offset: Number(b.readBigUInt64LE(at + 24)),
      size: Number(b.readBigUInt64LE(at + 32)),
      link: b.readUInt32LE(at + 40),
      info: b.readUInt32LE(at + 44),
    };
  };
  const needs: VersionNeed[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link);
    const str = (off: number) => {
      const start = strtab.offset + off;
      const end = b.indexOf(0, start);
      if (off >= strtab.size || end < 0) throw new Error(`${path}: string ${off} out of range`);
      return b.toString('latin1', start, end);
    };
    // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
    // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
    let vn = s.offset;
    for (let e = 0; e < s.info; e++) {
      const cnt = b.readUInt16LE(vn + 2);
      const file = str(b.readUInt32LE(vn + 4));
      let aux = vn + b.readUInt32LE(vn + 8);
      for (let a = 0; a < cnt; a++) {
        needs.push({ file, name: str(b.readUInt32LE(aux + 8)) });
        aux += b.readUInt32LE(aux + 12);
      }
      const next = b.readUInt32LE(vn + 12);
      if (next === 0) break;
      vn += next;
    }
  }
  return needs;
}

/** `GLIBC_2.17` → [2, 17]; `GLIBC_2.3.4` → [2, 3, 4]; anything else → undefined. */
export function glibcVersion(name: string): number[] | undefined {
  const m = /^GLIBC_(\d+(?:\.\d+)*)$/.exec(name);
  return m?.[1]?.split('.').map(Number);
}

/** Compares two dotted versions numerically: negative, zero or positive. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
