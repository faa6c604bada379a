// A TLS front for the Temporal dev server, which has no TLS option of its own (`temporal server
// start-dev` in CLI v1.5.1). It terminates TLS (HTTP/2, ALPN h2), optionally requires a client
// certificate signed by a given CA (mTLS, as a self-hosted cluster does), notes the `authorization`
// header of each call (how an API key travels, as to Temporal Cloud), and forwards every gRPC call,
// trailers included, to the dev server in clear text. Certificates come from openssl.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCommand } from '../../src/drivers/exec';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  ca: CertFiles;
  server: CertFiles;
  client: CertFiles;
}

async function openssl(args: string[]): Promise<void> {
  const result = await runCommand('openssl', args);
  if (result.code !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${result.stderr}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function issue(dir: string, ca: CertFiles, name: string, extensions: string): Promise<CertFiles> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  await openssl(['req', '-new', ...ecKey, '-keyout', files.key, '-out', csr, '-subj', `/CN=${name}`]);
  await openssl([
    ...['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-days', '2'],
    ...['-set_serial', `0x${randomBytes(16).toString('hex')}`, '-extfile', ext, '-out', files.cert],
  ]);
  return files;
}

/** A CA, a serving certificate for 127.0.0.1/localhost and a client certificate, in `dir`. */
export async function createTestPki(dir: string): Promise<TestPki> {
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await openssl(['req', '-x509', ...ecKey, '-keyout', ca.key, '-out', ca.cert, '-days', '2', '-subj', '/CN=pgops-ca']);
  const usage = 'keyUsage=critical,digitalSignature\n';
  const server = await issue(
    dir,
    ca,
    'temporal-front',
    `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n${usage}`,
  );
  const client = await issue(dir, ca, 'pgops-worker', `extendedKeyUsage=clientAuth\n${usage}`);
  return { ca, server, client };
}

export interface TlsFront {
  address: string;
  /** The `authorization` header of every call, in order. */
  authorizations: string[];
  /** Calls forwarded to the dev server. */
  calls(): number;
  close(): Promise<void>;
}

const HOP_HEADERS = new Set([':authority', ':scheme', 'host', 'connection']);

export async function startTlsFront(opts: {
  upstream: string;
  pki: TestPki;
  requireClientCert: boolean;
}): Promise<TlsFront> {
  const authorizations: string[] = [];
  let calls = 0;
  const server = http2.createSecureServer({
    cert: readFileSync(opts.pki.server.cert),
    key: readFileSync(opts.pki.server.key),
    ca: readFileSync(opts.pki.ca.cert),
    requestCert: opts.requireClientCert,
    rejectUnauthorized: opts.requireClientCert,
  });
  const open = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    open.add(session);
    session.on('close', () => open.delete(session));
    const upstream = http2.connect(`http://${opts.upstream}`);
    upstream.on('error', () => session.destroy());
    session.on('close', () => upstream.close());
    session.on('stream', (stream, headers) => {
      calls++;
      if (headers.authorization) authorizations.push(String(headers.authorization));
      const forwarded: http2.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(headers)) if (!HOP_HEADERS.has(name)) forwarded[name] = value;
      const call = upstream.request(forwarded);
      let trailers: http2.OutgoingHttpHeaders = {};
      call.on('response', (responseHeaders) => {
        // A gRPC "trailers-only" answer (an error) ends in its headers.
        const trailersOnly = 'grpc-status' in responseHeaders;
        stream.respond(responseHeaders, trailersOnly ? { endStream: true } : { waitForTrailers: true });
        if (!trailersOnly) call.pipe(stream);
      });
      call.on('trailers', (t) => (trailers = t));
      stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      stream.pipe(call);
      call.on('error', () => stream.destroy());
      stream.on('error', () => call.destroy());
      stream.on('close', () => call.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    authorizations,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of open) session.destroy();
      }),
  };
}
