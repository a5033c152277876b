//! The balancer's configuration, rendered from the plan.
//!
//! Replicas are named by their network alias (`replica-0`, …), not by address: a
//! replaced replica gets a new container and a new IP under the same alias, and
//! HAProxy finds it again through Docker's embedded DNS (127.0.0.11). `init-addr none`
//! lets HAProxy start before every alias resolves, and the short `hold` times make it
//! notice a replacement within about a second.

/// Where the rendered file goes inside the balancer container.
pub const CONFIG_DIR: &str = "/usr/local/etc/haproxy";
pub const CONFIG_FILE: &str = "haproxy.cfg";
/// The port HAProxy listens on inside its container (published on 127.0.0.1).
pub const LISTEN_PORT: u16 = 8080;

/// What the configuration depends on.
#[derive(Debug, Clone)]
pub struct Config<'a> {
    /// Network aliases of the replicas, in slot order.
    pub replicas: &'a [String],
    pub port: u16,
    pub health_path: &'a str,
    /// Pin each client to a server with an inserted `SRV` cookie.
    pub sticky: bool,
    /// The replicas serve HTTPS: traffic and health checks to them go over TLS.
    pub tls: bool,
    /// Where each server is reached instead of `alias:port` (`host:port`, in slot
    /// order): the `latency` fault's proxies. Empty: straight to the replicas.
    pub via: &'a [String],
    /// The swarm engine: the servers are the tasks of this Swarm service, this many,
    /// found by DNS (`tasks.<service>`) instead of `replicas`; the balancer also
    /// answers [`STATS_PATH`] for the harness.
    pub tasks: Option<(&'a str, usize)>,
}

/// Where the swarm engine's balancer shows its servers' states (append `;csv`): the
/// harness cannot reach Swarm's tasks from the host, only through the balancer.
pub const STATS_PATH: &str = "/sessionstorm/haproxy";

/// What every configuration starts with: limits, and Docker's DNS, asked again
/// every second so a replaced container is found at its new address.
const PREAMBLE: &str = "\
global
    maxconn 4000
    hard-stop-after 5s

resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 200ms
    timeout retry 200ms
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    hold obsolete 1s
";

/// Renders the configuration of the TCP front of a replicated store: every
/// connection goes to a member that answers `role:master`, so the service's address
/// for its store (`{store}`) stays the same across failovers. A member marked down
/// has its connections cut (`on-marked-down shutdown-sessions`), so clients
/// reconnect to the new primary instead of waiting on the old one. When two members
/// say `role:master` (a split), both take connections, as a real HAProxy in front of
/// a split Redis does.
pub fn render_store_front(members: &[String], port: u16) -> String {
    let servers: String = members
        .iter()
        .map(|m| format!("    server {m} {m}:{port}\n"))
        .collect();
    format!(
        "\
{PREAMBLE}
defaults
    mode tcp
    timeout connect 250ms
    timeout client 1h
    timeout server 1h

frontend store
    bind :{port}
    default_backend primary

backend primary
    balance roundrobin
    option tcp-check
    tcp-check send PING\\r\\n
    tcp-check expect string +PONG
    tcp-check send info\\ replication\\r\\n
    tcp-check expect string role:master
    tcp-check send QUIT\\r\\n
    tcp-check expect string +OK
    default-server check inter 250ms fall 1 rise 1 on-marked-down shutdown-sessions resolvers docker init-addr none resolve-prefer ipv4
{servers}"
    )
}

/// Renders `haproxy.cfg`.
///
/// Health checks run every 500 ms and take a replica out after two failures, so a
/// killed replica stops getting traffic within about a second. `retries` with
/// `option redispatch` and `retry-on conn-failure` sends a request whose connection
/// failed to another replica: safe, since such a request never reached any server.
pub fn render(config: &Config<'_>) -> String {
    let mut servers = String::new();
    for (i, alias) in config.replicas.iter().enumerate() {
        let cookie = if config.sticky {
            format!(" cookie r{i}")
        } else {
            String::new()
        };
        let address = config
            .via
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("{alias}:{}", config.port));
        servers.push_str(&format!("    server {alias} {address}{cookie}\n"));
    }
    let mut stats = String::new();
    if let Some((service, count)) = config.tasks {
        // Slots of addresses filled by Docker's DNS; a replaced task's address
        // takes a free one.
        servers = format!(
            "    server-template replica- 1-{count} tasks.{service}:{}\n",
            config.port
        );
        stats = format!(
            "\nbackend harness-stats\n    stats enable\n    stats show-legends\n    stats uri {STATS_PATH}\n"
        );
    }
    let use_stats = if stats.is_empty() {
        String::new()
    } else {
        format!("    use_backend harness-stats if {{ path_beg {STATS_PATH} }}\n")
    };
    // `insert indirect nocache`: HAProxy sets SRV on the first answer, strips it
    // from requests before they reach the server, and keeps caches from sharing it.
    let sticky = if config.sticky {
        "    cookie SRV insert indirect nocache\n"
    } else {
        ""
    };
    // Health checks follow the server's `ssl` (no `port` override). No verification:
    // servers are named by alias, which no test certificate names (see `Scheme`).
    let tls = if config.tls { " ssl verify none" } else { "" };
    format!(
        "\
{PREAMBLE}
defaults
    mode http
    timeout connect 250ms
    timeout client 30s
    timeout server 10s
    timeout http-request 10s
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend sessions
    bind :{listen}
{use_stats}    default_backend replicas

backend replicas
    balance roundrobin
    http-after-response set-header {server_header} %[srv_name] if {{ srv_name -m found }}
{sticky}    option httpchk GET {health}
    http-check expect status 200
    default-server check inter 500ms fastinter 250ms downinter 250ms fall 2 rise 1 resolvers docker init-addr none resolve-prefer ipv4{tls}
{servers}{stats}",
        listen = LISTEN_PORT,
        health = config.health_path,
        server_header = crate::target::SERVER_HEADER,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replica_is_a_server_resolved_through_docker_dns() {
        let replicas = vec!["replica-0".to_string(), "replica-1".to_string()];
        let cfg = render(&Config {
            replicas: &replicas,
            port: 9000,
            health_path: "/health",
            sticky: false,
            tls: false,
            via: &[],
            tasks: None,
        });
        assert!(cfg.contains("    server replica-0 replica-0:9000\n"));
        assert!(cfg.contains("    server replica-1 replica-1:9000\n"));
        assert!(
            cfg.contains("set-header x-sessionstorm-server %[srv_name] if { srv_name -m found }")
        );
        assert!(cfg.contains("option httpchk GET /health\n"));
        assert!(cfg.contains("nameserver dns 127.0.0.11:53"));
        assert!(cfg.contains("resolvers docker init-addr none"));
        assert!(cfg.contains("bind :8080\n"));
        assert!(cfg.ends_with('\n'));
        assert!(!cfg.contains("cookie"));
        assert!(!cfg.contains("ssl"));
    }

    #[test]
    fn sticky_inserts_a_cookie_per_server() {
        let replicas = vec!["replica-0".to_string(), "replica-1".to_string()];
        let cfg = render(&Config {
            replicas: &replicas,
            port: 8080,
            health_path: "/healthz",
            sticky: true,
            tls: false,
            via: &[],
            tasks: None,
        });
        assert!(cfg.contains("    cookie SRV insert indirect nocache\n"));
        assert!(cfg.contains("    server replica-1 replica-1:8080 cookie r1\n"));
    }

    #[test]
    fn https_replicas_are_reached_over_tls_checks_included() {
        let replicas = vec!["replica-0".to_string()];
        let cfg = render(&Config {
            replicas: &replicas,
            port: 8443,
            health_path: "/healthz",
            sticky: false,
            tls: true,
            via: &[],
            tasks: None,
        });
        // On `default-server`, so every server and its health check inherit it.
        let defaults = cfg
            .lines()
            .find(|l| l.trim_start().starts_with("default-server"))
            .unwrap();
        assert!(defaults.ends_with(" ssl verify none"), "{defaults}");
        assert!(cfg.contains("    server replica-0 replica-0:8443\n"));
        // The balancer's own side stays plain HTTP for the load.
        assert!(cfg.contains("bind :8080\n"));
    }

    #[test]
    fn servers_behind_latency_proxies_are_reached_through_them() {
        let replicas = vec!["replica-0".to_string(), "replica-1".to_string()];
        let via = vec!["10.0.0.1:4000".to_string(), "10.0.0.1:4001".to_string()];
        let cfg = render(&Config {
            replicas: &replicas,
            port: 8080,
            health_path: "/healthz",
            sticky: false,
            tls: false,
            via: &via,
            tasks: None,
        });
        assert!(cfg.contains("    server replica-0 10.0.0.1:4000\n"));
        assert!(cfg.contains("    server replica-1 10.0.0.1:4001\n"));
    }

    #[test]
    fn swarm_tasks_are_servers_found_by_dns_and_stats_are_served() {
        let cfg = render(&Config {
            replicas: &[],
            port: 8080,
            health_path: "/healthz",
            sticky: false,
            tls: false,
            via: &[],
            tasks: Some(("web", 3)),
        });
        assert!(cfg.contains("    server-template replica- 1-3 tasks.web:8080\n"));
        assert!(!cfg.contains("    server replica-"));
        assert!(
            cfg.contains("    use_backend harness-stats if { path_beg /sessionstorm/haproxy }\n")
        );
        assert!(cfg.contains("    stats uri /sessionstorm/haproxy\n"));
        // Docker's DNS, re-asked often, so a replacement task is found quickly.
        assert!(cfg.contains("resolvers docker init-addr none"));
    }

    #[test]
    fn the_store_front_sends_connections_to_the_member_that_says_it_is_primary() {
        let members = vec!["store-0".to_string(), "store-1".to_string()];
        let cfg = render_store_front(&members, 6379);
        assert!(cfg.contains("mode tcp"), "{cfg}");
        assert!(cfg.contains("bind :6379"), "{cfg}");
        assert!(cfg.contains("tcp-check expect string role:master"), "{cfg}");
        assert!(cfg.contains("on-marked-down shutdown-sessions"), "{cfg}");
        assert!(cfg.contains("    server store-0 store-0:6379\n    server store-1 store-1:6379\n"));
        // Found again through Docker's DNS when a fresh member takes a name.
        assert!(cfg.contains("resolvers docker init-addr none"), "{cfg}");
    }
}
