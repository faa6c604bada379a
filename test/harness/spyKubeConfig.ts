// A KubeConfig that notes every request the client library sends (method and path) and can run
// something just before one goes out, such as a concurrent write that makes the request's
// resourceVersion stale, so the real API server answers 409 Conflict at a chosen moment.
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

export interface SentRequest {
  method: string;
  path: string;
}

export class SpyKubeConfig extends KubeConfig {
  readonly sent: SentRequest[] = [];
  /** Awaited before a request is sent. */
  beforeRequest?: (request: SentRequest) => Promise<void>;

  static fromFile(path: string, context?: string): SpyKubeConfig {
    const kc = new SpyKubeConfig();
    kc.loadFromFile(path);
    if (context) kc.setCurrentContext(context);
    return kc;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const url = new URL(context.getUrl());
    const request = { method: String(context.getHttpMethod()), path: url.pathname };
    this.sent.push(request);
    await this.beforeRequest?.(request);
    return super.applySecurityAuthentication(context);
  }

  writes(): string[] {
    return this.sent.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`);
  }
}
