// Health endpoints for load balancers and orchestrators: /healthz says the
// process answers; /readyz also asks the index and the blob store, and is a
// 503 (never a 200 that lies) when either cannot answer.

import type { Larder } from '../services/larder.ts';

export async function readiness(larder: Larder): Promise<{ ready: boolean; index: string; storage: string }> {
  const probe = async (check: () => Promise<unknown>): Promise<string> => {
    try {
      await check();
      return 'ok';
    } catch (error) {
      return (error as Error).message;
    }
  };
  const [index, storage] = await Promise.all([
    probe(() => larder.index.listCaches()),
    // Any key will do: absent is an answer, only a failure to answer is not.
    probe(() => larder.store.stat('.readyz/probe')),
  ]);
  return { ready: index === 'ok' && storage === 'ok', index, storage };
}
