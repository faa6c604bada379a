// The start of every suite on the real node: skipped, saying why, when the machine is not prepared
// for it (realNodeProblem); otherwise the run's test cluster and its real node, started on first use.
import { binDir, kubeCluster, type KubeCluster } from '../kubeCluster';
import { realNode, realNodeProblem, type RealNode } from './realNode';

export async function realNodeOrSkip(ctx: Mocha.Context): Promise<{ cluster: KubeCluster; node: RealNode }> {
  const problem = realNodeProblem();
  if (problem) {
    console.log(`      skipped: ${problem}`);
    ctx.skip();
  }
  const cluster = await kubeCluster();
  return { cluster, node: await realNode(cluster, binDir()) };
}
