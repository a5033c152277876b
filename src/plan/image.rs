//! The images the harness builds itself, by identity: scenarios default to them, and
//! [`crate::images`] builds them.

use std::fmt;

/// One of the images the harness knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltIn {
    SessionApp,
    /// The second demo service (`docker/counter-app`), driven through a custom flow.
    CounterApp,
    /// A demo service on a real session library (`docker/actix-app`, actix-session).
    ActixApp,
    Redis,
    Haproxy,
    /// A helper for the `blackhole` fault: `iptables` (nf_tables) from the host, run in
    /// the network namespace of the container it cuts off. Built only when a scenario
    /// uses it, so hosts without iptables can run every other scenario.
    Nettools,
    /// Memcached as a session store (the host's `memcached`), for services that keep
    /// their sessions there. Built only when a scenario uses it, like `nettools`.
    /// It runs as root in the image, so its entry point carries `-u root`.
    Memcached,
    /// Demo apps on real session libraries (Django, PHP native sessions), chosen with
    /// `APP`; made from Debian packages with `debootstrap`, not host binaries. Built
    /// only when a scenario uses it: the first build downloads packages for minutes.
    LibApps,
    /// The run's reaper (`sessionstorm reaper`): the sessionstorm binary itself, run
    /// beside every run to clean up after a harness that died. Built on demand.
    Reaper,
    /// A Docker engine (Debian's `docker.io`) to run in a container: the nodes of the
    /// multi-node Swarm test. Made from Debian packages like `lib-apps`; built only
    /// when a test asks for it.
    Dind,
}

impl BuiltIn {
    pub const ALL: [BuiltIn; 5] = [
        BuiltIn::SessionApp,
        BuiltIn::CounterApp,
        BuiltIn::ActixApp,
        BuiltIn::Redis,
        BuiltIn::Haproxy,
    ];
    /// Images built on demand only (not by `images build`).
    pub const HELPERS: [BuiltIn; 5] = [
        BuiltIn::Nettools,
        BuiltIn::Memcached,
        BuiltIn::LibApps,
        BuiltIn::Reaper,
        BuiltIn::Dind,
    ];

    /// The full tag, e.g. `sessionstorm/session-app:latest`.
    pub fn tag(self) -> &'static str {
        match self {
            BuiltIn::SessionApp => "sessionstorm/session-app:latest",
            BuiltIn::CounterApp => "sessionstorm/counter-app:latest",
            BuiltIn::ActixApp => "sessionstorm/actix-app:latest",
            BuiltIn::Redis => "sessionstorm/redis:latest",
            BuiltIn::Haproxy => "sessionstorm/haproxy:latest",
            BuiltIn::Nettools => "sessionstorm/nettools:latest",
            BuiltIn::Memcached => "sessionstorm/memcached:latest",
            BuiltIn::LibApps => "sessionstorm/lib-apps:latest",
            BuiltIn::Reaper => "sessionstorm/reaper:latest",
            BuiltIn::Dind => "sessionstorm/dind:latest",
        }
    }

    /// The repository name without tag, e.g. `sessionstorm/redis`.
    pub fn name(self) -> &'static str {
        let tag = self.tag();
        &tag[..tag.len() - ":latest".len()]
    }

    /// Recognises our images by name, with or without `:latest` (and `docker.io/`).
    pub fn from_tag(tag: &str) -> Option<BuiltIn> {
        let tag = tag.strip_prefix("docker.io/").unwrap_or(tag);
        let name = tag.strip_suffix(":latest").unwrap_or(tag);
        BuiltIn::ALL
            .into_iter()
            .chain(BuiltIn::HELPERS)
            .find(|image| image.name() == name)
    }
}

impl fmt::Display for BuiltIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}
