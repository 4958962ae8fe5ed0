//! Managed hosts: a detached js-host manager started (or reused) by `JsHost::connect` with
//! `use_manager(true)`; connections, graceful drop, crash reports, restart and stop.

use jshost::manager::Manager;
use jshost::JsHost;
use jshost_integration::{host_process_of, kill9, processes_mentioning, wait_for, Fixture};
use std::process::Command;
use std::time::{Duration, Instant};

/// Hosts of these fixtures stop 300 ms after their last connection closes.
fn fixture(name: &str) -> Fixture {
    Fixture::new(name, "disconnectTimeout: 300,")
}

async fn managed(fixture: &Fixture) -> JsHost {
    JsHost::connect(fixture.settings().use_manager(true))
        .await
        .expect("managed connect")
}

async fn connections(manager: &Manager, fixture: &Fixture) -> Option<Vec<String>> {
    manager
        .host_status(&fixture.config)
        .await
        .unwrap()
        .map(|h| h.connections)
}

#[tokio::test]
async fn the_manager_is_started_once_and_shared() {
    let fixture = fixture("shared");
    let a = managed(&fixture).await;
    let manager = a.manager().expect("a managed host has a manager").clone();
    assert_eq!(manager.url(), fixture.url());
    assert!(manager.is_running().await);
    assert_ne!(
        a.url(),
        fixture.url(),
        "the host listens on its own port, not the manager's"
    );
    assert_eq!(
        a.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    let logfile = a.logfile().expect("a managed host has a logfile").to_path_buf();

    let b = managed(&fixture).await;
    assert_eq!(b.url(), a.url(), "same host");
    assert_eq!(b.logfile(), Some(logfile.clone()), "same logfile");
    assert_ne!(a.connection_id(), b.connection_id());
    let open = connections(&manager, &fixture).await.unwrap();
    assert!(
        open.contains(&a.connection_id().unwrap()) && open.contains(&b.connection_id().unwrap()),
        "{open:?}"
    );
    assert_eq!(
        processes_mentioning(&format!("{} --manager", fixture.config.display())).len(),
        1,
        "one manager"
    );

    // The last disconnect stops the host after disconnectTimeout, then the manager exits.
    a.disconnect().await.unwrap();
    assert!(b.is_running().await, "b still holds a connection");
    b.disconnect().await.unwrap();
    let host_url = b.url().to_owned();
    wait_for(Duration::from_secs(10), "the host to stop", || {
        let b = b.clone();
        async move { (!b.is_running().await).then_some(()) }
    })
    .await;
    wait_for(Duration::from_secs(10), "the manager to exit", || {
        let m = manager.clone();
        async move { (!m.is_running().await).then_some(()) }
    })
    .await;
    // The host's port closes once its processes (a jshost-node primary and its workers) are gone.
    wait_for(Duration::from_secs(10), "the host's port to close", || {
        let addr = host_url.trim_start_matches("http://").to_owned();
        async move { tokio::net::TcpStream::connect(addr).await.is_err().then_some(()) }
    })
    .await;
    // Disconnecting again is a no-op.
    b.disconnect().await.unwrap();
}

#[tokio::test]
async fn the_manager_api_drives_hosts() {
    let fixture = fixture("manager-api");
    let host = managed(&fixture).await;
    let manager = host.manager().unwrap().clone();
    let info = manager
        .host_status(&fixture.config)
        .await
        .unwrap()
        .expect("started");
    assert_eq!(info.logfile, host.logfile().unwrap());
    assert_eq!(info.status.url(), Some(host.url()));
    let conn = manager
        .open_connection(&fixture.config)
        .await
        .unwrap()
        .expect("a host");
    assert!(connections(&manager, &fixture).await.unwrap().contains(&conn.id));
    let closed = manager.close_connection(&fixture.config, &conn.id).await.unwrap();
    assert!(closed.started && closed.stop_timeout.is_none(), "{closed:?}");
    let again = manager.start_host(&fixture.config).await.unwrap();
    assert!(
        matches!(&again, jshost::manager::Started::AlreadyRunning(h) if h.status.url() == Some(host.url())),
        "{again:?}"
    );
    assert!(manager.stop_host(&fixture.config).await.unwrap().is_some());
    assert!(manager.host_status(&fixture.config).await.unwrap().is_none());
    assert!(
        manager.stop_host(&fixture.config).await.unwrap().is_none(),
        "no such host is an answer"
    );
    assert!(manager.restart_host(&fixture.config).await.unwrap().is_none());
    assert!(manager.open_connection(&fixture.config).await.unwrap().is_none());
    let started = manager.start_host(&fixture.config).await.unwrap();
    assert!(
        matches!(&started, jshost::manager::Started::New(h) if h.status.port().is_some()),
        "{started:?}"
    );
    manager.stop().await.unwrap();
    wait_for(Duration::from_secs(10), "the manager to exit", || {
        let m = manager.clone();
        async move { (!m.is_running().await).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_process_that_returns_from_main_leaves_no_connection() {
    let fixture = fixture("exit");
    // Our own connection keeps the host up while we look at the manager's list.
    let ours = managed(&fixture).await;
    let manager = ours.manager().unwrap().clone();
    let out = Command::new(env!("CARGO_BIN_EXE_connect_and_exit"))
        .env("JSHOST_SOURCE_ROOT", jshost_integration::repo_root())
        .env("JSHOST_CONFIG_FILE", &fixture.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!theirs.is_empty());
    wait_for(
        Duration::from_secs(10),
        "the exited process's connection to close",
        || {
            let (m, f, theirs) = (manager.clone(), &fixture, theirs.clone());
            async move {
                let open = connections(&m, f).await.unwrap_or_default();
                (!open.contains(&theirs)).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        connections(&manager, &fixture).await.unwrap(),
        vec![ours.connection_id().unwrap()]
    );
}

async fn assert_drop_closes(fixture: &Fixture, manager: &Manager, id: &str) {
    wait_for(
        Duration::from_secs(10),
        "the dropped handle's connection to close",
        || {
            let (m, id) = (manager.clone(), id.to_owned());
            async move { (!connections(&m, fixture).await.unwrap_or_default().contains(&id)).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_closes_the_connection_multi_thread() {
    let fixture = fixture("drop-mt");
    let keep = managed(&fixture).await;
    let manager = keep.manager().unwrap().clone();
    let host = managed(&fixture).await;
    let id = host.connection_id().unwrap();
    let clone = host.clone();
    drop(host);
    assert!(
        connections(&manager, &fixture).await.unwrap().contains(&id),
        "a clone still holds it"
    );
    assert_eq!(
        clone.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    drop(clone);
    assert_drop_closes(&fixture, &manager, &id).await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_the_last_clone_closes_the_connection_current_thread() {
    let fixture = fixture("drop-ct");
    let keep = managed(&fixture).await;
    let manager = keep.manager().unwrap().clone();
    let host = managed(&fixture).await;
    let id = host.connection_id().unwrap();
    drop(host);
    assert_drop_closes(&fixture, &manager, &id).await;
}

#[test]
fn dropping_outside_any_runtime_closes_the_connection() {
    let fixture = fixture("drop-no-rt");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keep = rt.block_on(managed(&fixture));
    let host = rt.block_on(managed(&fixture));
    let id = host.connection_id().unwrap();
    drop(rt);
    drop(host); // no runtime here: the drop must neither block nor panic
    let rt = tokio::runtime::Runtime::new().unwrap();
    let manager = keep.manager().unwrap().clone();
    rt.block_on(assert_drop_closes(&fixture, &manager, &id));
}

#[tokio::test]
async fn a_crashed_host_is_a_process_error_naming_its_logfile() {
    let fixture = fixture("crash");
    let host = managed(&fixture).await;
    let pid: u32 = host.function("pid").call(&()).await.unwrap().parse().unwrap();
    // The host itself (a jshost-node primary replaces a worker that dies).
    kill9(host_process_of(pid));
    let started = Instant::now();
    let e = wait_for(Duration::from_secs(5), "calls to fail after the kill", || {
        let host = host.clone();
        async move { host.function("hello_world").call(&()).await.err() }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(e.is_process(), "{e:?}");
    let logfile = host.logfile().unwrap().display().to_string();
    assert!(e.to_string().contains(&logfile), "{e}");
    assert_eq!(e.logfile(), host.logfile().as_deref());
    assert_eq!(e.function_name(), Some("hello_world"));

    // No automatic respawn: calls keep failing until restart() brings the host back.
    assert!(host
        .function("hello_world")
        .call(&())
        .await
        .unwrap_err()
        .is_process());
    host.restart().await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    assert!(host.is_running().await);
    let open = connections(host.manager().unwrap(), &fixture).await.unwrap();
    assert_eq!(
        open,
        vec![host.connection_id().unwrap()],
        "reconnected to the new host"
    );
}

#[tokio::test]
async fn restart_keeps_port_and_logfile_and_resets_state() {
    let fixture = fixture("restart");
    let host = managed(&fixture).await;
    let counter = host.function("counter");
    assert_eq!(counter.call(&()).await.unwrap(), "1");
    assert_eq!(counter.call(&()).await.unwrap(), "2");
    let pid = host.function("pid").call(&()).await.unwrap();
    host.restart().await.unwrap();
    assert_eq!(counter.call(&()).await.unwrap(), "1", "fresh JS state");
    assert_ne!(
        host.function("pid").call(&()).await.unwrap(),
        pid,
        "a new process"
    );
    let info = host
        .manager()
        .unwrap()
        .host_status(&fixture.config)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status.url(), Some(host.url()), "same port");
    assert_eq!(Some(info.logfile), host.logfile(), "same logfile");
    assert!(
        info.connections.contains(&host.connection_id().unwrap()),
        "connections kept"
    );
    assert!(host.is_running().await);
}

#[tokio::test]
async fn stop_stops_the_host() {
    let fixture = fixture("stop");
    let host = managed(&fixture).await;
    host.stop().await.unwrap();
    assert!(!host.is_running().await);
    let e = host.function("hello_world").call(&()).await.unwrap_err();
    assert!(e.is_process(), "{e:?}");
    assert!(host
        .manager()
        .unwrap()
        .host_status(&fixture.config)
        .await
        .unwrap()
        .is_none());
    host.restart().await.unwrap();
    assert_eq!(host.function("counter").call(&()).await.unwrap(), "1");
}

#[tokio::test]
async fn the_managers_port_held_by_another_program_is_named() {
    let fixture = fixture("port-taken");
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", fixture.port)).unwrap();
    let started = Instant::now();
    let e = JsHost::connect(fixture.settings().use_manager(true))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&fixture.port.to_string()), "{e}");
    assert!(e.to_string().contains("another program"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_killed_manager_is_replaced_on_the_next_connect() {
    let fixture = fixture("manager-killed");
    let host = managed(&fixture).await;
    let needle = format!("{} --manager", fixture.config.display());
    let line = processes_mentioning(&needle).pop().expect("a manager process");
    let pid: u32 = line.split_whitespace().next().unwrap().parse().unwrap();
    kill9(pid);
    let manager = host.manager().unwrap().clone();
    wait_for(Duration::from_secs(5), "the manager to die", || {
        let m = manager.clone();
        async move { (!m.is_running().await).then_some(()) }
    })
    .await;
    let fresh = managed(&fixture).await;
    assert!(fresh.manager().unwrap().is_running().await);
    assert_eq!(
        fresh.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn a_stale_status_cache_never_wins() {
    use jshost_manager::{NodeSetup, StatusCache};
    let fixture = fixture("stale-cache");
    let settings = fixture.settings().status_cache(true).use_manager(true);
    // Plant a wrong entry for this config: another port and a function that does not exist.
    let setup = NodeSetup::check(&settings).unwrap();
    let fresh = setup
        .expected_status(false, Duration::from_secs(10))
        .await
        .unwrap();
    let mut wrong = fresh
        .with_port(jshost_integration::free_port())
        .as_value()
        .clone();
    wrong["config"]["functions"] = serde_json::json!(["stale_function"]);
    let wrong = jshost::Status::from_value(wrong).unwrap();
    StatusCache::private().unwrap().put(&setup, &wrong);
    assert_eq!(StatusCache::private().unwrap().get(&setup), Some(wrong));

    // Cold start with the stale entry: the manager is judged by the fresh status.
    let host = JsHost::connect(settings.clone()).await.unwrap();
    assert_eq!(host.manager().unwrap().url(), fixture.url());
    assert!(host.functions().contains(&"hello_world".to_string()));
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    assert_eq!(
        StatusCache::private().unwrap().get(&setup),
        Some(fresh),
        "the cache was corrected"
    );

    // Warm start from the corrected cache.
    let again = JsHost::connect(settings).await.unwrap();
    assert_eq!(again.url(), host.url());
}

#[tokio::test]
async fn an_edited_config_gets_its_new_status_from_the_running_manager() {
    let fixture = fixture("edited-config");
    let host = managed(&fixture).await;
    let manager = host.manager().unwrap().clone();
    // Edit the config while its manager runs (a new user key changes the status): the manager
    // is reused (it serves every config of the user) and the host follows the edit.
    let text = std::fs::read_to_string(&fixture.config).unwrap();
    std::fs::write(
        &fixture.config,
        text.replace("port:", "customProp: 'edited',\n  port:"),
    )
    .unwrap();
    let fresh = JsHost::connect(fixture.settings().use_manager(true))
        .await
        .expect("an edited config connects, no advice to stop anything");
    assert_eq!(fresh.manager().unwrap().url(), manager.url(), "the same manager");
    assert_eq!(fresh.status().config()["customProp"], "edited");
    assert_eq!(
        fresh.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

/// The SDK tells a jshost-node manager from js-host's by the `X-Jshost-Node` header of its
/// `/status` answer (one request): only jshost-node's describes its hosts' options and is
/// connected to in one request.
#[tokio::test]
async fn the_manager_is_told_apart_by_its_status_answer() {
    let fixture = fixture("kind");
    let host = managed(&fixture).await;
    let settings = fixture.settings().use_manager(true);
    let setup = jshost_manager::NodeSetup::check(&settings).expect("setup");
    let located = jshost_manager::locate_manager(&settings, &setup, false)
        .await
        .expect("locate");
    let expected = jshost_integration::host_under_test() == jshost_integration::Host::JshostNode;
    match located {
        jshost_manager::Located::Manager { jshost_node, .. } => assert_eq!(jshost_node, expected),
        other => panic!("a manager runs on the fixture's port: {other:?}"),
    }
    host.disconnect().await.expect("disconnect");
}
