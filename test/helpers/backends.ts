// The engines a server test can run on: the embedded default (SQLite and a
// directory) and the scale-out one (a fresh S3 bucket on the project's Swift
// and a fresh PostgreSQL database), given to `larder serve` as LARDER_* variables.

import type { TestContext } from 'node:test';
import { postgresService } from './postgres-service.ts';
import { s3Service } from './s3-service.ts';

export interface Backend {
  readonly name: string;
  /** Environment for `larder serve`; undefined when the test was skipped for want of a service. */
  env(t: TestContext): Promise<NodeJS.ProcessEnv | undefined>;
}

export const embedded: Backend = { name: 'SQLite + directory', env: async () => ({}) };

export const scaleOut: Backend = {
  name: 'PostgreSQL + S3',
  env: async (t) => {
    const bucket = await s3Service(t);
    if (!bucket) return undefined;
    const database = await postgresService(t);
    if (!database) return undefined;
    return {
      LARDER_STORAGE_TYPE: 's3',
      LARDER_STORAGE_ENDPOINT: bucket.endpoint,
      LARDER_STORAGE_REGION: bucket.region,
      LARDER_STORAGE_BUCKET: bucket.bucket,
      LARDER_STORAGE_PREFIX: 'larder',
      LARDER_STORAGE_PATH_STYLE: 'true',
      LARDER_STORAGE_ACCESS_KEY_ID: bucket.accessKeyId,
      LARDER_STORAGE_SECRET_ACCESS_KEY: bucket.secretAccessKey,
      LARDER_INDEX_TYPE: 'postgres',
      LARDER_INDEX_URL: database,
    };
  },
};

export const backends: readonly Backend[] = [embedded, scaleOut];
