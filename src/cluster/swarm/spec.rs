//! The Swarm services the swarm engine creates, as bollard values: pure functions of
//! the plan, so what Swarm is asked for is unit-tested without a swarm.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Mount, MountType, NetworkAttachmentConfig, ServiceSpec,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

/// Swarm's template for a task's name (`<service>.<slot>.<task id>`): what each
/// replica reports as `X-Served-By` and `{instance}` stands for.
pub const TASK_NAME: &str = "{{.Task.Name}}";

/// The replicas' service: `replicas` tasks of one spec on the run's overlay network,
/// reached by DNS round robin (`tasks.<name>`), never through the routing mesh.
#[derive(Debug, Clone)]
pub struct Replicas<'a> {
    pub name: &'a str,
    /// An image id (`sha256:…`): Swarm then uses the node's image and never tries a
    /// registry, which this machine has none of.
    pub image: &'a str,
    pub replicas: usize,
    pub entrypoint: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub network: &'a str,
    /// Before a failed task's replacement starts (Swarm's default: 5 s).
    pub restart_delay: Duration,
}

pub fn replicas(r: &Replicas<'_>) -> ServiceSpec {
    ServiceSpec {
        name: Some(r.name.to_string()),
        labels: Some(r.labels.clone()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(r.replicas as i64),
            }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(r.image.to_string()),
                labels: Some(r.labels.clone()),
                command: (!r.entrypoint.is_empty()).then(|| r.entrypoint.clone()),
                args: (!r.args.is_empty()).then(|| r.args.clone()),
                env: Some(r.env.clone()),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(r.restart_delay.as_nanos() as i64),
                max_attempts: Some(0),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(r.network.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: None,
        }),
        ..Default::default()
    }
}

/// A one-shot job on one node: the harness's own binary (`image`, an id) runs
/// `command` there with that node's engine socket, once, and is never restarted.
/// How the manager acts on one task's container, which its API cannot do.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub command: Vec<String>,
    pub node: &'a str,
    /// The engine's socket on the node, and where it goes in the job's container.
    pub socket: &'a str,
    pub socket_in_container: &'a str,
    pub labels: HashMap<String, String>,
}

pub fn job(j: &Job<'_>) -> ServiceSpec {
    ServiceSpec {
        name: Some(j.name.to_string()),
        labels: Some(j.labels.clone()),
        mode: Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: Some(1),
            }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(j.image.to_string()),
                labels: Some(j.labels.clone()),
                command: Some(j.command.clone()),
                mounts: Some(vec![Mount {
                    target: Some(j.socket_in_container.to_string()),
                    source: Some(j.socket.to_string()),
                    typ: Some(MountType::BIND),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={}", j.node)]),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_one_dnsrr_service_with_the_plan_s_restart_delay() {
        let labels = HashMap::from([("sessionstorm.run".to_string(), "r1".to_string())]);
        let spec = replicas(&Replicas {
            name: "sessionstorm-r1-replicas",
            image: "sha256:abc",
            replicas: 3,
            entrypoint: vec![],
            args: vec!["--x".into()],
            env: vec!["PORT=8080".into()],
            labels: labels.clone(),
            network: "sessionstorm-r1",
            restart_delay: Duration::from_millis(1500),
        });
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
        assert_eq!(
            spec.endpoint_spec.unwrap().mode,
            Some(EndpointSpecModeEnum::DNSRR)
        );
        let task = spec.task_template.unwrap();
        let policy = task.restart_policy.unwrap();
        assert_eq!(policy.delay, Some(1_500_000_000));
        assert_eq!(
            policy.condition,
            Some(TaskSpecRestartPolicyConditionEnum::ANY)
        );
        let container = task.container_spec.unwrap();
        assert_eq!(container.labels, Some(labels.clone()));
        assert_eq!(container.command, None, "the image's entry point is kept");
        assert_eq!(container.args, Some(vec!["--x".to_string()]));
        assert_eq!(spec.labels, Some(labels));
        assert_eq!(
            task.networks.unwrap()[0].target.as_deref(),
            Some("sessionstorm-r1")
        );
    }

    #[test]
    fn a_job_runs_once_on_its_node_with_the_engine_socket() {
        let spec = job(&Job {
            name: "sessionstorm-r1-agent-0",
            image: "sha256:def",
            command: vec!["/sessionstorm".into(), "agent".into(), "kill".into()],
            node: "node1",
            socket: "/run/docker.sock",
            socket_in_container: "/var/run/docker.sock",
            labels: HashMap::new(),
        });
        let mode = spec.mode.unwrap().replicated_job.unwrap();
        assert_eq!(
            (mode.max_concurrent, mode.total_completions),
            (Some(1), Some(1))
        );
        let task = spec.task_template.unwrap();
        assert_eq!(
            task.placement.unwrap().constraints.unwrap(),
            vec!["node.id==node1".to_string()]
        );
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let mount = &task.container_spec.unwrap().mounts.unwrap()[0];
        assert_eq!(mount.source.as_deref(), Some("/run/docker.sock"));
        assert_eq!(mount.target.as_deref(), Some("/var/run/docker.sock"));
    }
}
