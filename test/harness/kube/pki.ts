// Certificates and kubeconfigs of the test cluster, made with openssl (argument arrays, no shell):
// a CA, the API server's serving certificate, one client certificate per component, kwok's
// serving certificate, and the service-account signing key pair. ECDSA P-256 keys: generated
// in milliseconds, and accepted everywhere Kubernetes takes a key.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../../src/drivers/exec';

export interface ClientCert {
  cert: string;
  key: string;
}

export interface ClusterPki {
  dir: string;
  ca: ClientCert;
  apiserver: ClientCert;
  kwokServing: ClientCert;
  /** kube-apiserver → kubelet (kwok) client certificate. */
  apiserverKubeletClient: ClientCert;
  controllerManager: ClientCert;
  scheduler: ClientCert;
  kwok: ClientCert;
  snapshotController: ClientCert;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const DAYS = '7';

async function openssl(args: string[]): Promise<void> {
  const result = await runCommand('openssl', args);
  if (result.code !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${result.stderr}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A key and a certificate signed by the CA; `san` for serving certificates. */
async function issue(dir: string, ca: ClientCert, name: string, subject: string, san?: string): Promise<ClientCert> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  await openssl(['req', '-new', ...ecKey, '-keyout', key, '-out', csr, '-subj', subject]);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    san
      ? `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`
      : 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n',
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    // Issued in parallel: a random serial each instead of a shared serial file.
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-days',
    DAYS,
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  return { cert, key };
}

export async function createPki(dir: string): Promise<ClusterPki> {
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await openssl([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    DAYS,
    '-subj',
    '/CN=pgops-test-ca',
  ]);
  const serviceAccountKey = join(dir, 'sa.key');
  const serviceAccountPub = join(dir, 'sa.pub');
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', serviceAccountKey]);
  await openssl(['ec', '-in', serviceAccountKey, '-pubout', '-out', serviceAccountPub]);
  const [apiserver, kwokServing, apiserverKubeletClient, controllerManager, scheduler, kwok, snapshotController] =
    await Promise.all([
      issue(
        dir,
        ca,
        'apiserver',
        '/CN=kube-apiserver',
        'IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
      ),
      issue(dir, ca, 'kwok-serving', '/CN=kwok', 'IP:127.0.0.1,DNS:localhost'),
      issue(dir, ca, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client'),
      issue(dir, ca, 'controller-manager', '/CN=system:kube-controller-manager'),
      issue(dir, ca, 'scheduler', '/CN=system:kube-scheduler'),
      // kwok plays every fake node's kubelet and writes their pods' status: cluster admin in tests.
      issue(dir, ca, 'kwok', '/O=system:masters/CN=kwok'),
      // Its upstream RBAC would be one more manifest to carry; in tests it may do anything.
      issue(dir, ca, 'snapshot-controller', '/O=system:masters/CN=snapshot-controller'),
    ]);
  return {
    dir,
    ca,
    apiserver,
    kwokServing,
    apiserverKubeletClient,
    controllerManager,
    scheduler,
    kwok,
    snapshotController,
    serviceAccountKey,
    serviceAccountPub,
  };
}

export type KubeUser = { token: string } | ClientCert;

export interface KubeconfigContext {
  name: string;
  namespace?: string;
  user: KubeUser;
}

/** Writes a kubeconfig for `server`; the first context is the current one. */
export function writeKubeconfig(path: string, server: string, caFile: string, contexts: KubeconfigContext[]): string {
  const quote = (value: string) => JSON.stringify(value);
  const lines = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: test',
    '    cluster:',
    `      server: ${quote(server)}`,
    `      certificate-authority: ${quote(caFile)}`,
    'users:',
  ];
  for (const { name, user } of contexts) {
    lines.push(`  - name: ${quote(name)}`, '    user:');
    if ('token' in user) lines.push(`      token: ${quote(user.token)}`);
    else lines.push(`      client-certificate: ${quote(user.cert)}`, `      client-key: ${quote(user.key)}`);
  }
  lines.push('contexts:');
  for (const { name, namespace } of contexts) {
    lines.push(`  - name: ${quote(name)}`, '    context:', '      cluster: test', `      user: ${quote(name)}`);
    if (namespace) lines.push(`      namespace: ${quote(namespace)}`);
  }
  lines.push(`current-context: ${quote(contexts[0]?.name ?? '')}`, '');
  writeFileSync(path, lines.join('\n'), { mode: 0o600 });
  return path;
}
