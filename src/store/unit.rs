//! What a running unit knows about itself beyond its results log: whether its camera works and
//! which model it runs now. The service loop writes it; the sync thread reads it into the
//! retained status message (README "Research network"), and publishes again when it changes,
//! so a study coordinator sees an unplugged camera within seconds, not at the next heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The camera as the status message names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Camera {
    /// No camera is configured (watch folder, samples, the upload page).
    None,
    /// Opening it, or not yet known.
    Starting,
    /// Frames are arriving.
    Streaming,
    /// It was lost (unplugged, failing); the unit is trying to reopen it.
    Lost,
}

/// The model the unit runs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RunningModel {
    /// Name and version from the manifest.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// Variant in use.
    pub variant: String,
    /// First 12 hex digits of the model file's sha256.
    pub sha256: String,
}

impl From<&crate::model::ModelId> for RunningModel {
    fn from(id: &crate::model::ModelId) -> Self {
        RunningModel {
            name: id.name.clone(),
            version: id.version.clone(),
            variant: id.variant.clone(),
            sha256: id.sha256.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    camera: Camera,
    model: Option<RunningModel>,
}

/// Shared between the service loop and the sync thread.
#[derive(Debug)]
pub struct UnitState {
    inner: Mutex<Inner>,
    /// Grows with every change, so a reader can tell whether to say it again.
    changes: AtomicU64,
}

impl UnitState {
    /// A new state: camera `camera`, no model loaded yet.
    pub fn new(camera: Camera) -> Arc<UnitState> {
        Arc::new(UnitState {
            inner: Mutex::new(Inner {
                camera,
                model: None,
            }),
            changes: AtomicU64::new(0),
        })
    }

    fn update(&self, f: impl FnOnce(&mut Inner) -> bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if f(&mut g) {
            self.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The camera's state now.
    pub fn set_camera(&self, c: Camera) {
        self.update(|i| std::mem::replace(&mut i.camera, c) != c);
    }

    /// The model loaded now.
    pub fn set_model(&self, m: RunningModel) {
        self.update(|i| i.model.replace(m.clone()).as_ref() != Some(&m));
    }

    /// The camera, the model, and the change counter they were read at.
    pub fn snapshot(&self) -> (Camera, Option<RunningModel>, u64) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (
            g.camera,
            g.model.clone(),
            self.changes.load(Ordering::SeqCst),
        )
    }

    /// The change counter.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_changes_count() {
        let s = UnitState::new(Camera::Starting);
        s.set_camera(Camera::Starting);
        assert_eq!(s.changes(), 0);
        s.set_camera(Camera::Streaming);
        s.set_camera(Camera::Streaming);
        assert_eq!(s.changes(), 1);
        let m = RunningModel {
            name: "cxr-net".into(),
            version: "1".into(),
            variant: "int8".into(),
            sha256: "0f67ee9f0d76".into(),
        };
        s.set_model(m.clone());
        s.set_model(m.clone());
        assert_eq!(s.changes(), 2);
        let (c, model, n) = s.snapshot();
        assert_eq!((c, model, n), (Camera::Streaming, Some(m), 2));
    }
}
