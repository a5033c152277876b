//! Validation of whole scenarios: defaults, overrides, and every problem reported
//! at once with its place.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::plan::*;

const GOOD: &str = r#"
name = "smoke"
seed = 7
duration = "30s"

[service]
replicas = 3
env = { MODE = "redis" }

[load]
model = "closed"
users = 8
appends_per_session = 5

[[chaos]]
fault = "kill"
every = "5s"
"#;

fn plan(text: &str) -> Result<Plan, Vec<Problem>> {
    let source = Source {
        path: PathBuf::from("s.toml"),
        text: text.to_string(),
    };
    build(&source, &Overrides::default())
}

#[test]
fn good_scenario_gets_defaults() {
    let plan = plan(GOOD).unwrap();
    assert_eq!(plan.seed, 7);
    assert_eq!(plan.duration, Duration::from_secs(30));
    assert_eq!(plan.service.replicas, 3);
    assert_eq!(plan.service.port, 8080);
    assert_eq!(plan.service.image, "sessionstorm/session-app:latest");
    assert_eq!(plan.store.image, "sessionstorm/redis:latest");
    assert_eq!(plan.load.retries, 3);
    assert_eq!(
        plan.load.model,
        Model::Closed {
            users: 8,
            think: Think::Fixed(Duration::ZERO)
        }
    );
    assert_eq!(plan.load.ops_per_session(), 11);
    assert_eq!(
        plan.chaos,
        vec![ChaosPlan {
            fault: Fault::Kill,
            target: Target::RandomReplica,
            schedule: Schedule::Every(Duration::from_secs(5)),
            start_after: Duration::ZERO,
            duration: Duration::from_secs(3),
            grace: Duration::from_secs(2),
            after_kill: AfterKill::Replace,
        }]
    );
}

#[test]
fn overrides_win() {
    let source = Source {
        path: PathBuf::from("s.toml"),
        text: GOOD.to_string(),
    };
    let overrides = Overrides {
        seed: Some(99),
        duration: Some(Duration::from_secs(3)),
        ..Overrides::default()
    };
    let plan = build(&source, &overrides).unwrap();
    assert_eq!((plan.seed, plan.duration), (99, Duration::from_secs(3)));
}

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    let bad = GOOD
        .replace("replicas = 3", "replicas = 0")
        .replace("users = 8", "users = -1")
        .replace("\"kill\"", "\"explode\"")
        .replace("\"30s\"", "\"5 parsecs\"");
    let problems = plan(&bad).unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 4, "{text:#?}");
    assert!(
        text[0].starts_with("s.toml:4:12:") && text[0].contains("parsecs"),
        "{text:#?}"
    );
    assert!(
        text[1].contains("service.replicas") && text[1].contains("between 1 and 64"),
        "{text:#?}"
    );
    assert!(text[2].contains("load.users"), "{text:#?}");
    assert!(
        text[3].contains("explode") && text[3].contains("\"kill\""),
        "{text:#?}"
    );
}

#[test]
fn open_model_takes_a_rate_or_stages() {
    let open = GOOD.replace(
        "model = \"closed\"\nusers = 8",
        "rate = 250\nwarmup = \"2s\"",
    );
    let planned = plan(&open).unwrap();
    assert_eq!(
        planned.load.model,
        Model::Open {
            profile: RateProfile::constant(250.0),
            max_in_flight: 10_000,
            session_interval: Duration::from_secs(1),
            start_window: crate::plan::DEFAULT_START_WINDOW,
        }
    );
    assert_eq!(planned.load.warmup, Duration::from_secs(2));
    let exact = plan(&open.replace("rate = 250", "rate = 250\nstart_window = \"0s\"")).unwrap();
    let Model::Open { start_window, .. } = exact.load.model else {
        panic!("open")
    };
    assert_eq!(start_window, Duration::ZERO);
    let staged = GOOD.replace(
        "model = \"closed\"\nusers = 8",
        "model = \"open\"\nstages = [{ to = 100, over = \"10s\" }, { to = 50, over = \"5s\" }]",
    );
    let Model::Open { profile, .. } = plan_model(&staged) else {
        panic!("open model expected")
    };
    assert_eq!(profile.start, 0.0);
    assert_eq!(profile.stages.len(), 2);
    assert_eq!(profile.stages[1].to, 50.0);
}

#[test]
fn users_alone_imply_the_closed_model() {
    let implied = GOOD.replace("model = \"closed\"\n", "");
    assert!(matches!(
        plan_model(&implied),
        Model::Closed { users: 8, .. }
    ));
}

fn plan_model(text: &str) -> Model {
    plan(text).unwrap().load.model
}

#[test]
fn load_model_mistakes_are_named() {
    let cases = [
        (
            "model = \"closed\"\nusers = 8",
            "model = \"open\"",
            "needs `load.rate`",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "model = \"open\"\nrate = 0",
            "`load.rate` is 0",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "rate = 10\nusers = 8",
            "`load.users` belongs to the closed model",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "model = \"closed\"",
            "needs `load.users`",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "model = \"closed\"\nusers = 8\nrate = 5",
            "`load.rate` belongs to the open model",
        ),
        (
            "model = \"closed\"",
            "model = \"poisson\"",
            "accepted values: \"open\", \"closed\"",
        ),
        (
            "users = 8",
            "users = 8\nthink_time = \"1s\"\nthink_distribution = \"gauss\"",
            "\"fixed\", \"exponential\"",
        ),
        (
            "users = 8",
            "users = 8\nthreads = 0",
            "`load.threads` is 0; it must be between 1 and 256",
        ),
        (
            "users = 8",
            "users = 8\nmax_connections = 0",
            "`load.max_connections` is 0; it must be between 1 and 1000000",
        ),
        (
            "users = 8",
            "users = 8\nstart_window = \"1ms\"",
            "`load.start_window` belongs to the open model",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "rate = 10\nstart_window = \"20ms\"",
            "`load.start_window` = \"20ms\" is too long: it is how late an operation may start, at most 10ms; \"0s\" starts",
        ),
        (
            "model = \"closed\"\nusers = 8",
            "rate = 10\nstart_window = \"soon\"",
            "load.start_window",
        ),
    ];
    for (from, to, expected) in cases {
        let problems = plan(&GOOD.replace(from, to)).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains(expected)),
            "{to:?}: {problems:#?}"
        );
    }
}

#[test]
fn zero_duration_is_rejected() {
    let problems = plan(&GOOD.replace("\"30s\"", "\"0s\"")).unwrap_err();
    assert!(problems[0].message.contains("longer than zero"));
}

fn chaos_problems(chaos: &str) -> Vec<String> {
    let text = GOOD.replace("[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n", chaos);
    plan(&text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn new_chaos_keys_parse() {
    let text = GOOD.replace(
        "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
        "min_alive = 2\n[[chaos]]\nfault = \"pause\"\ntarget = \"34%\"\nmean_interval = \"3s\"\nduration = \"1s\"\n\
         [[chaos]]\nfault = \"stop\"\ntarget = \"replica-2\"\nat = [\"9s\", \"2s\"]\ngrace = \"1s\"\nafter_kill = \"none\"\n\
         [[chaos]]\nfault = \"restart\"\nschedule = \"rolling\"\n",
    );
    // `min_alive` is a top-level key: put it before the first table.
    let text = format!("min_alive = 2\n{}", text.replace("min_alive = 2\n", ""));
    let plan = plan(&text).unwrap();
    assert_eq!(plan.min_alive, 2);
    assert_eq!(plan.chaos[0].target, Target::Share(34));
    assert_eq!(
        plan.chaos[0].schedule,
        Schedule::Poisson(Duration::from_secs(3))
    );
    assert_eq!(plan.chaos[0].duration, Duration::from_secs(1));
    assert_eq!(plan.chaos[1].target, Target::Replica(2));
    assert_eq!(
        plan.chaos[1].schedule,
        Schedule::At(vec![Duration::from_secs(2), Duration::from_secs(9)])
    );
    assert_eq!(plan.chaos[1].after_kill, AfterKill::None);
    assert_eq!(
        plan.chaos[2].schedule,
        Schedule::Rolling(Duration::from_secs(5))
    );
}

#[test]
fn each_new_chaos_key_is_checked_with_its_place_and_accepted_values() {
    let cases = [
        (
            "[[chaos]]\nfault = \"kill\"\ntarget = \"replica-3\"\nevery = \"1s\"\n",
            "replica-0 to replica-2",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\ntarget = \"150%\"\nevery = \"1s\"\n",
            "1% to 100%",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\ntarget = \"db\"\nevery = \"1s\"\n",
            "\"store\", \"store-primary\", \"store-<n>\" (a member, from 0), \"balancer\"",
        ),
        ("[[chaos]]\nfault = \"kill\"\n", "has no schedule"),
        (
            "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nat = [\"2s\"]\n",
            "more than one schedule",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\nschedule = \"sometimes\"\n",
            "\"rolling\"",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\nat = [\"2 fortnights\"]\n",
            "chaos.at",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nduration = \"2s\"\n",
            "only to temporary faults",
        ),
        (
            "[[chaos]]\nfault = \"pause\"\nevery = \"1s\"\nafter_kill = \"none\"\n",
            "only to \"kill\", \"stop\", \"oom\" and \"failover\"",
        ),
        (
            "[[chaos]]\nfault = \"cpu\"\nevery = \"1s\"\n",
            "needs `cpus`",
        ),
        (
            "[[chaos]]\nfault = \"cpu\"\ncpus = 0.001\nevery = \"1s\"\n",
            "accepted values: 0.01 to 64",
        ),
        (
            "[[chaos]]\nfault = \"loss\"\nloss = \"100%\"\nevery = \"1s\"\n",
            "1% to 99%",
        ),
        (
            "[[chaos]]\nfault = \"bandwidth\"\nrate = \"1 mb/s\"\nevery = \"1s\"\n",
            "unknown unit",
        ),
        (
            "[[chaos]]\nfault = \"oom\"\nmemory = \"2MiB\"\nevery = \"1s\"\n",
            "at least 6MiB",
        ),
        (
            "[[chaos]]\nfault = \"slow_store\"\nevery = \"5s\"\n",
            "needs `delay`",
        ),
        (
            "[[chaos]]\nfault = \"slow_store\"\ndelay = \"1s\"\ntarget = \"replica-0\"\nevery = \"5s\"\n",
            "acts on the store only",
        ),
        (
            "[[chaos]]\nfault = \"pause\"\njitter = \"1s\"\nevery = \"5s\"\n",
            "`chaos.jitter` applies only to fault \"latency\", \"slow_store\" and \"store_lag\"",
        ),
        (
            "[[chaos]]\nfault = \"latency\"\ndelay = \"1s\"\ntarget = \"balancer\"\nevery = \"5s\"\n",
            "on the balancer is not supported yet",
        ),
        (
            "[[chaos]]\nfault = \"latency\"\ndelay = \"50s\"\njitter = \"20s\"\nevery = \"5s\"\n",
            "within 60s",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\ncpus = 0.5\nevery = \"1s\"\n",
            "`chaos.cpus` applies only to fault \"cpu\"",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nafter_kill = \"resurrect\"\n",
            "\"replace\", \"restart\", \"none\"",
        ),
        (
            "[[chaos]]\nfault = \"fire\"\nevery = \"1s\"\n",
            "\"blackhole\"",
        ),
        (
            "[[chaos]]\nfault = \"restart\"\nschedule = \"rolling\"\ntarget = \"store\"\n",
            "leave `target` out",
        ),
        (
            "[[chaos]]\nfault = \"memory_pressure\"\nevery = \"5s\"\n",
            "needs `memory`, the store's maxmemory",
        ),
        (
            "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"512KiB\"\nevery = \"5s\"\n",
            "at least 1MiB",
        ),
        (
            "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"2MiB\"\ntarget = \"replica-0\"\nevery = \"5s\"\n",
            "acts on the store only",
        ),
    ];
    for (chaos, expected) in cases {
        let problems = chaos_problems(chaos);
        assert_eq!(problems.len(), 1, "{chaos}: {problems:#?}");
        assert!(problems[0].starts_with("s.toml:1"), "{problems:#?}");
        assert!(problems[0].contains(expected), "{chaos}: {problems:#?}");
    }
}

#[test]
fn min_alive_and_store_persistence_are_checked() {
    let problems = plan(&format!("min_alive = 4\n{GOOD}")).unwrap_err();
    assert!(
        problems[0].message.contains("between 0 and 3"),
        "{problems:?}"
    );
    let text = GOOD.replace("[load]", "[store]\npersistence = \"rdb\"\n[load]");
    let problems = plan(&text).unwrap_err();
    assert!(
        problems[0].message.contains("\"none\", \"aof\""),
        "{problems:?}"
    );
    let text = GOOD.replace(
        "[load]",
        "[store]\npersistence = \"aof\"\n[balancer]\nsticky = true\n[load]",
    );
    let plan = plan(&text).unwrap();
    assert_eq!(plan.store.persistence, Persistence::Aof);
    assert!(plan.balancer.sticky);
}

#[test]
fn store_eviction_and_memory_pressure_are_for_a_redis() {
    let pressure = "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"2MiB\"\nevery = \"5s\"\n";
    let redis = GOOD.replace("[load]", "[store]\neviction = \"allkeys-lru\"\n[load]");
    let planned = plan(&format!("{redis}{pressure}")).unwrap();
    assert_eq!(planned.store.eviction.as_deref(), Some("allkeys-lru"));
    let entry = planned.chaos.last().unwrap();
    assert_eq!(
        (entry.fault, entry.target),
        (Fault::MemoryPressure { bytes: 2 << 20 }, Target::Store)
    );
    let unknown = GOOD.replace("[load]", "[store]\neviction = \"lru\"\n[load]");
    let problems = plan(&unknown).unwrap_err();
    assert!(
        problems[0]
            .message
            .contains("accepted values: \"noeviction\", \"allkeys-lru\""),
        "{problems:?}"
    );
    let tcp = GOOD.replace(
        "[load]",
        "[store]\nimage = \"sessionstorm/memcached\"\nport = 11211\neviction = \"allkeys-lru\"\n[load]",
    );
    let problems = plan(&format!("{tcp}{pressure}")).unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("is a Redis setting"), "{messages:?}");
    assert!(
        messages[1].contains("through Redis's protocol"),
        "{messages:?}"
    );
}
fn replica_values(port: u16) -> crate::plan::template::Values<'static> {
    crate::plan::template::Values {
        store: "store",
        store_port: port,
        store_nodes: "store:6379",
        replica: Some((1, "replica-1.0")),
    }
}

#[test]
fn the_demo_finds_its_store_without_configuration() {
    let plan = plan(GOOD).unwrap();
    assert_eq!(plan.store.kind, StoreKind::Redis);
    assert_eq!(plan.store.port, 6379);
    assert_eq!(plan.balancer.kind, BalancerKind::Haproxy);
    let url = plan.service.env["SESSION_STORE"].render(&replica_values(6379));
    assert_eq!(url, "redis://store:6379");
    assert!(plan.service.command.is_empty() && plan.store.command.is_empty());
}

#[test]
fn any_image_any_store_and_a_direct_balancer() {
    let text = GOOD.replace(
        "env = { MODE = \"redis\" }\n",
        "env = { MODE = \"redis\", SESSION_STORE = \"redis://{store}:{store_port}/{replica}\" }\n\
         command = [\"--name\", \"{instance}\"]\n\
         [store]\nimage = \"sessionstorm/memcached\"\nport = 11211\ncommand = [\"-p\", \"{store_port}\"]\n\
         [balancer]\nkind = \"direct\"\nsticky = true\n",
    );
    let given = plan(&text).unwrap();
    assert_eq!(
        given.store.kind,
        StoreKind::Tcp,
        "another image is a tcp store"
    );
    assert_eq!(given.store.port, 11211);
    let values = replica_values(11211);
    assert_eq!(
        given.service.env["SESSION_STORE"].render(&values),
        "redis://store:11211/1"
    );
    assert_eq!(given.service.command[1].render(&values), "replica-1.0");
    assert_eq!(given.store.command[1].render(&values), "11211");
    assert_eq!(given.balancer.kind, BalancerKind::Direct);
    assert_eq!(given.balancer.describe(), "direct (sticky)");
    assert_eq!(
        given.store.describe(),
        "sessionstorm/memcached (port 11211)"
    );

    let none = GOOD.replace("[load]", "[store]\nkind = \"none\"\n[load]");
    let without = plan(&none).unwrap();
    assert_eq!(without.store.kind, StoreKind::None);
    assert!(!without.service.env.contains_key("SESSION_STORE"));
}

#[test]
fn a_fixed_balancer_port_is_for_haproxy_only() {
    let fixed = GOOD.replace("[load]", "[balancer]\nport = 18080\n[load]");
    assert_eq!(plan(&fixed).unwrap().balancer.port, Some(18080));
    let zero = GOOD.replace("[load]", "[balancer]\nport = 0\n[load]");
    assert!(plan(&zero).unwrap_err()[0]
        .message
        .contains("`balancer.port` is 0"));
    let direct = GOOD.replace(
        "[load]",
        "[balancer]\nkind = \"direct\"\nport = 18080\n[load]",
    );
    let problems = plan(&direct).unwrap_err();
    assert!(problems[0].message.contains("no balancer"), "{problems:?}");
}

#[test]
fn https_replicas_are_trusted_unless_load_tls_says_otherwise() {
    assert_eq!(plan(GOOD).unwrap().service.scheme, Scheme::Http);
    assert!(!plan(GOOD).unwrap().load.tls.insecure);
    let https = GOOD.replace("replicas = 3", "replicas = 3\nscheme = \"https\"");
    let planned = plan(&https).unwrap();
    assert_eq!(planned.service.scheme, Scheme::Https);
    assert!(planned.load.tls.insecure);
    // A `[load.tls]` of the scenario's own is kept as written.
    let explicit = format!("{https}\n[load.tls]\ninsecure = false\n");
    assert!(!plan(&explicit).unwrap().load.tls.insecure);

    let wrong = GOOD.replace("replicas = 3", "replicas = 3\nscheme = \"tls\"");
    let problems = plan(&wrong).unwrap_err();
    assert_eq!(
        problems[0].to_string(),
        "s.toml:8:10: unknown service scheme \"tls\"; accepted values: \"http\", \"https\""
    );
}

#[test]
fn template_and_store_mistakes_are_all_reported_with_their_place() {
    let text = GOOD.replace(
        "[load]",
        "[store]\nkind = \"tcp\"\npersistence = \"aof\"\ncommand = [\"--name\", \"{instance}\"]\n\
         env = { X = \"{nope}\" }\n[load]",
    );
    let problems = plan(&text).unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{text:#?}");
    assert!(text.iter().all(|t| t.starts_with("s.toml:1")), "{text:#?}");
    let all = text.join("\n");
    assert!(all.contains("`store.command`: placeholder {instance} cannot be used here; accepted placeholders: {store}, {store_port} ({replica} and {instance} name a replica"), "{all}");
    assert!(
        all.contains("`store.env.X`: unknown placeholder {nope}"),
        "{all}"
    );
    assert!(
        all.contains("`store.persistence` is a Redis setting"),
        "{all}"
    );
    let store_chaos = GOOD
        .replace("[load]", "[store]\nkind = \"none\"\n[load]")
        .replace(
            "fault = \"kill\"\n",
            "fault = \"kill\"\ntarget = \"store\"\n",
        );
    let problems = plan(&store_chaos).unwrap_err();
    assert!(
        problems[0].message.contains("there is no store"),
        "{problems:?}"
    );
}

#[test]
fn latency_on_replicas_needs_a_balancer_to_sit_behind_and_slow_store_targets_the_store() {
    let direct = GOOD
        .replace("[load]", "[balancer]\nkind = \"direct\"\n[load]")
        .replace(
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "[[chaos]]\nfault = \"latency\"\ndelay = \"100ms\"\nat = [\"1s\"]\n",
        );
    let problems: Vec<String> = plan(&direct)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("needs `balancer.kind = \"haproxy\"`"),
        "{problems:#?}"
    );
    let slow = GOOD.replace(
        "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
        "[[chaos]]\nfault = \"slow_store\"\ndelay = \"250ms\"\njitter = \"20ms\"\nat = [\"1s\"]\n",
    );
    let plan = plan(&slow).unwrap();
    assert_eq!(plan.chaos[0].target, Target::Store);
    assert_eq!(
        plan.chaos[0].fault,
        Fault::SlowStore {
            delay_ms: 250,
            jitter_ms: 20
        }
    );
}

/// `peer` cuts replicas off from the store alone: `blackhole` and `loss` take it, on
/// replica targets, with a store, on the harness's own cluster; the plan says it.
#[test]
fn a_peer_cuts_replicas_off_from_the_store_only() {
    let with = |chaos: &str| GOOD.replace("[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n", chaos);
    let good = with(
        "[[chaos]]\nfault = \"blackhole\"\ntarget = \"replica-0\"\npeer = \"store\"\nat = [\"4s\"]\n\
         [[chaos]]\nfault = \"loss\"\nloss = \"5%\"\ntarget = \"34%\"\npeer = \"store\"\nat = [\"9s\"]\n\
         [[chaos]]\nfault = \"blackhole\"\nat = [\"20s\"]\n",
    );
    let planned = plan(&good).unwrap();
    let entries: Vec<(Fault, Target)> = planned.chaos.iter().map(|c| (c.fault, c.target)).collect();
    assert_eq!(
        entries,
        [
            (
                Fault::Blackhole {
                    peer: Some(Peer::Store)
                },
                Target::Replica(0)
            ),
            (
                Fault::Loss {
                    percent: 5,
                    peer: Some(Peer::Store)
                },
                Target::Share(34)
            ),
            (Fault::Blackhole { peer: None }, Target::RandomReplica),
        ]
    );
    let words = planned.render(std::iter::empty(), &[] as &[String]);
    assert!(
        words.contains("#0 blackhole replica-0 (only its traffic with the store) at 4s"),
        "{words}"
    );
    assert_eq!(
        planned.chaos[1].fault.params().as_deref(),
        Some("5% of packets dropped, only its traffic with the store")
    );
    assert_eq!(planned.chaos[2].fault.params(), None);

    // Each mistake at its line and column, with what is accepted.
    let cases = [
        (
            "[[chaos]]\nfault = \"blackhole\"\npeer = \"database\"\nevery = \"5s\"\n",
            "s.toml:17:8: unknown `chaos.peer` \"database\"; accepted values: \"store\"",
        ),
        (
            "[[chaos]]\nfault = \"kill\"\npeer = \"store\"\nevery = \"5s\"\n",
            "s.toml:17:8: `chaos.peer` applies only to fault \"blackhole\" and \"loss\"",
        ),
        (
            "[[chaos]]\nfault = \"blackhole\"\ntarget = \"store\"\npeer = \"store\"\nevery = \"5s\"\n",
            "s.toml:18:8: `chaos.peer` cuts replicas off from the store, and target \"store\" is no replica; accepted targets with `peer`: \"random-replica\"",
        ),
        (
            "[[chaos]]\nfault = \"loss\"\nloss = \"5%\"\ntarget = \"balancer\"\npeer = \"store\"\nevery = \"5s\"\n",
            "s.toml:19:8: `chaos.peer` cuts replicas off from the store, and target \"balancer\" is no replica",
        ),
    ];
    for (chaos, expected) in cases {
        let problems = chaos_problems(chaos);
        assert_eq!(problems.len(), 1, "{chaos}: {problems:#?}");
        assert!(problems[0].starts_with(expected), "{chaos}: {problems:#?}");
    }

    let storeless = with(
        "[store]\nkind = \"none\"\n[[chaos]]\nfault = \"blackhole\"\npeer = \"store\"\nevery = \"5s\"\n",
    )
    .replace("MODE = \"redis\"", "MODE = \"memory\"");
    let problems: Vec<String> = plan(&storeless)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "s.toml:19:8: `chaos.peer = \"store\"`: with `store.kind = \"none\"` there is no store"
        ),
        "{problems:#?}"
    );

    let attached = "name = \"a\"\nduration = \"10s\"\n[attach]\nurl = \"http://127.0.0.1:8080\"\ncompose_project = \"shop\"\n[load]\nusers = 2\nappends_per_session = 1\n[[chaos]]\nfault = \"blackhole\"\npeer = \"store\"\nevery = \"2s\"\n";
    let problems: Vec<String> = plan(attached)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("s.toml:11:8: `chaos.peer` is not available in attach mode: the peer's addresses are those of the store containers the harness started"),
        "{problems:#?}"
    );
}

#[test]
fn the_engine_defaults_to_docker_and_swarm_takes_a_restart_delay_even_zero() {
    assert_eq!(plan(GOOD).unwrap().cluster.engine, EngineKind::Docker);
    let swarm = format!("{GOOD}\n[cluster]\nengine = \"swarm\"\nrestart_delay = \"0s\"\n");
    let cluster = plan(&swarm).unwrap().cluster;
    assert_eq!(cluster.engine, EngineKind::Swarm);
    assert_eq!(cluster.restart_delay, Duration::ZERO);
    let default_delay = format!("{GOOD}\n[cluster]\nengine = \"swarm\"\n");
    assert_eq!(
        plan(&default_delay).unwrap().cluster.restart_delay,
        Duration::from_secs(5)
    );
}

#[test]
fn an_unknown_engine_names_the_accepted_ones_at_its_line() {
    let problems = plan(&format!("{GOOD}\n[cluster]\nengine = \"nomad\"\n")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .message
            .contains("unknown cluster engine \"nomad\"; accepted values: \"docker\", \"swarm\""),
        "{problems:?}"
    );
    assert_eq!(problems[0].line, GOOD.lines().count() + 3);
    let delay_alone = format!("{GOOD}\n[cluster]\nrestart_delay = \"1s\"\n");
    let problems = plan(&delay_alone).unwrap_err();
    assert!(problems[0]
        .message
        .contains("needs `cluster.engine = \"swarm\"`"));
}

#[test]
fn what_swarm_cannot_do_is_refused_naming_the_engine() {
    let text = r#"
name = "s"
duration = "30s"
[cluster]
engine = "swarm"
[service]
replicas = 3
env = { ID = "{replica}" }
[balancer]
kind = "direct"
[load]
users = 2
appends_per_session = 2
[[chaos]]
fault = "disconnect"
every = "5s"
[[chaos]]
fault = "kill"
target = "store"
every = "5s"
[[chaos]]
fault = "kill"
every = "5s"
after_kill = "restart"
"#;
    let problems = plan(text).unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    for expected in [
        "the swarm engine needs `balancer.kind = \"haproxy\"`",
        "`service.env.ID` uses {replica}, which the swarm engine cannot fill in",
        "fault \"disconnect\" cannot run on the swarm engine (a task's network endpoints belong to Swarm",
        "; it applies \"kill\", \"stop\", \"pause\" to tasks",
        "chaos target \"store\" cannot be hit on the swarm engine",
        "on the swarm engine `chaos.after_kill` can only be \"replace\"",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected}: {messages:#?}"
        );
    }
    assert_eq!(problems.len(), 5, "{messages:#?}");
}

#[test]
fn attached_to_swarm_the_selector_names_only_the_service() {
    let attach = |selector: &str| {
        format!(
            "name = \"a\"\nduration = \"10s\"\n[cluster]\nengine = \"swarm\"\n[attach]\nurl = \"http://127.0.0.1:1\"\nselector = [{selector}]\n[load]\nusers = 2\nappends_per_session = 1\n[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n"
        )
    };
    let attached = plan(&attach("\"com.docker.swarm.service.name=web\""))
        .unwrap()
        .attach
        .unwrap();
    assert_eq!(attached.swarm_service(), Some("web"));
    let problems = plan(&attach("\"app=web\"")).unwrap_err();
    assert!(
        problems[0]
            .message
            .contains("`--selector com.docker.swarm.service.name=NAME`"),
        "{problems:?}"
    );
}

/// `GOOD` on a Redis Cluster, with `chaos` in place of its kill.
fn on_a_cluster(store: &str, chaos: &str) -> String {
    GOOD.replace(
        "[load]",
        &format!("[store]\ntopology = \"cluster\"\n{store}\n[load]"),
    )
    .replace("[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n", chaos)
}

#[test]
fn a_cluster_fails_over_its_primaries_and_the_demo_finds_every_member() {
    let failover = "[[chaos]]\nfault = \"failover\"\nevery = \"8s\"\n";
    let planned = plan(&on_a_cluster("", failover)).unwrap();
    assert_eq!(planned.store.topology, topology::Topology::Cluster);
    assert_eq!(planned.store.kind, StoreKind::Redis);
    let nodes = topology::nodes(planned.store.topology, "store", planned.store.port);
    let values = crate::plan::template::Values {
        store_nodes: &nodes,
        ..replica_values(6379)
    };
    assert_eq!(
        planned.service.env["SESSION_STORE"].render(&values),
        "redis-cluster://store-0:6379,store-1:6379,store-2:6379,store-3:6379,store-4:6379,store-5:6379"
    );
    let entry = &planned.chaos[0];
    assert_eq!(
        (entry.fault, entry.target, entry.after_kill),
        (Fault::Failover, Target::StorePrimary, AfterKill::Replace)
    );
    // A member by name, with persistence and eviction as for any Redis.
    let kill = "[[chaos]]\nfault = \"kill\"\ntarget = \"store-4\"\nafter_kill = \"restart\"\nevery = \"8s\"\n";
    let store = "persistence = \"aof\"\neviction = \"allkeys-lru\"";
    let member = plan(&on_a_cluster(store, kill)).unwrap();
    assert_eq!(member.chaos[0].target, Target::StoreMember(4));
    assert_eq!(member.store.persistence, Persistence::Aof);
}

#[test]
fn what_a_cluster_cannot_do_is_refused_with_its_place() {
    let refused = [
        (
            "",
            "[[chaos]]\nfault = \"store_split\"\nevery = \"8s\"\n",
            "fault \"store_split\" needs `store.topology` \"replicated\" (this store's is \"cluster\")",
        ),
        (
            "",
            "[[chaos]]\nfault = \"store_lag\"\ndelay = \"200ms\"\nevery = \"8s\"\n",
            "fault \"store_lag\" needs `store.topology` \"replicated\"",
        ),
        (
            "",
            "[[chaos]]\nfault = \"slow_store\"\ndelay = \"200ms\"\nevery = \"8s\"\n",
            "fault \"slow_store\" needs `store.topology` \"single\" or \"replicated\"",
        ),
        (
            "",
            "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"2MiB\"\nevery = \"8s\"\n",
            "fault \"memory_pressure\" needs `store.topology` \"single\"",
        ),
        (
            "",
            "[[chaos]]\nfault = \"kill\"\ntarget = \"store\"\nevery = \"8s\"\n",
            "chaos target \"store\": a \"cluster\" store has members; name one: \"store-primary\" or \"store-0\" to \"store-5\"",
        ),
        (
            "",
            "[[chaos]]\nfault = \"kill\"\ntarget = \"store-6\"\nevery = \"8s\"\n",
            "names no member of the store; there are 6: store-0 to store-5",
        ),
        (
            "port = 60000",
            "",
            "`store.port = 60000`: a Redis Cluster node also listens on its port + 10000 (the cluster bus), so the port is 1 to 55535",
        ),
        (
            "replicas = 2",
            "",
            "`store.replicas` applies only to `store.topology = \"replicated\"` (this store's topology is \"cluster\")",
        ),
    ];
    for (store, chaos, expected) in refused {
        let problems = plan(&on_a_cluster(store, chaos)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains(expected), "{problems:?}");
        assert!(problems[0].line > 0, "{problems:?}");
    }
    let wait = on_a_cluster("", "").replace(
        "env = { MODE = \"redis\" }",
        "env = { MODE = \"redis\", SESSION_STORE_WAIT = \"1\" }",
    );
    let problems = plan(&wait).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .message
            .contains("`service.env.SESSION_STORE_WAIT`: the demo service's Redis Cluster client cannot `WAIT`"),
        "{problems:?}"
    );
    // Another service may mean something else by it.
    let other = wait.replace("[service]", "[service]\nimage = \"example/app:1\"");
    assert!(plan(&other).is_ok());
}

/// GOOD with `store` as its `[store]` table and `chaos` in place of its chaos entry.
fn with_store(store: &str, chaos: &str) -> String {
    GOOD.replace("[load]", &format!("[store]\n{store}\n[load]"))
        .replace("[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n", chaos)
}

fn problems_of(text: &str) -> Vec<String> {
    plan(text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_topology_has_its_members_defaults_and_the_demo_finds_them() {
    let kill = "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n";
    let replicated = plan(&with_store("topology = \"replicated\"", kill)).unwrap();
    assert_eq!(
        replicated.store.topology,
        topology::Topology::Replicated { replicas: 2 }
    );
    assert_eq!(replicated.store.kind, StoreKind::Redis);
    let pool = plan(&with_store(
        "topology = \"memcached-pool\"\nnodes = 4",
        kill,
    ))
    .unwrap();
    assert_eq!(
        pool.store.topology,
        topology::Topology::MemcachedPool { nodes: 4 }
    );
    assert_eq!(
        (pool.store.kind, pool.store.port, pool.store.image.as_str()),
        (StoreKind::Tcp, 11211, "sessionstorm/memcached:latest")
    );
    let values = crate::plan::template::Values {
        store: "store",
        store_port: 11211,
        store_nodes: "store-0:11211,store-1:11211",
        replica: Some((0, "replica-0.0")),
    };
    assert_eq!(
        pool.service.env["SESSION_STORE"].render(&values),
        "memcached://store-0:11211,store-1:11211"
    );
    let primary = "[[chaos]]\nfault = \"failover\"\nevery = \"8s\"\n";
    let failover = plan(&with_store("topology = \"replicated\"", primary)).unwrap();
    assert_eq!(failover.chaos[0].target, Target::StorePrimary);
    let member = "[[chaos]]\nfault = \"kill\"\ntarget = \"store-2\"\nevery = \"8s\"\n";
    let killed = plan(&with_store("topology = \"memcached-pool\"", member)).unwrap();
    assert_eq!(killed.chaos[0].target, Target::StoreMember(2));
}

#[test]
fn store_faults_and_targets_are_refused_where_the_topology_lacks_them() {
    let cases = [
        (
            "topology = \"ring\"",
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "unknown store topology \"ring\"; accepted values: \"single\", \"replicated\", \"cluster\", \"memcached-pool\"",
        ),
        (
            "nodes = 3",
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "`store.nodes` applies only to `store.topology = \"memcached-pool\"`",
        ),
        (
            "topology = \"replicated\"\nreplicas = 9",
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "`store.replicas`",
        ),
        (
            "topology = \"replicated\"\ncommand = [\"--port\", \"7000\"]",
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "the harness starts the members",
        ),
        (
            "",
            "[[chaos]]\nfault = \"failover\"\nevery = \"5s\"\n",
            "fault \"failover\" needs `store.topology` \"replicated\" or \"cluster\" (this store's is \"single\")",
        ),
        (
            "topology = \"memcached-pool\"",
            "[[chaos]]\nfault = \"store_split\"\ntarget = \"store-primary\"\nevery = \"5s\"\n",
            "has no primary that fails over",
        ),
        (
            "topology = \"cluster\"",
            "[[chaos]]\nfault = \"store_lag\"\ndelay = \"200ms\"\nevery = \"5s\"\n",
            "fault \"store_lag\" needs `store.topology` \"replicated\" (this store's is \"cluster\")",
        ),
        (
            "topology = \"memcached-pool\"",
            "[[chaos]]\nfault = \"kill\"\ntarget = \"store-3\"\nevery = \"5s\"\n",
            "chaos target \"store-3\" names no member of the store; there are 3: store-0 to store-2",
        ),
        (
            "topology = \"replicated\"",
            "[[chaos]]\nfault = \"kill\"\ntarget = \"store\"\nevery = \"5s\"\n",
            "a \"replicated\" store has members; name one: \"store-primary\" or \"store-0\" to \"store-2\"",
        ),
        (
            "topology = \"replicated\"",
            "[[chaos]]\nfault = \"failover\"\ntarget = \"replica-0\"\nevery = \"5s\"\n",
            "fault \"failover\" acts on the store's primary only",
        ),
    ];
    for (store, chaos, expected) in cases {
        let problems = problems_of(&with_store(store, chaos));
        assert!(
            problems
                .iter()
                .any(|p| p.contains(expected) && p.starts_with("s.toml:")),
            "{store} / {chaos}: {problems:#?}"
        );
    }
}
