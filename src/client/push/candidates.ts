// What a push considers: the run-time closure of what was named, or with
// build dependencies the "cache deployment" set (seed 003): the derivations'
// requisites with every output that exists locally. Nothing is built.

import type { LocalNix, LocalPathInfo } from '../local-nix.ts';

export async function candidates(nix: LocalNix, installables: readonly string[], buildDeps: boolean): Promise<LocalPathInfo[]> {
  const roots = await nix.resolve(installables, false);
  if (!buildDeps) return nix.pathInfos(roots, true);
  const drvs = roots.filter((p) => p.endsWith('.drv'));
  const outputs = roots.filter((p) => !p.endsWith('.drv'));
  const installableDrvs = await nix.resolve(installables.filter((i) => !i.startsWith(nix.storeDir + '/')), true);
  const all = new Set([...drvs, ...installableDrvs, ...(await nix.derivers(outputs))]);
  const closure = new Set([...(all.size ? await nix.buildClosure([...all]) : []), ...outputs]);
  return nix.pathInfos([...closure], true);
}
