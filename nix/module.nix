# NixOS module: services.larder, the binary cache server.
#
# The flake's nixosModules.default imports this file and sets
# services.larder.package to the flake's own build; imported directly, it
# expects `pkgs.larder` (the flake's overlays.default provides it).
#
#   services.larder = {
#     enable = true;
#     openFirewall = true;
#     database.createLocally = true;     # PostgreSQL on this machine, over its unix socket
#     settings = {
#       listen = "[::]:8080";
#       public-url = "https://cache.example.org";
#       storage = { type = "s3"; bucket = "example-nix-cache"; region = "eu-central-1"; };
#     };
#     environmentFile = "/run/secrets/larder.env";   # LARDER_STORAGE_SECRET_ACCESS_KEY=…
#   };
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.larder;
  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "larder.toml" cfg.settings;
  stateDir = "/var/lib/larder";

  # "127.0.0.1:8080", "[::]:8080", ":8080" -> 8080 (null when larder would refuse the value too).
  listenPort =
    let
      match = builtins.match "(\\[[^]]+]|[^:]*):([0-9]{1,5})" cfg.settings.listen;
    in
    if match == null then null else lib.toInt (builtins.elemAt match 1);
  loopbackOnly = builtins.match "(127\\.[0-9.]+|\\[::1]|localhost):[0-9]+" cfg.settings.listen != null;

  # Peer authentication over the socket: the service's user and the role are both `larder`.
  localDatabaseUrl = "postgresql:///larder?host=/run/postgresql&user=larder&port=${toString config.services.postgresql.settings.port}";

  # The same hardening as contrib/larder.service: larder needs its state directory, the network, and nothing else.
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectControlGroups = true;
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
    RestrictNamespaces = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
    LimitNOFILE = 65536;
  };
in
{
  options.services.larder = {
    enable = lib.mkEnableOption "larder, a private Nix binary cache";

    package = lib.mkPackageOption pkgs "larder" { };

    settings = lib.mkOption {
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          listen = lib.mkOption {
            type = lib.types.str;
            default = "127.0.0.1:8080";
            example = "[::]:8080";
            description = "Address and port larder listens on (`HOST:PORT`).";
          };
          data-dir = lib.mkOption {
            type = lib.types.str;
            default = stateDir;
            description = ''
              larder's local state: the SQLite index and the blob directory on
              embedded defaults, and the first start's server-admin token
              (`admin-token`). The service may write only below ${stateDir}
              (its StateDirectory); keep blobs elsewhere by mounting a disk at
              /var/lib/private/larder, or use S3 (`storage.type = "s3"`).
            '';
          };
        };
      };
      default = { };
      example = lib.literalExpression ''
        {
          listen = "[::]:8080";
          public-url = "https://cache.example.org";
          workers = 4;
          max-nar-size = "64GiB";
          storage = {
            type = "s3";
            endpoint = "https://s3.eu-central-1.amazonaws.com";
            region = "eu-central-1";
            bucket = "example-nix-cache";
            prefix = "larder";
          };
          index.type = "postgres";
        }
      '';
      description = ''
        larder.toml, as Nix values: every setting of larder's README
        ("Configuration"), tables such as `storage` and `index` as nested
        attribute sets. The file lands in the world-readable Nix store, so
        secrets belong in {option}`services.larder.environmentFile`.
      '';
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "/.*");
      default = null;
      example = "/run/secrets/larder.env";
      description = ''
        A file of `LARDER_*` variables, one `VAR=value` per line, read by
        systemd as root: secrets such as `LARDER_INDEX_URL` (with its password)
        and `LARDER_STORAGE_SECRET_ACCESS_KEY`. A variable overrides the same
        setting in {option}`services.larder.settings` (`a.b` is `LARDER_A_B`).
        Given as a string so that the file is never copied into the Nix store.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the TCP port of {option}`services.larder.settings.listen` in the firewall.";
    };

    database.createLocally = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Keep the index in a PostgreSQL database `larder` on this machine
        (services.postgresql, created with its owner role `larder`), reached
        over the unix socket with peer authentication: no password anywhere.
        Sets `settings.index`; without it, the index is SQLite in the data directory.
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = listenPort != null && listenPort <= 65535;
            message = "services.larder.settings.listen must be HOST:PORT such as 127.0.0.1:8080 or [::]:8080, not '${cfg.settings.listen}'";
          }
        ];
        warnings = lib.optional (cfg.openFirewall && loopbackOnly) ''
          services.larder.openFirewall opens a port, but settings.listen = "${cfg.settings.listen}" accepts connections from this machine only.
        '';

        systemd.services.larder = {
          description = "larder Nix binary cache";
          wantedBy = [ "multi-user.target" ];
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          serviceConfig = hardening // {
            Type = "simple";
            ExecStart = "${lib.getExe cfg.package} serve --config ${configFile}";
            EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
            DynamicUser = true;
            User = "larder";
            Group = "larder";
            StateDirectory = "larder";
            StateDirectoryMode = "0700";
            WorkingDirectory = stateDir;
            Restart = "on-failure";
            RestartSec = "2s";
          };
        };

        networking.firewall.allowedTCPPorts = lib.mkIf (cfg.openFirewall && listenPort != null) [ listenPort ];

        # For the administration commands (`larder token create …`) and pushing from this machine.
        environment.systemPackages = [ cfg.package ];
      }

      (lib.mkIf cfg.database.createLocally {
        services.larder.settings.index = {
          type = lib.mkDefault "postgres";
          url = lib.mkDefault localDatabaseUrl;
        };
        services.postgresql = {
          enable = true;
          ensureDatabases = [ "larder" ];
          ensureUsers = [
            {
              name = "larder";
              ensureDBOwnership = true;
            }
          ];
        };
        # The role is created by postgresql-setup.service on recent NixOS (postgresql.target
        # covers both), by postgresql.service's post-start before; ordering after a unit that
        # does not exist is a no-op, so all three are named.
        systemd.services.larder = {
          requires = [ "postgresql.service" ];
          after = [
            "postgresql.service"
            "postgresql-setup.service"
            "postgresql.target"
          ];
        };
      })
    ]
  );
}
