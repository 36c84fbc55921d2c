export async function runPatchelf(_args: string[]): Promise<number> {
  process.stderr.write('relonix patchelf is not available in this build yet\n');
  return 1;
}
