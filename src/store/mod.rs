//! The session store as the harness sees it from outside: what each member says of
//! itself when asked (`INFO` over Redis's protocol, a Redis Cluster's node also of the
//! cluster, `CLUSTER NODES`; a memcached's `stats`), what a Sentinel publishes, and
//! the store's timeline over a run, so a failing run can say what the store did when
//! sessions were lost.

pub mod cluster_nodes;
pub mod cluster_view;
pub mod info;
pub mod memcached;
pub mod observe;
pub mod resp;
pub mod sentinel;
pub mod timeline;
pub mod watch;
