# A NixOS VM running services.larder with a local PostgreSQL index:
# nix build .#checks.x86_64-linux.nixos (needs KVM).
{ pkgs, self }:
pkgs.testers.runNixOSTest {
  name = "larder";

  nodes.machine = {
    imports = [ self.nixosModules.default ];
    services.larder = {
      enable = true;
      openFirewall = true;
      database.createLocally = true;
      settings.listen = "0.0.0.0:8080";
    };
  };

  testScript = ''
    machine.wait_for_unit("larder.service")
    machine.wait_for_open_port(8080)
    machine.succeed("curl --fail --silent http://127.0.0.1:8080/")

    # The first start made the cache `main` and a server-admin token in the state directory.
    token = machine.succeed("cat /var/lib/larder/admin-token").strip()
    auth = f"-H 'Authorization: Bearer {token}'"
    machine.fail("curl --fail --silent http://127.0.0.1:8080/main/nix-cache-info")
    machine.succeed(f"curl --fail --silent {auth} http://127.0.0.1:8080/main/nix-cache-info | grep -x 'StoreDir: /nix/store'")

    # The index is the local PostgreSQL database, owned by the service's role.
    tables = machine.succeed(
        "runuser -u postgres -- psql -d larder -tAc \"SELECT count(*) FROM pg_tables WHERE tableowner = 'larder'\""
    )
    assert int(tables.strip()) > 0, f"no tables owned by larder: {tables!r}"

    # The administration commands work on the host.
    machine.succeed(f"larder cache list --server http://127.0.0.1:8080 --token {token} | grep main")

    # Hardened: the service runs as a dynamic user, not root.
    machine.succeed("test \"$(systemctl show -P DynamicUser larder.service)\" = yes")
  '';
}
