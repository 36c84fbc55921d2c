import { RelonixError } from './errors.ts';

const ARCH: Record<string, string> = {
  x64: 'x86_64',
  arm64: 'aarch64',
  ia32: 'i686',
  arm: 'armv7l',
  ppc64: 'powerpc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** This machine as Nix names systems (`x86_64-linux`). */
export function nixSystem(arch: string = process.arch, platform: string = process.platform): string {
  if (platform !== 'linux') {
    throw new RelonixError(`relonix targets Linux hosts; this one is ${platform}`, { kind: 'preflight' });
  }
  const cpu = ARCH[arch];
  if (!cpu) throw new RelonixError(`no Nix release is built for the ${arch} CPU`, { kind: 'preflight' });
  return `${cpu}-linux`;
}
