"""The deploy files agree with the code: commands, ports, settings, probes, metric names, alerts, runbook.

Offline only: nothing here starts a container or talks to a cluster.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess

import pytest

from services.api.__main__ import SHUTDOWN_TIMEOUT_S
from shared.cli.main import build_parser
from shared.messaging import topology
from shared.observability import metrics
from shared.settings import Settings
from tests.ops.deploy_files import (
    BUILD_INFO_LABELS,
    DEMO,
    DEPLOY,
    K8S,
    ROOT,
    by_kind,
    defined_metrics,
    k8s_objects,
    load_all,
    metric_names_in,
    module_runs,
    selector_labels,
    setting_of,
)

PROBE_PATHS = {"/healthz", "/readyz"}
# Labels Prometheus puts on every series of a scrape target (the pods' namespace from the usual relabelling).
TARGET_LABELS = {"namespace", "job", "instance"}
# The port setting each process serves its probes on ...
PROCESS_PORT = {
    "services.api": "api_port",
    "services.worker": "metrics_port_worker",
    "services.webhooks": "metrics_port_webhooks",
    "services.provider_sim": "metrics_port_sim",
}
# ... and its /metrics (the api: never on its public port).
METRICS_PORT = {**PROCESS_PORT, "services.api": "metrics_port_api"}
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def check_command(command: list[str]) -> str:
    """The process a container command runs (`services.x` or `panelflow`); fails on one that cannot run."""
    if command[:2] == ["python", "-m"]:
        assert module_runs(command[2]), f"{command}: no module {command[2]}"
        return command[2]
    assert command[0] == "panelflow", f"unexpected command {command}"
    build_parser().parse_args(command[1:])  # SystemExit (a failure) for an unknown command or option
    return "panelflow"


# --- prometheus ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: apt-get install -y prometheus (add it to the set-up script)")
    return path


def test_alert_rules_pass_promtool(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_fire_on_bad_series_and_not_on_good_ones(promtool: str) -> None:
    tests = DEPLOY / "prometheus" / "alerts.test.yml"
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    return [rule for group in load_all(ALERTS)[0]["groups"] for rule in group["rules"]]


def test_alerts_cover_what_the_issue_asks_for() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    wanted = {
        "PanelflowOutboxLag": "panelflow_outbox_oldest_unpublished_age_seconds",
        "PanelflowParkedOrders": "panelflow_parked_orders",
        "PanelflowDeadLetterQueueNotEmpty": "panelflow_dlq_messages",
        "PanelflowWebhookFailureRate": "panelflow_webhook_deliveries_total",
        "PanelflowUpstreamCircuitOpen": "panelflow_upstream_circuit_state",
        "PanelflowApiErrors": 'panelflow_api_requests_total{status=~"5.."}',
        "PanelflowApiLatency": "panelflow_api_request_duration_seconds_bucket",
        "PanelflowWebhookEndpointDisabled": "panelflow_webhook_endpoints_disabled",
        "PanelflowSchemaBehind": "panelflow_schema_migrations_pending",
        "PanelflowProcessDown": "up == 0",
    }
    for alert, metric in wanted.items():
        assert metric in exprs.get(alert, ""), f"{alert} missing or not on {metric}"
    absent = {rule["expr"] for rule in alert_rules() if rule["alert"] == "PanelflowProcessAbsent"}
    assert absent == {f'absent(panelflow_build_info{{process="{p}"}})' for p in ("api", "worker", "webhooks")}


def test_alerts_and_dashboard_use_only_defined_metrics_and_labels() -> None:
    defined = defined_metrics()
    dashboard = json.loads((DEPLOY / "grafana" / "panelflow.json").read_text())
    exprs = [rule["expr"] for rule in alert_rules()]
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    keda = by_kind(k8s_objects(), "ScaledObject")
    exprs += [
        t["metadata"]["query"] for so in keda.values() for t in so["spec"]["triggers"] if t["type"] == "prometheus"
    ]
    assert len(exprs) > 30
    for expr in exprs:
        unknown = metric_names_in(expr) - set(defined)
        assert not unknown, f"{expr!r} uses metrics metrics.py does not define: {unknown}"
        for metric, labels in selector_labels(expr):
            labels -= TARGET_LABELS  # added by Prometheus to every series of a target, not by metrics.py
            assert labels <= defined[metric], f"{expr!r}: {metric} has no label(s) {labels - defined[metric]}"
        for clause in re.findall(r"by \(([^)]*)\)", expr):
            names = {n.strip() for n in clause.split(",")} - TARGET_LABELS
            used = [defined[m] for m in metric_names_in(expr)]
            assert any(names <= labels for labels in used), f"{expr!r}: by ({clause}) labels not on its metrics"
    # Every metric of the issue is on the dashboard.
    shown = set().union(*(metric_names_in(e) for e in exprs))
    for name in defined:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name.endswith("_info"):
            continue
        assert any(s == name or s.startswith(base) for s in shown), f"{name} is on no dashboard panel or alert"


def test_metric_labels_are_bounded() -> None:
    forbidden = {"order_id", "order", "url", "link", "key", "api_key", "request_id", "correlation_id", "account_id"}
    for name, labels in defined_metrics().items():
        assert name.startswith("panelflow_")
        assert not labels & forbidden, f"{name} has an unbounded label: {labels & forbidden}"


def test_runbook_covers_every_alert() -> None:
    text = RUNBOOK.read_text()
    headings = {m.group(1).strip() for m in re.finditer(r"(?m)^#{2,4} (.+)$", text)}
    for rule in alert_rules():
        assert rule["alert"] in headings, f"docs/operations.md has no section '{rule['alert']}'"
        assert "runbook" not in rule["annotations"], "runbook_url is the convention"
        assert rule["annotations"]["runbook_url"] == "{{ $externalLabels.runbook_base_url }}#" + rule["alert"].lower()
    for needed in ("PANELFLOW_DB_STATEMENT_CACHE_SIZE=0", "quorum", "PgBouncer", "panelflow dlq replay",
                   "panelflow orders resolve", "panelflow migrate", "webhook.replay"):  # fmt: skip
        assert needed in text, f"the runbook does not mention {needed}"


# --- compose ---------------------------------------------------------------------------------------------------


def test_compose_stack_runs_every_process_from_real_commands() -> None:
    services = load_all(DEPLOY / "compose.stack.yaml")[0]["services"]
    runs: dict[str, int] = {}
    for name, service in services.items():
        if not service["image"].startswith("panelflow:"):
            continue
        for env_name in service.get("environment", {}):
            assert setting_of(env_name), f"{name}: {env_name} is no Settings field"
        process = check_command(service["command"])
        if service.get("profiles"):
            continue
        runs[process] = runs.get(process, 0) + service.get("deploy", {}).get("replicas", 1)
        env = service.get("environment", {})
        port_setting = PROCESS_PORT.get(process)
        if port_setting is None:
            continue
        port = int(env.get(f"PANELFLOW_{port_setting.upper()}", Settings.model_fields[port_setting].default))
        check = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
        assert url, f"{name}: healthcheck does not probe http"
        if process == "services.provider_sim":
            assert int(url.group(1)) == int(env["PANELFLOW_SIM_PORT"])
        else:
            assert int(url.group(1)) == port, f"{name}: healthcheck on {url.group(1)}, the process serves {port}"
        assert url.group(2) in PROBE_PATHS
        ops_port = int(
            env.get(f"PANELFLOW_{METRICS_PORT[process].upper()}", Settings.model_fields[METRICS_PORT[process]].default)
        )
        published = {int(str(mapping).rsplit(":", 1)[1]) for mapping in service.get("ports", [])}
        assert published <= {port, ops_port, int(env.get("PANELFLOW_SIM_PORT", 0))}, name
        if process != "services.worker":  # two replicas of one service cannot publish one host port
            assert ops_port in published, f"{name}: its ops port {ops_port} (/metrics) is not published"
    assert runs == {
        "services.api": 2,
        "services.worker": 2,
        "services.webhooks": 1,
        "services.provider_sim": 1,
        "panelflow": 1,  # the migration step
    }
    assert services["migrate"]["command"] == ["panelflow", "migrate"]
    for name in ("postgres", "rabbitmq", "redis"):
        assert name in services
    assert services["api-1"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The standalone relay is there to switch on (`--profile relay`), probed and published on its ops port.
    relay = services["relay"]
    assert (check_command(relay["command"]), relay["profiles"]) == ("services.relay", ["relay"])
    assert "127.0.0.1:9104/readyz" in " ".join(relay["healthcheck"]["test"])
    assert relay["ports"] == ["127.0.0.1:9104:9104"]
    assert relay["environment"]["PANELFLOW_METRICS_PORT_RELAY"] == "9104"


def test_the_compose_demo_webhook_goes_to_a_receiver_service_of_the_stack() -> None:
    stack = load_all(DEPLOY / "compose.stack.yaml")[0]
    services = stack["services"]
    seed = services["demo-seed"]
    seed_args = build_parser().parse_args(seed["command"][1:])
    host, port = seed["environment"]["PANELFLOW_DEMO_WEBHOOK_HOST"], seed["environment"]["PANELFLOW_DEMO_WEBHOOK_PORT"]
    receiver = services[host]  # the webhook's host is a service of the stack, by its name
    assert receiver["profiles"] == seed["profiles"]
    command = receiver["command"]
    assert check_command(command) == "shared.webhooks.receiver_example"
    option = dict(zip(command[3::2], command[4::2], strict=True))
    assert option["--host"] == "0.0.0.0"  # inside its container, reached by the dispatcher
    assert option["--port"] == port
    # The secret the seed writes is the one the receiver reads, through one volume (the seed starts after it).
    assert str(seed_args.webhook_secret_file) == option["--secret-file"]
    assert float(option["--wait"]) > 0
    assert seed["depends_on"][host]["condition"] == "service_started"
    volume_dir = str(seed_args.webhook_secret_file.parent)
    mounts = {m.rsplit(":", 1)[0] if m.endswith(":ro") else m for m in receiver["volumes"]}
    assert f"{seed['volumes'][0].split(':')[0]}:{volume_dir}" in mounts
    assert str(seed_args.key_file).startswith(volume_dir + "/")  # the demo key survives `run --rm` too
    # The dispatcher (and the seed's own check) must let the compose network's private addresses through.
    env = stack["x-panelflow-env"]
    assert env["PANELFLOW_WEBHOOKS_ALLOW_HTTP"] == "true"
    allowed = [ipaddress.ip_network(n) for n in env["PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS"].split(",")]
    for docker_range in ("172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8"):
        assert any(ipaddress.ip_network(docker_range).subnet_of(n) for n in allowed), docker_range  # type: ignore[arg-type]
    assert services["webhooks"]["environment"]["PANELFLOW_WEBHOOKS_ALLOWED_NETWORKS"] == ",".join(map(str, allowed))


# --- kubernetes ------------------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    demo = load_all(DEMO / "kustomization.yaml")[0]
    assert set(demo["resources"]) == {"../k8s"} | ({p.name for p in DEMO.glob("*.yaml")} - {"kustomization.yaml"})
    assert demo["namespace"] == kustomization["namespace"]


def test_the_simulator_is_in_the_demo_overlay_only() -> None:
    def modules(objects: list[dict]) -> set[str]:
        return {
            d["spec"]["template"]["spec"]["containers"][0]["command"][2]
            for d in by_kind(objects, "Deployment").values()
        }

    assert modules(k8s_objects()) == {"services.api", "services.worker", "services.webhooks"}
    assert modules(k8s_objects(DEMO)) == {"services.provider_sim"}


def test_kubectl_kustomize_builds_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl missing: the manifests are still checked by the other tests")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"(?m)^kind: Deployment$", result.stdout)) == 3
    assert "services.provider_sim" not in result.stdout
    demo = subprocess.run([kubectl, "kustomize", str(DEMO)], capture_output=True, text=True, check=False)
    assert demo.returncode == 0, demo.stderr
    assert len(re.findall(r"(?m)^kind: Deployment$", demo.stdout)) == 4


def _container_env(container: dict, configmap: dict[str, str], secret_keys: set[str]) -> dict[str, str]:
    env = dict(configmap)
    for var in container.get("env", []):
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "panelflow-secrets"
            assert ref["key"] in secret_keys, f"unknown secret key {ref}"
            env[var["name"]] = "<secret>"
        else:
            env[var["name"]] = str(var["value"])
    return env


def test_k8s_deployments_match_the_processes() -> None:
    objects = k8s_objects() + k8s_objects(DEMO)
    configmap = by_kind(objects, "ConfigMap")["panelflow-config"]["data"]
    secret_keys = set(by_kind(objects, "Secret")["panelflow-secrets"]["stringData"])
    for env_name in configmap:
        assert setting_of(env_name), f"ConfigMap: {env_name} is no Settings field"
    defaults = Settings()
    drain = {
        "services.api": SHUTDOWN_TIMEOUT_S + defaults.relay_publish_timeout_s,
        "services.worker": 2 * float(configmap["PANELFLOW_WORKER_DRAIN_S"]),
        "services.webhooks": float(configmap["PANELFLOW_CONSUMER_STOP_TIMEOUT_S"]) + defaults.webhook_timeout_s + 2,
        "services.provider_sim": 1,
    }
    seen = set()
    for job in by_kind(objects, "Job").values():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert check_command(container["command"]) == "panelflow"
        env = _container_env(container, configmap, secret_keys)
        assert all(setting_of(name) for name in env)
    for name, deployment in by_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        process = check_command(container["command"])
        seen.add(process)
        env = _container_env(container, configmap, secret_keys)
        for env_name in env:
            assert setting_of(env_name), f"{name}: {env_name} is no Settings field"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        serving = int(env[f"PANELFLOW_{PROCESS_PORT[process].upper()}"])
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name}: {probe} on {get['path']}"
            assert ports[get["port"]] == serving, f"{name}: {probe} port {get['port']} is not {serving}"
        metrics_port = int(env[f"PANELFLOW_{METRICS_PORT[process].upper()}"])
        assert int(pod["metadata"]["annotations"]["prometheus.io/port"]) == metrics_port
        assert metrics_port in ports.values(), f"{name}: no container port for /metrics ({metrics_port})"
        assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
        assert pod["spec"]["terminationGracePeriodSeconds"] >= drain[process], f"{name}: grace below its drain"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert "requests" in container["resources"]
        assert "memory" in container["resources"]["limits"]
        if process in ("services.api", "services.worker", "services.webhooks"):
            assert env.get("PANELFLOW_DATABASE_URL") == "<secret>"
            assert env.get("PANELFLOW_AMQP_URL") == "<secret>"
    assert seen == set(PROCESS_PORT)
    assert configmap["PANELFLOW_DB_STATEMENT_CACHE_SIZE"] == "0"  # through PgBouncer


def test_k8s_pods_migrate_before_they_start_and_autoscaled_deployments_leave_replicas_alone() -> None:
    objects = k8s_objects()
    configmap = by_kind(objects, "ConfigMap")["panelflow-config"]["data"]
    secret_keys = set(by_kind(objects, "Secret")["panelflow-secrets"]["stringData"])
    deployments = by_kind(objects, "Deployment")
    autoscaled = {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(objects, "HorizontalPodAutoscaler").values()}
    autoscaled |= {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(objects, "ScaledObject").values()}
    assert autoscaled == set(deployments)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], f"{name}: replicas fights its autoscaler on every apply"
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["command"] == ["panelflow", "migrate", "--wait"], name
        assert init["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"], name
        env = _container_env(init, configmap, secret_keys)
        direct = next(v for v in init["env"] if v["name"] == "PANELFLOW_DATABASE_URL")
        assert direct["valueFrom"]["secretKeyRef"]["key"] == "database-url-direct", name
        assert env["PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY"] == "<secret>", name
        assert all(setting_of(var) for var in env), name
    assert not by_kind(objects, "Job"), "migrations run in the pods' init containers, not a Job to re-create"


def test_k8s_autoscaling_and_disruption_budgets_target_real_things() -> None:
    objects = k8s_objects()
    deployments = by_kind(objects, "Deployment")
    configmap = by_kind(objects, "ConfigMap")["panelflow-config"]["data"]
    (hpa,) = by_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "panelflow-api"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    scaled = by_kind(objects, "ScaledObject")
    worker_trigger = scaled["panelflow-worker"]["spec"]["triggers"][0]
    prefixed = Settings(amqp_prefix=configmap["PANELFLOW_AMQP_PREFIX"])
    assert worker_trigger["type"] == "rabbitmq"
    assert worker_trigger["metadata"]["queueName"] == topology.queue_name(prefixed, topology.WORKER_QUEUE)
    auth = by_kind(objects, "TriggerAuthentication")[worker_trigger["authenticationRef"]["name"]]
    assert auth["spec"]["secretTargetRef"][0]["key"] == "amqp-url"
    dispatcher_trigger = scaled["panelflow-webhooks"]["spec"]["triggers"][0]
    assert dispatcher_trigger["type"] == "prometheus"
    assert "panelflow_webhook_backlog" in dispatcher_trigger["metadata"]["query"]
    for so in scaled.values():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        assert so["spec"]["minReplicaCount"] >= 1  # pollers, sweeper and dispatch loop must always run
    budgets = by_kind(objects, "PodDisruptionBudget")
    covered = set()
    for pdb in budgets.values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        matches = [
            n for n, d in deployments.items() if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"PDB {pdb['metadata']['name']} selects {matches}"
        covered.add(matches[0])
    assert {"panelflow-api", "panelflow-worker", "panelflow-webhooks"} <= covered
    for service in by_kind(objects, "Service").values():
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values()
        )


def _pods(objects: list[dict]) -> dict[str, dict]:
    """The pod template of every Deployment and Job, by its workload's name."""
    return {
        name: workload["spec"]["template"]
        for kind in ("Deployment", "Job")
        for name, workload in by_kind(objects, kind).items()
    }


def test_every_pod_has_seccomp_runtime_default_and_no_service_account_token() -> None:
    pods = _pods(k8s_objects() + k8s_objects(DEMO))
    assert set(pods) == {"panelflow-api", "panelflow-worker", "panelflow-webhooks", "panelflow-provider-sim"}
    for name, pod in pods.items():
        spec = pod["spec"]
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, (name, container["name"])


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _policies_for(policies: dict[str, dict], labels: dict[str, str]) -> list[dict]:
    return [p for p in policies.values() if _selects(p["spec"]["podSelector"], labels)]


def test_network_policies_let_only_the_ingress_reach_the_api_and_only_our_pods_reach_the_data_stores() -> None:
    objects = k8s_objects() + k8s_objects(DEMO)
    policies = by_kind(objects, "NetworkPolicy")
    pods = _pods(objects)
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule open to every source"

    api_pod = pods["panelflow-api"]
    (api_policy,) = _policies_for(policies, api_pod["metadata"]["labels"])
    (container,) = api_pod["spec"]["containers"]
    named = {p["name"] for p in container["ports"]}
    by_port = {rule["ports"][0]["port"]: rule for rule in api_policy["spec"]["ingress"]}
    assert set(by_port) == {"http", "ops"} <= named
    (ingress_peer,) = by_port["http"]["from"]
    assert ingress_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert ingress_peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    (scraper,) = by_port["ops"]["from"]
    assert set(scraper) == {"namespaceSelector"}  # Prometheus: the metrics, never the public port

    # Every pod of ours serving a port is covered by a policy (nothing left open by default).
    for name in ("panelflow-api", "panelflow-worker", "panelflow-webhooks", "panelflow-provider-sim"):
        assert _policies_for(policies, pods[name]["metadata"]["labels"]), name

    ours = {pod["metadata"]["labels"]["app.kubernetes.io/name"] for pod in pods.values()}
    for store in ("postgres", "pgbouncer", "rabbitmq", "redis"):
        covering = _policies_for(policies, {"app.kubernetes.io/name": store})
        assert covering, f"nothing restricts who reaches {store}"
        allowed: set[str] = set()
        for policy in covering:
            for rule in policy["spec"]["ingress"]:
                for peer in rule["from"]:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        (expr,) = peer["podSelector"]["matchExpressions"]
                        allowed |= set(expr["values"])
                    else:  # only KEDA's namespace, to RabbitMQ (its queue-length trigger)
                        assert store == "rabbitmq", (store, peer)
                        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
        data_stores = {"postgres", "pgbouncer", "rabbitmq", "redis"}
        assert {"panelflow-api", "panelflow-worker", "panelflow-webhooks"} <= allowed
        assert allowed <= ours | data_stores, allowed - ours - data_stores


# --- image -----------------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"(?m)^FROM \S+ AS (\w+)", text)
    assert len(stages) >= 2
    user = re.findall(r"(?m)^USER (\S+)", text)
    assert user
    assert not user[-1].startswith(("root", "0"))
    for source in re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", text):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"
    for env_name in re.findall(r"\b(PANELFLOW_[A-Z0-9_]+)=", text):
        assert setting_of(env_name), f"Dockerfile: {env_name} is no Settings field"
    cmd = re.search(r"(?m)^CMD (.+)$", text)
    assert cmd is not None
    check_command(json.loads(cmd.group(1)))


def test_build_info_labels_are_what_set_build_info_sets() -> None:
    metrics.set_build_info("api", "test")
    (family,) = metrics.BUILD_INFO.collect()
    assert set(family.samples[0].labels) == BUILD_INFO_LABELS


def test_dashboard_filters_every_panel_by_namespace_job_instance_and_shows_processes_up() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "panelflow.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"namespace", "job", "instance"} <= variables.keys()
    for name in ("namespace", "job", "instance"):
        assert variables[name]["includeAll"] is True
        assert f", {name})" in variables[name]["query"]["query"]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric, labels in selector_labels(target["expr"]):
                assert labels >= TARGET_LABELS, f"{panel['title']}: {metric} not filtered by {TARGET_LABELS - labels}"
    assert dashboard["panels"][0] == {**dashboard["panels"][0], "type": "row", "title": "Processes"}
    row = [p for p in dashboard["panels"] if p["gridPos"]["y"] < 10 and p["type"] != "row"]
    assert row, "no panel in the Processes row"
    assert all(any("up{" in t["expr"] for t in p["targets"]) for p in row)
    positions = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in dashboard["panels"]]
    assert len(set(positions)) == len(positions), "panels overlap"
