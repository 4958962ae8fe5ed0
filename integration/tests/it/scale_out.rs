//! Scale-out: one `JsHost` spreading calls over several Node processes.

use futures::future::join_all;
use jshost::JsHost;
use jshost_integration::{kill9, wait_for, Fixture, HostProcess};
use std::collections::HashSet;
use std::time::Duration;

async fn pids_answering(host: &JsHost, calls: usize) -> HashSet<String> {
    let pid = host.function("pid");
    join_all((0..calls).map(|_| pid.call(&())))
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_hosts_spreads_calls_and_survives_a_dead_host() {
    let fixture = Fixture::new("pool-owned", "");
    let host = JsHost::spawn(fixture.settings().hosts(2)).await.unwrap();
    let members = host.hosts();
    assert_eq!(members.len(), 2);
    let pids: HashSet<String> = members.iter().map(|m| m.pid().unwrap().to_string()).collect();
    assert_eq!(pids.len(), 2, "two processes");
    assert_eq!(pids_answering(&host, 200).await, pids, "both hosts serve calls");

    // Kill one: once its exit is known it is out of rotation and every call succeeds.
    let victim = members[0].clone();
    kill9(victim.pid().unwrap());
    wait_for(Duration::from_secs(5), "the exit to be noticed", || {
        let victim = victim.clone();
        async move {
            victim
                .function("hello_world")
                .call(&())
                .await
                .err()
                .filter(|e| e.is_process())
        }
    })
    .await;
    let survivors = pids_answering(&host, 200).await;
    assert_eq!(survivors.len(), 1);
    assert!(!survivors.contains(&victim.pid().unwrap_or_default().to_string()));

    host.restart().await.unwrap();
    assert_eq!(
        pids_answering(&host, 200).await.len(),
        2,
        "back in rotation after restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_urls_spread_calls_over_running_hosts() {
    let fixture = Fixture::new("pool-urls", "");
    // Two hosts from one config under a "supervisor", on ports of their own.
    let a = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let b = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let port = |p: &HostProcess| -> u16 {
        let status: serde_json::Value = serde_json::from_str(&p.status).unwrap();
        status["config"]["port"].as_u64().unwrap() as u16
    };
    let urls = [
        format!("http://127.0.0.1:{}", port(&a)),
        format!("http://127.0.0.1:{}", port(&b)),
    ];
    let host = JsHost::connect(fixture.settings().root_urls(urls.clone()))
        .await
        .unwrap();
    assert_eq!(host.hosts().len(), 2);
    let expected: HashSet<String> = [a.pid().to_string(), b.pid().to_string()].into();
    assert_eq!(pids_answering(&host, 200).await, expected);

    // One stops answering: it is taken out of rotation, calls keep succeeding.
    let gone = a.pid().to_string();
    drop(a);
    let survivors = pids_answering(&host, 200).await;
    assert_eq!(survivors, [b.pid().to_string()].into());
    assert!(!survivors.contains(&gone));

    // A URL where the host is not ours is refused at connect time.
    let e = JsHost::connect(
        fixture
            .settings()
            .root_urls([urls[1].clone(), "http://127.0.0.1:1".into()]),
    )
    .await
    .unwrap_err();
    assert!(e.is_connection() && e.to_string().contains("127.0.0.1:1"), "{e}");
}

#[tokio::test]
async fn hosts_n_needs_owned_hosts() {
    let fixture = Fixture::new("pool-config", "");
    let e = JsHost::connect(fixture.settings().hosts(2)).await.unwrap_err();
    assert!(e.is_config() && e.to_string().contains("JsHost::spawn"), "{e}");
    let e = JsHost::connect(fixture.settings().hosts(2).use_manager(true))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("use_manager"), "{e}");
}
