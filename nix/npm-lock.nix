# package-lock.json with a registry URL for every registry package.
#
# larder's lockfile records each package's version and integrity but not its
# `resolved` URL (npm's omit-lockfile-registry-resolved; npm then asks the
# configured registry). Nixpkgs' npm fetchers download only what has a URL:
# fetchNpmDeps silently skips the rest and importNpmLock leaves it to npm,
# which is offline in the build sandbox, so either build would fail with
# ENOTCACHED. The URL of a registry package is fixed by its name and version,
# and the download is still checked against the lockfile's integrity hash, so
# it is filled in here. Packages that already have one, links, bundled
# packages and the root are left as they are.
#
# Builtins only (no nixpkgs), so that the tests can evaluate it on its own:
#   import ./npm-lock.nix { } (builtins.fromJSON (builtins.readFile ../package-lock.json))
{
  registry ? "https://registry.npmjs.org",
}:
lock:
let
  last = list: builtins.elemAt list (builtins.length list - 1);
  # "node_modules/a/node_modules/@scope/b" -> "@scope/b"; an alias records the real name.
  nameOf = path: module: module.name or (last (builtins.split "node_modules/" path));
  # "@scope/b" -> "b"
  baseNameOf' = name: last (builtins.split "/" name);
  fromRegistry =
    path: module:
    path != ""
    && !(module ? resolved)
    && !(module.link or false)
    && !(module.inBundle or false)
    && module ? version
    && module ? integrity;
  withUrl =
    path: module:
    if fromRegistry path module then
      let
        name = nameOf path module;
      in
      module // { resolved = "${registry}/${name}/-/${baseNameOf' name}-${module.version}.tgz"; }
    else
      module;
in
lock // { packages = builtins.mapAttrs withUrl (lock.packages or { }); }
