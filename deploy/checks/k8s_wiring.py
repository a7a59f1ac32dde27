"""The rendered manifests and the config they mount agree: the ports the config listens on are the container's
ports, and every file the config or the environment names lies in the mount of the ConfigMap or Secret that
should hold it. (kubernetes-validate checks each object alone; this checks them together.)

Usage: python k8s_wiring.py RENDERED.yaml
"""

import pathlib
import sys
import tomllib

import yaml


def main():
    objects = [o for o in yaml.safe_load_all(pathlib.Path(sys.argv[1]).read_text()) if o]
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "switchyard")
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "switchyard")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    volumes = {v["name"]: v for v in pod["volumes"]}
    problems = []

    def mount_of(kind, name_prefix):
        """The mount path of the volume from the ConfigMap or Secret whose name starts with `name_prefix`."""
        for mount in container["volumeMounts"]:
            source = volumes[mount["name"]].get(kind, {})
            name = source.get("name") or source.get("secretName") or ""
            if name.startswith(name_prefix):
                return mount["mountPath"], name
        problems.append(f"no {kind} volume {name_prefix}* is mounted")
        return None, None

    def lies_in(path, mount, what):
        if mount and pathlib.PurePosixPath(path).parent != pathlib.PurePosixPath(mount):
            problems.append(f"{what} {path} is not in the mount {mount}")

    config_mount, config_name = mount_of("configMap", "switchyard-config")
    lies_in(env.get("SWITCHYARD_CONFIG", ""), config_mount, "SWITCHYARD_CONFIG")
    config = tomllib.loads(config_maps[config_name]["data"]["switchyard.toml"]) if config_name else {}
    policy_mount, _ = mount_of("configMap", "switchyard-policy")
    lies_in(config.get("policy", {}).get("file", ""), policy_mount, "[policy] file")
    keys_mount, _ = mount_of("secret", "switchyard-api-keys")
    lies_in(env.get("SWITCHYARD_API_KEYS_FILE", ""), keys_mount, "SWITCHYARD_API_KEYS_FILE")
    tls = config.get("server", {}).get("tls")
    if tls:
        tls_mount, _ = mount_of("secret", "switchyard-tls")
        for key in ("cert_file", "key_file"):
            lies_in(tls[key], tls_mount, f"[server.tls] {key}")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for key, port_name in (("listen", "grpc"), ("admin_listen", "admin")):
        listen = config.get("server", {}).get(key, "")
        if int(listen.rsplit(":", 1)[-1] or 0) != ports.get(port_name):
            problems.append(f"[server] {key} {listen} is not the container port {port_name} ({ports.get(port_name)})")
    for probe in ("startupProbe", "readinessProbe"):
        grpc = container.get(probe, {}).get("grpc")
        if grpc and grpc["port"] != ports["grpc"]:
            problems.append(f"{probe} asks port {grpc['port']}, not the gRPC port {ports['grpc']}")

    if problems:
        sys.exit(f"{sys.argv[1]}: " + "; ".join(problems))


if __name__ == "__main__":
    main()
