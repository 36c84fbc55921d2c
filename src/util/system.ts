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
    throw notLinux(platform);
  }
  const cpu = ARCH[arch];
  if (!cpu) throw noReleaseForCpu(arch);
  return `${cpu}-linux`;
}

/** A host that is not Linux: there is no Nix for relonix to relocate there. */
export function notLinux(platform: string): RelonixError {
  return new RelonixError(`relonix targets Linux hosts; this one is ${platform}`, {
    kind: 'preflight',
    hint: 'run relonix on a Linux host (a virtual machine or a container on this one will do)',
  });
}

/** A CPU no Nix release is built for. */
export function noReleaseForCpu(arch: string): RelonixError {
  return new RelonixError(`no Nix release is built for the ${arch} CPU`, {
    kind: 'preflight',
    hint: `run relonix on a host whose CPU Nix releases are built for: ${Object.keys(ARCH).join(', ')}`,
  });
}
