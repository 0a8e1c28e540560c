//! Which etcd members the client talks to: the client balances over its endpoints and does
//! not drop a dead one by itself (each request sent there waits out the connect timeout), so
//! the agent keeps only members that accept connections, checking every half second.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;

const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The members (client URLs) that accept a TCP connection now.
pub async fn reachable(store: &[String]) -> Vec<String> {
    let mut up = Vec::new();
    for url in store {
        if answers(url).await {
            up.push(url.clone());
        }
    }
    up
}

async fn answers(url: &str) -> bool {
    let Some(addr) = host_port(url) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr.as_str())).await,
        Ok(Ok(_))
    )
}

/// `http://10.0.0.1:2379` as `10.0.0.1:2379`.
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hp = rest.split('/').next()?;
    (!hp.is_empty()).then(|| hp.to_string())
}

/// Forever: takes dead members out of the client's balance and puts members back in when
/// they answer again. The last member is never taken out.
pub async fn keep_current(agent: Arc<Agent>, initial: Vec<String>) {
    let mut inside: BTreeSet<String> = initial.into_iter().collect();
    if inside.is_empty() {
        inside = agent.cfg.store.iter().cloned().collect();
    }
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let up: BTreeSet<String> = reachable(&agent.cfg.store).await.into_iter().collect();
        if up.is_empty() {
            continue; // nothing answers: keep what there is, and wait
        }
        for url in up.difference(&inside.clone()) {
            if agent.etcd.add_endpoint(url).await.is_ok() {
                inside.insert(url.clone());
            }
        }
        for url in inside.clone().difference(&up) {
            if inside.len() > 1 && agent.etcd.remove_endpoint(url).await.is_ok() {
                inside.remove(url);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_urls_give_their_host_and_port() {
        assert_eq!(
            host_port("http://10.0.0.1:2379").as_deref(),
            Some("10.0.0.1:2379")
        );
        assert_eq!(
            host_port("https://[fd00::1]:2379/").as_deref(),
            Some("[fd00::1]:2379")
        );
        assert_eq!(host_port("http://"), None);
    }
}
