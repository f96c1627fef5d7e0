#!/usr/bin/env python3
"""Checks behind scripts/deploy-check.sh that are easier in Python than in shell.

  receiver PORT_FILE LOG_FILE         HTTP receiver on 127.0.0.1:<ephemeral>: answers 200 to any
                                      POST, appends {"path","headers","body"} as a JSON line.
  verify-delivery LOG_FILE SECRET TYPE
                                      The receiver got a delivery of TYPE whose
                                      formance-webhook-signature verifies with SECRET (spec §4.6).
  compose FILE HELP_DIR IMAGE         docker-compose.yml (as `podman-compose config` printed it):
                                      wiring, and the webhooks services' commands and environment
                                      against the binary's flags; each service's environment is
                                      also parsed by the image's binary for real.
  chart-values CHART_DIR              values.yaml documented key by key, valid for
                                      values.schema.json.
  chart-manifests RENDERED HELP_DIR   manifests rendered by `helm template`: schema-valid for
                                      Kubernetes (kubernetes-validate, strict), env vars are real
                                      flags, probes, grace period, security context, hooks.

HELP_DIR holds `webhooks <cmd> --help` output as <cmd>.txt for serve, worker and migrate. Every
check prints what it checked and exits non-zero with the reasons on the first failed group.
"""

import base64
import hashlib
import hmac
import http.server
import json
import re
import subprocess
import sys
from pathlib import Path

COMMANDS = {"serve", "worker", "migrate", "version"}
HEALTH_PATH = "/_healthcheck"


def fail(problems):
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    sys.exit(1)


def flag_envs(help_dir):
    """{command: set of [env: X] names} from the binary's own --help output."""
    envs = {}
    for cmd in ("serve", "worker", "migrate"):
        text = (Path(help_dir) / f"{cmd}.txt").read_text()
        names = set(re.findall(r"\[env: ([A-Z0-9_]+)\]", text))
        if not names:
            fail([f"{cmd} --help lists no [env: ...] names"])
        envs[cmd] = names
    return envs


def go_duration_seconds(text):
    """Seconds of a Go duration (`90s`, `1m30s`, `1.5h`); None when it is not one."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


# --- receiver ----------------------------------------------------------------------------------


def receiver(port_file, log_file):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            record = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def verify_delivery(log_file, secret, event_type):
    path = Path(log_file)
    lines = path.read_text().splitlines() if path.exists() else []
    problems = []
    for line in lines:
        req = json.loads(line)
        h = req["headers"]
        body = json.loads(req["body"])
        if body.get("type") != event_type:
            problems.append(f"a delivery of another type: {body.get('type')!r}")
            continue
        signed = f"{h['formance-webhook-id']}.{h['formance-webhook-timestamp']}.{req['body']}"
        mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
        want = "v1," + base64.b64encode(mac).decode()
        if want not in h.get("formance-webhook-signature", "").split(" "):
            fail([f"signature {h.get('formance-webhook-signature')!r} does not verify (want {want})"])
        print(f"ok: delivery {h['formance-webhook-id']} of {event_type} signed with the config's secret")
        return
    fail(problems or ["the receiver got no delivery"])


# --- compose -----------------------------------------------------------------------------------


def compose(file, help_dir, image):
    import yaml

    envs = flag_envs(help_dir)
    doc = yaml.safe_load(Path(file).read_text())
    services = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    problems = []
    required = {"postgres", "kafka", "jaeger", "migrate", "serve", "worker"}
    if missing := required - services.keys():
        problems.append(f"services missing: {sorted(missing)}")
    webhooks = {}
    for name, svc in services.items():
        one_shot = str(svc.get("restart", "")).strip() == "no"
        if not one_shot and "healthcheck" not in svc:
            problems.append(f"{name}: long-running service without a healthcheck")
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")) and source not in declared_volumes:
                problems.append(f"{name}: volume {source} is not a declared named volume")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on without conditions")
            deps = {}
        for dep, spec in deps.items():
            cond = (spec or {}).get("condition")
            target = services.get(dep)
            if target is None:
                problems.append(f"{name}: depends on unknown service {dep}")
            elif cond == "service_healthy" and "healthcheck" not in target:
                problems.append(f"{name}: waits for {dep} to be healthy, which has no healthcheck")
            elif cond == "service_completed_successfully" and str(target.get("restart")) != "no":
                problems.append(f"{name}: waits for {dep} to complete, which restarts")
            elif cond not in ("service_healthy", "service_completed_successfully", "service_started"):
                problems.append(f"{name}: depends on {dep} with condition {cond!r}")
        if str(svc.get("image", "")).startswith("webhooks:") or "build" in svc:
            webhooks[name] = svc
    if set(webhooks) != {"migrate", "serve", "worker"}:
        problems.append(f"webhooks services are {sorted(webhooks)}, want migrate, serve, worker")
    if not declared_volumes:
        problems.append("no named volumes")
    for name, svc in webhooks.items():
        command = svc.get("command")
        if isinstance(command, str):
            command = command.split()
        if not command or command[0] not in COMMANDS:
            problems.append(f"{name}: command {command!r} is not one of {sorted(COMMANDS)}")
            continue
        cmd = command[0]
        if any(not a.startswith("--") for a in command[1:]):
            problems.append(f"{name}: command {command!r} has more than one word before flags")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        known = envs.get(cmd, set())
        for var in env:
            if var not in known:
                problems.append(f"{name}: {var} is not a flag of `webhooks {cmd}`")
        for flag in command[1:]:
            long = flag[2:].split("=")[0]
            if long.upper().replace("-", "_") not in known:
                problems.append(f"{name}: {flag} is not a flag of `webhooks {cmd}`")
        if cmd in ("serve", "worker"):
            shutdown = go_duration_seconds(str(env.get("SHUTDOWN_TIMEOUT", "60s")))
            grace = go_duration_seconds(str(svc.get("stop_grace_period", "10s")))
            if shutdown is None or grace is None or grace <= shutdown:
                problems.append(
                    f"{name}: stop_grace_period {svc.get('stop_grace_period')} is not above "
                    f"SHUTDOWN_TIMEOUT {env.get('SHUTDOWN_TIMEOUT')}"
                )
    if problems:
        fail(problems)
    # The binary parses each service's environment: a bad value is a usage error, exit 2 with one
    # line (spec §1.2). With the compose host names unresolvable here, a good configuration stops
    # at the first connection instead (exit 1).
    for name, svc in webhooks.items():
        command = svc["command"] if isinstance(svc["command"], list) else svc["command"].split()
        env = svc.get("environment") or {}
        args = ["podman", "run", "--rm", "--network", "none"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        args += [image, *command]
        try:
            run = subprocess.run(args, capture_output=True, text=True, timeout=60)
            code, err = run.returncode, run.stderr
        except subprocess.TimeoutExpired:
            code, err = None, "(still running after 60 s: its configuration was accepted)"
        if code == 1 and ("storage" in err or "database" in err):
            print(f"ok: {name}: `webhooks {' '.join(command)}` accepted its environment, then could not reach storage")
        else:
            problems.append(f"{name}: want exit 1 at the storage connection, got {code}: {err.strip()}")
    if problems:
        fail(problems)
    print(f"ok: compose: {len(services)} services wired with healthchecks and depends_on conditions")
    print(f"ok: compose: {sorted(webhooks)} use only real commands and flag variables")


# --- chart -------------------------------------------------------------------------------------


def chart_values(chart_dir):
    import jsonschema
    import yaml

    chart = Path(chart_dir)
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((chart / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=str)
    problems = [f"values.yaml vs values.schema.json: {e.json_path}: {e.message}" for e in errors]
    # helm-docs convention: a `# --` comment block right above every key, except inside an object
    # documented as "passed through as is" (Kubernetes' own fields: resources, securityContext).
    lines = text.splitlines()
    keys = 0
    stack = []  # (indent, exempt) of the enclosing keys
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)[A-Za-z_][\w.-]*:", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        block, j = [], i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.insert(0, lines[j].strip())
            if lines[j].strip().startswith("# --"):
                break
            j -= 1
        documented = bool(block) and block[0].startswith("# --")
        inherited = bool(stack) and stack[-1][1]
        if not documented and not inherited:
            problems.append(f"values.yaml:{i + 1}: {line.strip()} has no `# --` description")
        keys += 1
        stack.append((indent, inherited or (documented and "passed through as is" in " ".join(block))))
    # Every value in the schema, every schema property in values.yaml.
    def walk(v, s, path):
        if s.get("type") == "object" and "properties" in s and isinstance(v, dict):
            for k in v:
                if k not in s["properties"] and not s.get("additionalProperties", True) is True:
                    problems.append(f"{path}.{k}: not in values.schema.json")
            for k, sub in s["properties"].items():
                if k in v:
                    walk(v[k], sub, f"{path}.{k}")
                elif not (path == "" and k == "global"):  # helm's own, never in values.yaml
                    problems.append(f"{path}.{k}: in the schema but not in values.yaml")

    walk(values, schema, "")
    if problems:
        fail(problems)
    print(f"ok: values.yaml: {keys} keys, each documented; valid for values.schema.json")


def chart_manifests(rendered, help_dir, expect):
    import kubernetes_validate
    import yaml

    envs = flag_envs(help_dir)
    docs = [d for d in yaml.safe_load_all(Path(rendered).read_text()) if d]
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    k8s_version = kubernetes_validate.utils.latest_version()
    skipped = []
    for d in docs:
        if d["apiVersion"].startswith("monitoring.coreos.com/"):
            skipped.append(d["kind"])  # a CRD: no schema in kubernetes-validate
            continue
        try:
            kubernetes_validate.validate(d, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {list(e.path)}")
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind.get("ConfigMap", [])}
    secrets = {
        d["metadata"]["name"]: {**(d.get("stringData") or {}), **(d.get("data") or {})}
        for d in by_kind.get("Secret", [])
    }

    def env_names(container, cmd):
        names = {}
        for e in container.get("env") or []:
            names[e["name"]] = e.get("value")
        for src in container.get("envFrom") or []:
            if "configMapRef" in src:
                names.update(configmaps.get(src["configMapRef"]["name"], {}))
            if "secretRef" in src:
                ref = src["secretRef"]["name"]
                if ref in secrets:
                    names.update({k: None for k in secrets[ref]})
                else:
                    # An existing Secret the chart does not render: by the chart's contract
                    # (values.yaml existingSecret) it holds POSTGRES_URI.
                    names["POSTGRES_URI"] = None
        return names

    workloads = []
    for d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
        spec = d["spec"]["template"]["spec"]
        for c in spec["containers"]:
            workloads.append((d, spec, c))
    commands = set()
    for d, spec, c in workloads:
        where = f"{d['kind']}/{d['metadata']['name']}"
        args = c.get("args") or []
        if not args or args[0] not in COMMANDS:
            problems.append(f"{where}: args {args} do not start with a webhooks command")
            continue
        cmd = args[0]
        commands.add(cmd)
        names = env_names(c, cmd)
        for var in names:
            if var not in envs[cmd]:
                problems.append(f"{where}: {var} is not a flag of `webhooks {cmd}`")
        for flag in args[1:]:
            if flag[2:].split("=")[0].upper().replace("-", "_") not in envs[cmd]:
                problems.append(f"{where}: {flag} is not a flag of `webhooks {cmd}`")
        if "POSTGRES_URI" not in names:
            problems.append(f"{where}: no POSTGRES_URI")
        pod_sc, sc = spec.get("securityContext") or {}, c.get("securityContext") or {}
        if not (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if (sc.get("runAsUser", pod_sc.get("runAsUser", 1)) or 0) == 0:
            problems.append(f"{where}: runs as root")
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"{where}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation", True):
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if d["kind"] == "Job":
            hooks = d["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            if cmd != "migrate" or set(hooks.split(",")) != {"pre-install", "pre-upgrade"}:
                problems.append(f"{where}: want `migrate` as a pre-install,pre-upgrade hook, got {cmd} {hooks!r}")
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != HEALTH_PATH:
                problems.append(f"{where}: {probe} is not GET {HEALTH_PATH}: {c.get(probe)}")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            port = ports.get(get.get("port"), get.get("port"))
            listen = names.get("LISTEN") or ":8080"
            if str(port) != listen.rsplit(":", 1)[-1]:
                problems.append(f"{where}: {probe} port {port} is not the LISTEN port {listen}")
        shutdown = go_duration_seconds(str(names.get("SHUTDOWN_TIMEOUT") or "60s"))
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if shutdown is None or grace <= shutdown:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is not above SHUTDOWN_TIMEOUT {names.get('SHUTDOWN_TIMEOUT')}")
        if not (c.get("resources") or {}):
            problems.append(f"{where}: no resources")
    if commands != {"serve", "worker", "migrate"}:
        problems.append(f"workloads run {sorted(commands)}, want serve, worker and migrate")
    kinds = set(by_kind)
    want = {k for k in expect.split(",") if k}
    if missing := want - kinds:
        problems.append(f"kinds missing from the render: {sorted(missing)}")
    if problems:
        fail(problems)
    note = f" (not schema-checked, a CRD: {', '.join(skipped)})" if skipped else ""
    print(
        f"ok: {len(docs)} manifests valid for Kubernetes {k8s_version} (strict){note}; "
        f"env vars are flags; probes on {HEALTH_PATH}; grace period above SHUTDOWN_TIMEOUT; non-root, read-only root fs"
    )


def main():
    sys.stdout.reconfigure(line_buffering=True)
    cmd, *args = sys.argv[1:] or ["help"]
    if cmd == "receiver":
        receiver(*args)
    elif cmd == "verify-delivery":
        verify_delivery(*args)
    elif cmd == "compose":
        compose(*args)
    elif cmd == "chart-values":
        chart_values(*args)
    elif cmd == "chart-manifests":
        chart_manifests(*args)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
