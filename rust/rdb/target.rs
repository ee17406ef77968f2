//! What a Redis URL points at: one server (`redis://`, `rediss://`, `unix://`, parsed by
//! redis-rs), a Redis Cluster (`redis+cluster://host:port[,host:port...]`) or a master found
//! through Sentinel (`redis+sentinel://host:port[,host:port...]/service_name[/db]`). The `rediss+`
//! forms use TLS; credentials (`user:password@`) are those of the data nodes, as in `redis://`.

use crate::error::{Error, Result};

/// A parsed Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: the URL as given, for redis-rs to parse.
    Single(String),
    /// A Redis Cluster reached through any of its seed nodes.
    Cluster {
        /// One `redis[s]://[auth@]host:port` URL per seed node.
        nodes: Vec<String>,
    },
    /// The master Sentinel names for a service.
    Sentinel {
        /// One `redis[s]://host:port` URL per sentinel (sentinels take no credentials here).
        sentinels: Vec<String>,
        /// The service (master) name the sentinels monitor.
        service: String,
        /// The data nodes' URL around their address, which Sentinel reports:
        /// `("redis[s]://[auth@]", "/db")`.
        node: (String, String),
    },
}

fn invalid(url: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid redis URL {url:?}: {why}"))
}

/// Splits `host:port` (a bracketed IPv6 host allowed), checking both parts.
fn host_port<'a>(url: &str, hp: &'a str) -> Result<&'a str> {
    let (host, port) = hp.rsplit_once(':').ok_or_else(|| invalid(url, "every node needs host:port"))?;
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(invalid(url, "a node has no usable host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(hp),
        _ => Err(invalid(url, "a node's port must be a number from 1 to 65535")),
    }
}

/// Parses a Redis URL. `redis://`, `rediss://` and `unix://` are left to redis-rs (which checks
/// them when the connection settings are built); the cluster and Sentinel forms are split here.
pub fn parse(url: &str) -> Result<Target> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(Target::Single(url.to_string()));
    };
    let (tls, kind) = match scheme {
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        _ => return Ok(Target::Single(url.to_string())),
    };
    let data_scheme = if tls { "rediss" } else { "redis" };
    if rest.contains(['?', '#']) {
        return Err(invalid(url, "query parameters and fragments are not supported"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (auth, hosts) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect::<Vec<_>>();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err(invalid(url, "name at least one host:port, separated by commas"));
    }
    for h in &hosts {
        host_port(url, h)?;
    }
    if kind == "cluster" {
        if !matches!(path, "" | "/" | "/0") {
            return Err(invalid(url, "a Redis Cluster has only database 0"));
        }
        let nodes = hosts.iter().map(|h| format!("{data_scheme}://{auth}{h}")).collect();
        return Ok(Target::Cluster { nodes });
    }
    let mut parts = path.trim_start_matches('/').split('/');
    let service = parts.next().unwrap_or("");
    if service.is_empty() {
        return Err(invalid(
            url,
            "a Sentinel URL names the service: redis+sentinel://host:port/service_name",
        ));
    }
    let db = match (parts.next(), parts.next()) {
        (None, _) | (Some(""), None) => 0,
        (Some(d), None) => d
            .parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| invalid(url, "the db must be a number"))?,
        _ => return Err(invalid(url, "expected /service_name[/db]")),
    };
    Ok(Target::Sentinel {
        sentinels: hosts.iter().map(|h| format!("{data_scheme}://{h}")).collect(),
        service: service.to_string(),
        node: (format!("{data_scheme}://{auth}"), format!("/{db}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_are_left_alone() {
        for u in ["redis://127.0.0.1:6379/2", "rediss://h:1", "unix:///tmp/r.sock", "not a url"] {
            assert_eq!(parse(u).expect("passes"), Target::Single(u.into()));
        }
    }

    #[test]
    fn cluster_urls_list_their_seeds_with_credentials_and_tls() {
        let t = parse("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001").expect("valid");
        assert_eq!(
            t,
            Target::Cluster {
                nodes: vec!["redis://u:p@127.0.0.1:7000".into(), "redis://u:p@127.0.0.1:7001".into()]
            }
        );
        assert!(matches!(t, Target::Cluster { .. }));
        let t = parse("rediss+cluster://[::1]:7000/0").expect("valid");
        assert_eq!(t, Target::Cluster { nodes: vec!["rediss://[::1]:7000".into()] });
    }

    #[test]
    fn sentinel_urls_name_a_service_and_a_db() {
        let t = parse("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/3").expect("valid");
        assert_eq!(
            t,
            Target::Sentinel {
                sentinels: vec!["redis://127.0.0.1:26379".into(), "redis://127.0.0.1:26380".into()],
                service: "mymaster".into(),
                node: ("redis://:pw@".into(), "/3".into()),
            }
        );
        let t = parse("rediss+sentinel://h:26379/svc").expect("valid");
        assert!(matches!(t, Target::Sentinel { ref node, .. } if node.0 == "rediss://" && node.1 == "/0"));
    }

    #[test]
    fn malformed_cluster_and_sentinel_urls_are_refused() {
        for u in [
            "redis+cluster://",
            "redis+cluster://127.0.0.1",
            "redis+cluster://127.0.0.1:0",
            "redis+cluster://127.0.0.1:99999",
            "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
            "redis+cluster://127.0.0.1:7000/1",
            "redis+cluster://127.0.0.1:7000?x=1",
            "redis+cluster://:7000",
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel://127.0.0.1:26379/svc/x",
            "redis+sentinel://127.0.0.1:26379/svc/-1",
            "redis+sentinel://127.0.0.1:26379/svc/1/2",
        ] {
            assert!(matches!(parse(u), Err(Error::InvalidArgument(_))), "{u}");
        }
    }
}
