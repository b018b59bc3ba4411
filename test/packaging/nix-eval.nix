# Evaluates larder's Nix files with the real nixpkgs `lib` (module system,
# option types, fileset) but without the rest of nixpkgs: the NixOS options
# the module sets and the nixpkgs builders the package calls are stand-ins
# that record what they are given. nix-files.test.ts checks the results.
#
#   nix-instantiate --eval --strict --json --read-write-mode test/packaging/nix-eval.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' --argstr repo "$PWD" -A <case>
{
  lib,
  repo,
}:
let
  root = /. + repo;
  storeDir = builtins.storeDir;
  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "${storeDir}/00000000000000000000000000000000-${name}";
    meta = { };
  } // extra;

  # lib.fileset needs Nix 2.14 (builtins.readFileType); this records the selection instead,
  # and the tests check that every path it names exists.
  libWithRecordedFileset = lib // {
    fileset = {
      toSource = args: args;
      unions = paths: paths;
      maybeMissing = path: { maybeMissing = path; };
    };
  };

  # The package's builders: each returns what it was called with.
  stubPkgs = {
    lib = libWithRecordedFileset;
    stdenv.hostPlatform = {
      system = "x86_64-linux";
      isLinux = true;
    };
    nodejs_24 = fakeDrv "nodejs-24" { meta.mainProgram = "node"; };
    bzip2 = fakeDrv "bzip2" { };
    nix = fakeDrv "nix" { };
    makeWrapper = fakeDrv "make-wrapper-hook" { };
    buildNpmPackage = args: fakeDrv "${args.pname}-${args.version}" { inherit args; meta = args.meta; };
    importNpmLock = {
      __functor = _: args: { npmDepsArgs = args; };
      npmConfigHook = fakeDrv "import-npm-lock-config-hook" { };
    };
    mkShell = args: fakeDrv "shell" { inherit args; };
    testers.runNixOSTest = args: fakeDrv "nixos-test-${args.name}" { inherit args; };
    callPackage =
      fn: overrides:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) stubPkgs // overrides);
    formats.toml =
      { }:
      {
        type =
          let
            value =
              lib.types.nullOr (
                lib.types.oneOf [
                  lib.types.bool
                  lib.types.int
                  lib.types.float
                  lib.types.str
                  (lib.types.attrsOf value)
                  (lib.types.listOf value)
                ]
              )
              // {
                description = "TOML value";
              };
          in
          lib.types.attrsOf value;
        # The real one renders TOML; the JSON of the same values is what the tests compare.
        generate = name: value: builtins.toFile name (builtins.toJSON value);
      };
    larder = fakeDrv "larder-from-pkgs" { meta.mainProgram = "larder"; };
  };

  # The NixOS options the module sets, typed like NixOS's own where it matters (lists concatenate).
  nixosStub =
    { lib, ... }:
    let
      inherit (lib) mkOption types;
      strings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    in
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        environment.systemPackages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
        networking.firewall.allowedTCPPorts = mkOption {
          type = types.listOf types.port;
          default = [ ];
        };
        systemd.services = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options = {
                description = mkOption { type = types.str; };
                wantedBy = strings;
                wants = strings;
                requires = strings;
                after = strings;
                serviceConfig = mkOption {
                  type = types.attrsOf types.anything;
                  default = { };
                };
              };
            }
          );
        };
        services.postgresql = {
          enable = mkOption {
            type = types.bool;
            default = false;
          };
          settings.port = mkOption {
            type = types.port;
            default = 5432;
          };
          ensureDatabases = strings;
          ensureUsers = mkOption {
            default = [ ];
            type = types.listOf (
              types.submodule {
                options = {
                  name = mkOption { type = types.str; };
                  ensureDBOwnership = mkOption {
                    type = types.bool;
                    default = false;
                  };
                };
              }
            );
          };
        };
      };
    };

  evalModule =
    modules:
    let
      evaluated = lib.evalModules {
        modules = [
          nixosStub
          { _module.args.pkgs = stubPkgs; }
        ] ++ modules;
      };
      c = evaluated.config;
      unit = c.systemd.services.larder or null;
    in
    {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
      inherit (c) warnings;
      systemPackages = map (p: p.name) c.environment.systemPackages;
      firewallPorts = c.networking.firewall.allowedTCPPorts;
      postgresql = c.services.postgresql;
      settings = c.services.larder.settings;
      unit =
        if unit == null then
          null
        else
          unit
          // {
            # The rendered larder.toml (as JSON here) that ExecStart names.
            configFile =
              let
                m = builtins.match ".* --config ([^ ]+)" unit.serviceConfig.ExecStart;
              in
              if m == null then null else builtins.fromJSON (builtins.readFile (builtins.head m));
          };
    };

  larderModule = import (root + "/nix/module.nix");

  flake = (import (root + "/flake.nix")).outputs {
    self = flake // {
      outPath = root;
    };
    nixpkgs = {
      inherit lib;
      legacyPackages = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ] (_: stubPkgs);
    };
  };
  package = flake.packages.x86_64-linux.default;
in
{
  module = {
    disabled = evalModule [ larderModule ];
    defaults = evalModule [
      larderModule
      { services.larder.enable = true; }
    ];
    public = evalModule [
      larderModule
      {
        services.larder = {
          enable = true;
          openFirewall = true;
          environmentFile = "/run/secrets/larder.env";
          settings = {
            listen = "[::]:9000";
            public-url = "https://cache.example.org";
            workers = 4;
            storage = {
              type = "s3";
              bucket = "example-nix-cache";
              path-style = true;
            };
          };
        };
      }
    ];
    loopbackFirewall = evalModule [
      larderModule
      {
        services.larder = {
          enable = true;
          openFirewall = true;
        };
      }
    ];
    badListen = evalModule [
      larderModule
      {
        services.larder = {
          enable = true;
          settings.listen = "8080";
        };
      }
    ];
    localDatabase = evalModule [
      larderModule
      {
        services.larder = {
          enable = true;
          database.createLocally = true;
        };
        services.postgresql.settings.port = 5433;
      }
    ];
    localDatabaseOverridden = evalModule [
      larderModule
      {
        services.larder = {
          enable = true;
          database.createLocally = true;
          settings.index.url = "postgresql:///other?host=/run/postgresql";
        };
      }
    ];
    # A path literal would copy the secrets into the store: refused by the option's type.
    environmentFileAsPath =
      (builtins.tryEval (
        builtins.deepSeq (evalModule [
          larderModule
          {
            services.larder = {
              enable = true;
              environmentFile = ./nix-eval.nix;
            };
          }
        ]).unit.serviceConfig.EnvironmentFile true
      )).success;
    # Through the flake: the package defaults to the flake's own build.
    viaFlake = evalModule [
      flake.nixosModules.default
      { services.larder.enable = true; }
    ];
  };

  flake = {
    outputs = builtins.attrNames flake;
    packages = builtins.mapAttrs (_: builtins.attrNames) flake.packages;
    devShells = builtins.mapAttrs (_: builtins.attrNames) flake.devShells;
    checks = builtins.mapAttrs (_: builtins.attrNames) flake.checks;
    nixosModules = builtins.attrNames flake.nixosModules;
    devShellPackages = map (p: p.name) flake.devShells.x86_64-linux.default.args.packages;
    overlayLarder = ((flake.overlays.default stubPkgs stubPkgs).larder).name;
    nixosTest = flake.checks.x86_64-linux.nixos.args.name;
  };

  package =
    let
      a = package.args;
      lock = a.npmDeps.npmDepsArgs.packageLock;
    in
    {
      inherit (package) name;
      inherit (a) pname version npmPackFlags doInstallCheck buildPhase postInstall installCheckPhase;
      nodejs = a.nodejs.name;
      configHook = a.npmConfigHook.name;
      mainProgram = a.meta.mainProgram;
      license = a.meta.license.spdxId;
      packageName = a.npmDeps.npmDepsArgs.package.name;
      # Registry packages without a download URL would be missing in the offline build.
      packagesWithoutUrl = builtins.attrNames (
        lib.filterAttrs (path: m: path != "" && !(m ? resolved) && !(m.link or false)) lock.packages
      );
      resolved = lib.mapAttrs (_: m: m.resolved or null) lock.packages;
      # The files the build sees, relative to the repository, and whether each exists.
      sourceRoot = toString a.src.root == repo;
      source = map (
        entry:
        let
          path = entry.maybeMissing or entry;
        in
        {
          path = lib.removePrefix "${repo}/" (toString path);
          optional = entry ? maybeMissing;
          exists = builtins.pathExists path;
        }
      ) a.src.fileset;
    };
}
