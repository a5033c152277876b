//! The session store as the harness sees it from outside: what it says of itself when
//! asked (`INFO`, over Redis's protocol; a Redis Cluster's node also of the cluster,
//! `CLUSTER NODES`), and its timeline over a run, so a failing run can say what the
//! store did when sessions were lost.

pub mod cluster_nodes;
pub mod info;
pub mod resp;
pub mod watch;
