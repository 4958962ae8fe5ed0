//! The process-wide default host (`jshost::configure` + `Function::new`), as the Python client's
//! singleton. Its own test binary: the default is global to the process.

use jshost::Function;
use jshost_integration::Fixture;

#[tokio::test]
async fn configure_then_call_by_name() {
    let fixture = Fixture::new("default", "");
    let _process = fixture.start_host();
    let e = Function::new("hello_world").call(&()).await.unwrap_err();
    assert!(e.is_config(), "before configure: {e}");

    let host = jshost::configure(fixture.settings()).await.unwrap();
    assert_eq!(
        Function::new("hello_world")
            .call(&serde_json::json!({"name": "Foo"}))
            .await
            .unwrap(),
        "Hello, Foo!"
    );
    assert_eq!(jshost::default_host().unwrap().url(), host.url());
    let e = Function::new("missing").call(&()).await.unwrap_err();
    assert!(e.is_unknown_function(), "{e}");
}
