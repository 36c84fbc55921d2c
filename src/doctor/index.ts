// relonix doctor: what this host allows and what relonix will do about it, before or after a
// bootstrap. Facts are gathered (facts.ts, prefix.ts), then judged by pure functions, in the order
// a reader follows: the machine, the places relonix writes, the limits it runs under, the prefix.
import { PREFIX, STORE_DIR } from '../bootstrap/place-problems.ts';
import type { Layout } from '../prefix/layout.ts';
import { gatherHostFacts } from './facts.ts';
import type { Finding } from './finding.ts';
import { judgePlace, judgeSpace, judgeStoreDirLength, judgeTmp } from './judge-disk.ts';
import { judgeCgroup, judgeDecoders, judgeKernel, judgeNode, judgePasswd, judgeReaper, judgeSeccomp, judgeUserNamespaces } from './judge-host.ts';
import { gatherPrefixFacts, judgeCaBundle, judgePrefix } from './prefix.ts';

export type { Finding } from './finding.ts';
export { doctorFoundProblems } from './finding.ts';

export async function runDoctor(l: Layout, progress: (text: string) => void = () => {}): Promise<Finding[]> {
  progress('probing the host');
  const [h, p] = await Promise.all([gatherHostFacts(l), gatherPrefixFacts(l, progress)]);
  const findings = [
    judgeNode(h),
    judgeKernel(h),
    judgeUserNamespaces(h),
    judgeSeccomp(h),
    judgePlace('prefix-dir', PREFIX, h.prefix),
    judgePlace('store-dir', STORE_DIR, h.storeDir),
    judgeSpace(h.prefix, p.bootstrapped),
    judgeTmp(h.tmp, h.prefix),
    judgeCgroup(h),
    judgeReaper(h),
    judgePasswd(h),
    judgeDecoders(h),
    judgeCaBundle(p, h),
    judgeStoreDirLength(l.storeDir),
  ];
  const hostProblems = findings.filter((f) => f.verdict === 'problem').map((f) => f.id);
  return [...findings, judgePrefix(l, p, hostProblems)];
}
