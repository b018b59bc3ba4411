// A local URL nothing listens on: a port just freed, so that connecting is refused at once.

import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

export async function unreachableUrl(): Promise<string> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return `http://127.0.0.1:${port}`;
}
