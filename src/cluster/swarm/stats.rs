//! The balancer's view of its servers, read from HAProxy's CSV statistics: the only
//! place from the host where a Swarm task is seen serving, since tasks live on an
//! overlay network the host cannot reach.

/// One server of the replicas' backend as HAProxy sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The address DNS gave it, `ip` without the port; `None` while its template
    /// slot has none.
    pub ip: Option<String>,
    /// Health checks pass: HAProxy sends it traffic.
    pub up: bool,
}

/// The servers of `backend` in HAProxy's `;csv` statistics.
pub fn servers(csv: &str, backend: &str) -> Result<Vec<Server>, String> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("the balancer's statistics have no header line")?;
    let column = |name: &str| {
        header
            .split(',')
            .position(|c| c == name)
            .ok_or(format!("the balancer's statistics have no {name:?} column"))
    };
    let (pxname, svname, status, addr) = (
        column("pxname")?,
        column("svname")?,
        column("status")?,
        column("addr")?,
    );
    Ok(lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|f| {
            f.get(pxname) == Some(&backend)
                && !matches!(f.get(svname), Some(&"BACKEND") | Some(&"FRONTEND") | None)
        })
        .map(|f| {
            let ip = (f.get(addr).and_then(|a| a.rsplit_once(':')))
                .map(|(ip, _)| ip.to_string())
                .filter(|ip| !ip.is_empty() && ip != "0.0.0.0");
            Server {
                ip,
                up: f.get(status).is_some_and(|s| s.starts_with("UP")),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\
# pxname,svname,qcur,status,weight,addr,cookie
sessions,FRONTEND,,OPEN,,,
replicas,replica-1,0,UP,1,10.0.1.5:8080,
replicas,replica-2,0,DOWN,1,10.0.1.6:8080,
replicas,replica-3,0,MAINT (resolution),1,,
replicas,BACKEND,0,UP,2,,
harness-stats,BACKEND,0,UP,0,,
";

    #[test]
    fn servers_of_the_backend_with_their_address_and_health() {
        let found = servers(CSV, "replicas").unwrap();
        assert_eq!(
            found,
            vec![
                Server {
                    ip: Some("10.0.1.5".into()),
                    up: true
                },
                Server {
                    ip: Some("10.0.1.6".into()),
                    up: false
                },
                Server {
                    ip: None,
                    up: false
                },
            ]
        );
    }

    #[test]
    fn statistics_without_the_columns_are_an_error() {
        assert!(servers("", "replicas").unwrap_err().contains("header"));
        let err = servers("# pxname,svname,status\n", "replicas").unwrap_err();
        assert!(err.contains("\"addr\""), "{err}");
    }
}
