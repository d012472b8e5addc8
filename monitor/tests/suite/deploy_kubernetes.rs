//! deploy/kubernetes: every YAML document parses (PyYAML, through
//! python3), and the DaemonSet, ConfigMap, Service and PodMonitor say what
//! the daemon needs: the host's network, the three capabilities and not
//! privileged, bpffs and BTF mounts, probes on /healthz at the metrics
//! port, resources, and a config that `handshake-monitor check-config`
//! accepts.

use crate::support;

use serde_json::Value;
use support::deploy::{TempDir, check_config, deploy_file, run_tool};

const MANIFEST: &str = "kubernetes/handshake-monitor.yaml";
const METRICS_PORT: u64 = 9879;

/// Every document of the manifest, as JSON.
fn documents() -> Vec<Value> {
    let path = deploy_file(MANIFEST);
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                  print(json.dumps(docs))";
    let (ok, out) = run_tool("/usr/bin/python3", &["-c", script, path.to_str().unwrap()]);
    assert!(ok, "{MANIFEST} does not parse as YAML:\n{out}");
    let docs: Value = serde_json::from_str(out.trim()).expect("JSON from python3");
    docs.as_array().expect("a list of documents").clone()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{MANIFEST} should hold one {kind}");
    found[0]
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_manifest_holds_the_expected_kinds_in_one_namespace() {
    let docs = documents();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ConfigMap",
            "DaemonSet",
            "Service",
            "PodMonitor"
        ]
    );
    for doc in &docs[1..] {
        assert_eq!(
            doc["metadata"]["namespace"], "handshake-monitor",
            "{} in the namespace",
            doc["kind"]
        );
    }
    assert_eq!(
        of_kind(&docs, "PodMonitor")["apiVersion"],
        "monitoring.coreos.com/v1"
    );
}

#[test]
fn the_daemonset_runs_on_the_host_network_with_three_capabilities() {
    let docs = documents();
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "hostNetwork");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert!(
        sc["privileged"].is_null() || sc["privileged"] == false,
        "the container must not be privileged: {sc}"
    );
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let mut add = strings(&sc["capabilities"]["add"]);
    add.sort_unstable();
    assert_eq!(add, ["BPF", "NET_ADMIN", "PERFMON"], "capabilities.add");
    assert!(
        pod["securityContext"]["privileged"].is_null(),
        "no pod-level privilege"
    );

    // Mounts: bpffs read-write, BTF read-only, both from the host.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let host_path = |path: &str| {
        volumes
            .iter()
            .find(|v| v["hostPath"]["path"] == path)
            .and_then(|v| v["name"].as_str())
            .unwrap_or_else(|| panic!("no hostPath volume for {path}"))
    };
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let mount = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} is not mounted"))
    };
    let bpffs = mount(host_path("/sys/fs/bpf"));
    assert_eq!(bpffs["mountPath"], "/sys/fs/bpf");
    assert!(
        bpffs["readOnly"].is_null() || bpffs["readOnly"] == false,
        "bpffs writable"
    );
    let btf = mount(host_path("/sys/kernel/btf"));
    assert_eq!(btf["mountPath"], "/sys/kernel/btf");
    assert_eq!(btf["readOnly"], true, "BTF read-only");

    // Metrics on the node's address, probes on /healthz there.
    let ports = c["ports"].as_array().expect("ports");
    let metrics = ports
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(metrics["containerPort"], METRICS_PORT);
    let args = strings(&c["args"]);
    let at = args
        .iter()
        .position(|a| *a == "--metrics-addr")
        .expect("--metrics-addr in args");
    assert_eq!(args[at + 1], format!("$(HOST_IP):{METRICS_PORT}"));
    let host_ip = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "HOST_IP")
        .expect("HOST_IP in env");
    assert_eq!(
        host_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert!(
            get["port"] == "metrics" || get["port"] == METRICS_PORT,
            "{probe} on the metrics port: {get}"
        );
    }
    for (kind, key) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            !c["resources"][kind][key].is_null(),
            "resources.{kind}.{key}"
        );
    }

    // The config file the args name is the ConfigMap's.
    assert_eq!(args[0], "run");
    let config = args[args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config")
        + 1];
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == "handshake-monitor")
        .and_then(|v| v["name"].as_str())
        .expect("a ConfigMap volume");
    let dir = mount(config_volume)["mountPath"].as_str().unwrap();
    assert_eq!(config, format!("{dir}/config.toml"));
    let cm = of_kind(&docs, "ConfigMap");
    assert!(
        cm["data"]["config.toml"].is_string(),
        "ConfigMap key config.toml"
    );
}

#[test]
fn the_configmaps_config_passes_check_config() {
    let docs = documents();
    let text = of_kind(&docs, "ConfigMap")["data"]["config.toml"]
        .as_str()
        .expect("config.toml");
    let dir = TempDir::new("k8s");
    let settings = check_config(&dir.write("config.toml", text));
    // Its pin directory is on the bpffs mount, its control socket on the
    // emptyDir.
    assert!(
        settings.contains("pin_dir = \"/sys/fs/bpf/handshake-monitor\""),
        "{settings}"
    );
    let ds = of_kind(&docs, "DaemonSet");
    let mounts = &ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    let socket_dir = "/run/handshake-monitor";
    assert!(
        settings.contains(&format!("control_socket = \"{socket_dir}/control.sock\"")),
        "{settings}"
    );
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == socket_dir),
        "{socket_dir} is mounted (the root file system is read-only)"
    );
}

#[test]
fn the_service_and_podmonitor_select_the_daemonsets_pods() {
    let docs = documents();
    let labels = &of_kind(&docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector
            .as_object()
            .expect("a selector")
            .iter()
            .all(|(k, v)| labels[k] == *v)
    };
    let svc = of_kind(&docs, "Service");
    assert!(
        selects(&svc["spec"]["selector"]),
        "the Service selects the pods"
    );
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["port"], METRICS_PORT);
    let pm = of_kind(&docs, "PodMonitor");
    assert!(
        selects(&pm["spec"]["selector"]["matchLabels"]),
        "the PodMonitor selects the pods"
    );
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/metrics");
    // The job label the Prometheus rules' HandshakeMonitorDown expects.
    let relabels = endpoint["relabelings"].as_array().expect("relabelings");
    assert!(
        relabels
            .iter()
            .any(|r| r["targetLabel"] == "job" && r["replacement"] == "handshake-monitor"),
        "job=\"handshake-monitor\" relabeling"
    );
}
