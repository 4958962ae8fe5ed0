//! The development loop of managed hosts: a warm host answers with the code on disk after an
//! edit, and one manager port serves several projects, each with a host of its own.

use jshost::{JsHost, Settings};
use jshost_integration::{host_bin, host_under_test, js_host_bin, repo_root, wait_for, Fixture, Host};
use std::path::Path;
use std::time::Duration;

/// A project whose config loads `functions.js` beside it (`version` answers `answer`); its hosts
/// stay warm 20 s after their last connection.
fn project(name: &str, answer: &str) -> Fixture {
    project_stopping_after(name, answer, 20_000)
}

/// As [`project`], its manager stopping a host `disconnect_ms` after its last connection closes.
fn project_stopping_after(name: &str, answer: &str, disconnect_ms: u32) -> Fixture {
    let fixture = Fixture::with_body(name, |port, _| {
        format!(
            "module.exports = {{\n  port: {port},\n  disconnectTimeout: {disconnect_ms},\n  functions: require('./functions.js')\n}};\n"
        )
    });
    write_functions(fixture.dir(), answer);
    fixture
}

fn write_functions(dir: &Path, answer: &str) {
    let body =
        format!("module.exports = {{\n  version: function (data, cb) {{ cb(null, {answer:?}); }}\n}};\n");
    std::fs::write(dir.join("functions.js"), body).unwrap();
}

async fn version(host: &JsHost) -> String {
    host.function("version").call(&()).await.unwrap()
}

/// Connects again (as a restarted program would) and waits, at most 2 s, for `answer`.
async fn answers_within_2s(settings: Settings, answer: &'static str) -> JsHost {
    let host = JsHost::connect(settings).await.expect("managed connect");
    let probe = host.clone();
    wait_for(Duration::from_secs(2), "the warm host to answer with the new code", || {
        let host = probe.clone();
        async move { (host.function("version").call(&()).await.ok().as_deref() == Some(answer)).then_some(()) }
    })
    .await;
    host
}

#[tokio::test]
async fn a_warm_managed_host_answers_with_the_new_code_after_an_edit() {
    if host_under_test() == Host::JsHost {
        println!("skipped: js-host 0.12's hosts do not reload on change (the SDK warns instead)");
        return;
    }
    let fixture = project("devloop-edit", "v1");
    let first = JsHost::connect(fixture.settings().use_manager(true))
        .await
        .unwrap();
    assert_eq!(version(&first).await, "v1");
    let warm_url = first.url().to_owned();
    first.disconnect().await.unwrap();

    write_functions(fixture.dir(), "v2");
    let second = answers_within_2s(fixture.settings().use_manager(true), "v2").await;
    assert_eq!(
        second.url(),
        warm_url,
        "the warm host was reused, not started anew"
    );
    let info = second
        .manager()
        .unwrap()
        .host_status(&fixture.config)
        .await
        .unwrap()
        .expect("the host runs");
    assert_eq!(
        info.options.as_ref().and_then(|o| o["watch"].as_bool()),
        Some(true),
        "managed hosts watch by default: {:?}",
        info.options
    );
    second.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_warm_host_started_without_watch_is_restarted_with_it() {
    if host_under_test() == Host::JsHost {
        println!("skipped: js-host 0.12's managers take no host options");
        return;
    }
    let fixture = project("devloop-nowatch", "v1");
    let first = JsHost::connect(fixture.settings().use_manager(true).watch(false))
        .await
        .unwrap();
    assert_eq!(version(&first).await, "v1");
    first.disconnect().await.unwrap();

    // The program restarts with the default settings: the stale host is brought up to date.
    write_functions(fixture.dir(), "v2");
    let second = answers_within_2s(fixture.settings().use_manager(true), "v2").await;
    write_functions(fixture.dir(), "v3");
    wait_for(Duration::from_secs(10), "the host to reload the edit", || {
        let host = second.clone();
        async move { (host.function("version").call(&()).await.ok().as_deref() == Some("v3")).then_some(()) }
    })
    .await;
    second.disconnect().await.unwrap();
}

/// Settings of a second project: `dir/host.config.js` on `port` (another project's manager port).
fn second_project(dir: &Path, port: u16, answer: &str) -> Settings {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("host.config.js"),
        format!("module.exports = {{\n  port: {port},\n  disconnectTimeout: 300,\n  functions: require('./functions.js')\n}};\n"),
    )
    .unwrap();
    write_functions(dir, answer);
    Settings::default()
        .source_root(repo_root())
        .config_file(dir.join("host.config.js"))
        .path_to_bin(host_bin())
        .status_cache(false)
        .use_manager(true)
}

#[tokio::test]
async fn two_projects_on_one_manager_port_both_answer() {
    // The manager (started by project a) stops an unused host 300 ms after its last disconnect.
    let a_fixture = project_stopping_after("devloop-two", "project a", 300);
    // Inside the first fixture's directory: its guard stops everything started for either.
    let b_settings = second_project(&a_fixture.dir().join("project-b"), a_fixture.port, "project b");
    let b_config = b_settings.config_file.clone();

    let a = JsHost::connect(a_fixture.settings().use_manager(true))
        .await
        .unwrap();
    let b = JsHost::connect(b_settings.clone())
        .await
        .expect("the second project reuses the manager");
    assert_eq!(version(&a).await, "project a");
    assert_eq!(version(&b).await, "project b");
    assert_ne!(a.url(), b.url(), "each project has a host of its own");
    let manager = a.manager().unwrap().clone();
    assert_eq!(b.manager().unwrap().url(), manager.url(), "one manager");

    // Stopping one project's host leaves the other's answering; so does its disconnect.
    b.stop().await.unwrap();
    assert!(manager.host_status(&b_config).await.unwrap().is_none());
    assert_eq!(version(&a).await, "project a");
    let b = JsHost::connect(b_settings).await.unwrap();
    assert_eq!(version(&b).await, "project b");
    b.disconnect().await.unwrap();
    wait_for(Duration::from_secs(10), "project b's host to stop", || {
        let manager = manager.clone();
        let config = b_config.clone();
        async move {
            manager
                .host_status(&config)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(a.is_running().await);
    assert_eq!(version(&a).await, "project a");
    a.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_project_of_the_other_host_package_shares_the_manager() {
    let a_fixture = project("devloop-other-package", "project a");
    let a = JsHost::connect(a_fixture.settings().use_manager(true))
        .await
        .unwrap();
    let other_bin = match host_under_test() {
        Host::JshostNode => js_host_bin(),
        Host::JsHost => repo_root().join(jshost_core::settings::DEFAULT_PATH_TO_BIN),
    };
    let b_settings = second_project(&a_fixture.dir().join("project-b"), a_fixture.port, "project b")
        .path_to_bin(other_bin);
    let b = JsHost::connect(b_settings)
        .await
        .expect("the manager serves the other package's project");
    assert_eq!(b.manager().unwrap().url(), a.manager().unwrap().url());
    assert_eq!(version(&b).await, "project b");
    assert_eq!(version(&a).await, "project a");
    b.disconnect().await.unwrap();
    a.disconnect().await.unwrap();
}

#[tokio::test]
async fn an_edited_config_is_served_by_the_running_manager() {
    let fixture = project("devloop-config", "v1");
    let first = JsHost::connect(fixture.settings().use_manager(true))
        .await
        .unwrap();
    let manager_url = first.manager().unwrap().url().to_owned();
    // A new key changes the status the config's hosts report (and its manager's).
    let text = std::fs::read_to_string(&fixture.config).unwrap();
    std::fs::write(
        &fixture.config,
        text.replace("port:", "customProp: 'edited',\n  port:"),
    )
    .unwrap();
    let second = JsHost::connect(fixture.settings().use_manager(true))
        .await
        .expect("the manager started from the old config is reused");
    assert_eq!(second.manager().unwrap().url(), manager_url);
    assert_eq!(second.status().config()["customProp"], "edited");
    assert_eq!(version(&second).await, "v1");
    first.disconnect().await.unwrap();
    second.disconnect().await.unwrap();
}
