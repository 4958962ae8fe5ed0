//! Scale-out: one `JsHost` spreading calls over several Node processes.

use futures::future::join_all;
use jshost::JsHost;
use jshost_integration::{host_process_of, kill9, wait_for, Fixture, HostProcess};
use std::collections::HashSet;
use std::time::Duration;

/// The host processes (a jshost-node worker's primary) that answer `calls` calls.
async fn pids_answering(host: &JsHost, calls: usize) -> HashSet<String> {
    let pid = host.function("pid");
    join_all((0..calls).map(|_| pid.call(&())))
        .await
        .into_iter()
        .map(|r| host_process_of(r.unwrap().parse().unwrap()).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_hosts_spreads_calls_and_survives_a_dead_host() {
    let fixture = Fixture::new("pool-owned", "");
    let host = JsHost::spawn(fixture.settings().owned_hosts(2)).await.unwrap();
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

    // One stops answering: it is taken out of rotation, calls keep succeeding. (A call that was
    // already written to a pooled connection of the killed host when it died fails: it may have
    // run, so it is not repeated. Calls made once the death is noticed all succeed.)
    let gone = a.pid().to_string();
    drop(a);
    let pid = host.function("pid");
    let _ = join_all((0..20).map(|_| pid.call(&()))).await;
    let survivors = pids_answering(&host, 200).await;
    assert_eq!(survivors, [b.pid().to_string()].into());
    assert!(!survivors.contains(&gone));

    // When none of the URLs answers, connect fails naming each of them.
    let e = JsHost::connect(
        fixture
            .settings()
            .root_urls(["http://127.0.0.1:1".to_owned(), "http://127.0.0.1:2".into()]),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        e.is_connection() && text.contains("127.0.0.1:1") && text.contains("127.0.0.1:2"),
        "{e}"
    );
}

#[tokio::test]
async fn root_urls_with_a_member_down_at_connect_serve_from_the_others_until_it_joins() {
    let fixture = Fixture::new("pool-degrade", "");
    let a = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let port = |p: &HostProcess| -> u16 {
        let status: serde_json::Value = serde_json::from_str(&p.status).unwrap();
        status["config"]["port"].as_u64().unwrap() as u16
    };
    let later = jshost_integration::free_port();
    let urls = [
        format!("http://127.0.0.1:{}", port(&a)),
        format!("http://127.0.0.1:{later}"),
    ];
    let host = JsHost::connect(fixture.settings().root_urls(urls.clone()))
        .await
        .expect("one member answers: connect succeeds");
    assert_eq!(pids_answering(&host, 50).await, [a.pid().to_string()].into());
    // The missing member starts: it joins the rotation by itself.
    let b = HostProcess::start(&fixture.config, &["--port", &later.to_string()]).unwrap();
    let both: HashSet<String> = [a.pid().to_string(), b.pid().to_string()].into();
    wait_for(Duration::from_secs(10), "the late member to join", || {
        let host = host.clone();
        let both = both.clone();
        async move { (pids_answering(&host, 50).await == both).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn owned_hosts_n_needs_spawn() {
    let fixture = Fixture::new("pool-config", "");
    let e = JsHost::connect(fixture.settings().owned_hosts(2))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("JsHost::spawn"), "{e}");
    let e = JsHost::connect(fixture.settings().owned_hosts(2).use_manager(true))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("use_manager"), "{e}");
}
