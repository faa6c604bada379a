import assert from 'node:assert/strict';
import { parseCatalog, CatalogError } from '../src/config/catalog';
import { resolvePgEndpoint } from '../src/drivers/postgres/endpoint';
import { PermanentDriverError } from '../src/drivers/cluster/types';

const valid = `
clusters:
  demo:
    target: { kind: local, pgdata: ./data/demo, port: 55432 }
    storage: { kind: local }
  orders:
    target: { kind: kubernetes, namespace: db, statefulSet: pg-rook-sf, replicas: 1 }
    postgres: { host: pg-rook-sf.db.svc, port: 5432, user: postgres, passwordSecret: { name: pg-su, key: password } }
    storage: { kind: rbd, toolbox: { namespace: rook-ceph, labelSelector: app=rook-ceph-tools } }
  orders-delayed:
    target: { kind: kubernetes, namespace: db, statefulSet: pg-delayed, replicas: 1 }
    replicaOf: orders
    storage: { kind: csi, volumeSnapshotClass: csi-rbdplugin-snapclass }
`;

function problems(text: string): string {
  try {
    parseCatalog(text, '/etc/pgops/pgops.yaml');
  } catch (err) {
    assert.ok(err instanceof CatalogError, String(err));
    return err.message;
  }
  throw new Error('expected the catalog to be refused');
}

describe('cluster catalog', () => {
  it('accepts the documented example and resolves relative paths against the catalog folder', () => {
    const catalog = parseCatalog(valid, '/etc/pgops/pgops.yaml');
    const demo = catalog.clusters.demo!;
    assert.equal(demo.target.kind, 'local');
    assert.equal(demo.target.kind === 'local' && demo.target.pgdata, '/etc/pgops/data/demo');
    assert.equal(catalog.clusters.orders!.postgres?.passwordSecret?.name, 'pg-su');
  });

  it('names the file, the cluster and the field of each problem', () => {
    const message = problems(`
clusters:
  orders:
    target: { kind: kubernetes, namespace: DB_PROD, statefulSet: pg, replicas: -1 }
  demo:
    target: { kind: local, pgdata: "/data; rm -rf /", port: 70000 }
`);
    assert.match(message, /catalog \/etc\/pgops\/pgops.yaml is not valid/);
    assert.match(message, /cluster "orders", field target.namespace: namespace must be a DNS-1123 label/);
    assert.match(message, /cluster "orders", field target.replicas/);
    assert.match(message, /cluster "demo", field target.pgdata: path may contain only/);
    assert.match(message, /cluster "demo", field target.port/);
  });

  it('refuses unknown keys, a bad cluster name, a dangling replicaOf and two password sources', () => {
    assert.match(
      problems('clusters:\n  demo:\n    target: { kind: local, pgdata: /d, port: 5 }\n    targte: {}\n'),
      /cluster "demo".*targte|Unrecognized key.*targte/s,
    );
    assert.match(
      problems('clusters:\n  Bad_Name:\n    target: { kind: local, pgdata: /d, port: 5 }\n'),
      /cluster "Bad_Name".*not valid/,
    );
    assert.match(
      problems('clusters:\n  r:\n    target: { kind: local, pgdata: /d, port: 5 }\n    replicaOf: nowhere\n'),
      /replicaOf: names cluster "nowhere"/,
    );
    assert.match(
      problems(
        'clusters:\n  r:\n    target: { kind: local, pgdata: /d, port: 5 }\n    postgres: { passwordEnv: A, passwordSecret: { name: s, key: k } }\n',
      ),
      /passwordEnv or passwordSecret, not both/,
    );
  });

  it('refuses a WAL read-ahead that is not a whole number of segments from 0 to 64, naming the field', () => {
    for (const bad of ['-1', '65', '2.5', '"4"'])
      assert.match(
        problems(
          `clusters:\n  r:\n    target: { kind: local, pgdata: /d, port: 5 }\n    walArchive: /a\n    replayReadAhead: ${bad}\n`,
        ),
        /cluster "r", field replayReadAhead/,
        bad,
      );
    const ok = parseCatalog(
      'clusters:\n  r:\n    target: { kind: local, pgdata: /d, port: 5 }\n    walArchive: /a\n    replayReadAhead: 0\n',
      '/etc/pgops/pgops.yaml',
    );
    assert.equal(ok.clusters.r!.replayReadAhead, 0, '0 turns it off');
  });

  it('takes a fleet-wide cap on concurrent backups from 1 to 1000, and refuses anything else under fleet', () => {
    const cluster = 'clusters:\n  r:\n    target: { kind: local, pgdata: /d, port: 5 }\n';
    assert.equal(
      parseCatalog(`fleet: { maxConcurrentBackups: 4 }\n${cluster}`, '/etc/pgops/pgops.yaml').fleet
        ?.maxConcurrentBackups,
      4,
    );
    for (const bad of ['0', '1001', '2.5', '"4"'])
      assert.match(problems(`fleet: { maxConcurrentBackups: ${bad} }\n${cluster}`), /maxConcurrentBackups/, bad);
    assert.match(problems(`fleet: { maxBackups: 4 }\n${cluster}`), /maxBackups/);
  });

  it('reports YAML syntax errors and duplicate keys with the file name', () => {
    assert.match(problems('clusters: [unclosed'), /pgops.yaml is not valid YAML/);
    assert.match(
      problems(
        'clusters:\n  a:\n    target: { kind: local, pgdata: /d, port: 5 }\n  a:\n    target: { kind: local, pgdata: /d, port: 5 }\n',
      ),
      /not valid YAML.*[Mm]ap keys must be unique/s,
    );
  });

  it('reads a password from the worker environment, and says which variable is missing', async () => {
    const catalog = parseCatalog(
      'clusters:\n  a:\n    target: { kind: local, pgdata: /d, port: 5433 }\n    postgres: { passwordEnv: PGOPS_TEST_PW }\n',
      '/x.yaml',
    );
    const endpoint = await resolvePgEndpoint('a', catalog.clusters.a!, { PGOPS_TEST_PW: 's3cret' });
    assert.equal(endpoint.password, 's3cret');
    assert.equal(endpoint.port, 5433);
    await assert.rejects(
      resolvePgEndpoint('a', catalog.clusters.a!, {}),
      (err: unknown) =>
        err instanceof PermanentDriverError && /PGOPS_TEST_PW/.test(err.message) && !/s3cret/.test(err.message),
    );
  });
});
