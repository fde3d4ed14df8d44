//! Command tests: the real commands, registered on `tauri::test::mock_builder()`, invoked over
//! the mock IPC (argument names, JSON shapes, the error shape) or called with their `State`
//! and a capturing `Channel` (progress streams), against the in-process world: real device
//! agents behind the core's in-memory radio and the DPS emulator over loopback HTTPS.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use fieldlink_tests::world::{World, WorldConfig};
use serde_json::Value;
use tauri::{
    App, Manager, WebviewWindow, WebviewWindowBuilder,
    ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody},
    test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets},
    webview::InvokeRequest,
};

use fieldlink_core::secrets::MemoryStore;

use crate::{
    site::Site,
    state::{DesktopState, StatePaths},
};

mod app;
mod commission;
mod issuer;
mod sign_in;

pub(super) struct TestApp {
    app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::setup(mock_builder())
            .build(mock_context(noop_assets()))
            .unwrap();
        let paths = StatePaths::new(dir.path(), dir.path(), &dir.path().join("exports"));
        app.manage(DesktopState::open(paths, Arc::new(MemoryStore::new())).unwrap());
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        Self {
            app,
            webview,
            _dir: dir,
        }
    }

    pub(super) async fn with_world(devices: usize) -> (Self, Vec<String>) {
        let test = Self::new();
        let world = World::start(WorldConfig {
            devices,
            ..WorldConfig::default()
        })
        .await;
        let labels = world.devices.iter().map(|d| d.payload.encode()).collect();
        test.state()
            .install_site(Site::over_world("simulator", world))
            .await;
        (test, labels)
    }

    pub(super) fn state(&self) -> tauri::State<'_, DesktopState> {
        self.app.state::<DesktopState>()
    }

    pub(super) fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Invokes `cmd` over the mock IPC: `Ok(json)` or `Err(error json)`.
    pub(super) fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().unwrap())
    }
}

/// A channel that collects what the command sends.
pub(super) fn capture<T, C>() -> (Channel<C>, Arc<Mutex<Vec<T>>>)
where
    T: serde::de::DeserializeOwned + Send + 'static,
    C: tauri::ipc::IpcResponse,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let channel = Channel::new(move |body| {
        if let InvokeResponseBody::Json(text) = body {
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(&text).unwrap());
        }
        Ok(())
    });
    (channel, seen)
}

pub(super) fn assert_error_shape(error: &Value, code: &str) {
    assert_eq!(error["code"], code, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["retryable"].is_boolean());
    assert!(error["details"].is_object());
}
