# larder as a Nix package: `nix build` (flake.nix) or `callPackage ./nix/package.nix { }`.
#
# Dependencies come from package-lock.json through importNpmLock: one
# fixed-output fetch per package, checked against the lockfile's integrity
# hash, so there is no npmDepsHash to keep up to date (fetchNpmDeps would need
# one, and `lib.fakeHash` plus a failed first build to learn it after every
# lockfile change). The lockfile has no `resolved` URLs; ./npm-lock.nix adds
# them (see there why).
#
# The build is the one `npm pack` runs (scripts/build.ts: tsc to dist/, since
# Node does not strip types under node_modules); npmInstallHook then installs
# what the package publishes, production dependencies only, and wraps
# dist/bin/larder.js as bin/larder with Node 24.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs_24,
  bzip2,
  makeWrapper,
}:
let
  packageJson = lib.importJSON ../package.json;
  withRegistryUrls = import ./npm-lock.nix { };
in
buildNpmPackage {
  pname = "larder";
  inherit (packageJson) version;

  # Only what the build reads: editing tests, benchmarks or Nix files does not rebuild larder.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../tsconfig.build.json
      ../scripts/build.ts
      ../bin
      ../src
      ../README.md
      ../docs
      ../contrib
      (lib.fileset.maybeMissing ../LICENSE)
    ];
  };

  nodejs = nodejs_24;
  npmDeps = importNpmLock {
    package = packageJson;
    packageLock = withRegistryUrls (lib.importJSON ../package-lock.json);
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # The same build as `npm pack` (prepack), with Node 24 whatever Node npm's hooks bring.
  buildPhase = ''
    runHook preBuild
    ${lib.getExe nodejs_24} scripts/build.ts
    runHook postBuild
  '';
  # npmInstallHook lists the files to install with `npm pack --dry-run`, which would run prepack (the build) again.
  npmPackFlags = [ "--ignore-scripts" ];

  nativeBuildInputs = [ makeWrapper ];
  # bzip2 NARs (a legacy format) are decompressed with the bzip2 program.
  postInstall = ''
    wrapProgram $out/bin/larder --prefix PATH : ${lib.makeBinPath [ bzip2 ]}
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/larder --help > /dev/null
    $out/bin/larder keygen install-check-1 --secret-file "$TMPDIR/key.sec" --public-file "$TMPDIR/key.pub" \
      | grep -q '^install-check-1:'
    runHook postInstallCheck
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "larder";
    platforms = nodejs_24.meta.platforms;
  };
}
