{
  description = "larder: a private Nix binary cache you run yourself (server, push client, tokens)";

  # Any recent nixpkgs with nodejs_24 and importNpmLock (NixOS 25.05 and later);
  # consumers usually make it follow their own: inputs.larder.inputs.nixpkgs.follows = "nixpkgs".
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      # nix build; nix run . -- serve; nix profile install github:…/larder
      packages = forAllSystems (
        system: pkgs: {
          larder = pkgs.callPackage ./nix/package.nix { };
          default = self.packages.${system}.larder;
        }
      );

      # pkgs.larder, for nixpkgs instances of your own (and for nix/module.nix imported without the flake).
      overlays.default = final: prev: { larder = final.callPackage ./nix/package.nix { }; };

      # services.larder; the package defaults to this flake's build for the host's platform.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.larder.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.larder = self.nixosModules.default;

      # What the README's two commands need: Node 24 (npm included) and nix for the
      # end-to-end tests; bzip2 for legacy bzip2 NARs. `echo 'use flake' > .envrc`
      # with nix-direnv enters it on cd.
      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_24
              pkgs.nix
              pkgs.bzip2
            ];
          };
        }
      );

      # nix flake check: the package (its install check runs the built larder) and, on
      # Linux with KVM, a NixOS VM running the module with a local PostgreSQL.
      checks = forAllSystems (
        system: pkgs:
        {
          package = self.packages.${system}.default;
        }
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          nixos = import ./nix/nixos-test.nix { inherit pkgs self; };
        }
      );
    };
}
