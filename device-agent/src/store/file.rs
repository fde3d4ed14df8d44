//! The on-disk state store.
//!
//! File: `<dir>/state.json`, a header line `fieldlink-device-state v1 sha256=<hex>` followed by
//! the JSON body the checksum covers. A save writes `<dir>/state.json.tmp`, fsyncs it, renames it
//! over `state.json` and fsyncs the directory. `rename` is atomic on POSIX file systems, so a
//! `kill -9` or power cut at any point leaves either the old or the new committed file; a leftover
//! temp file (complete or torn) is ignored on load and replaced by the next save.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::{PersistedState, StateStore, StoreError};

const STATE_FILE: &str = "state.json";
const TEMP_FILE: &str = "state.json.tmp";
const HEADER_PREFIX: &str = "fieldlink-device-state v1 sha256=";

/// Where a simulated crash stops a save (tests only).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrashPoint {
    /// After half of the temp file was written.
    MidWrite,
    /// After the temp file was written and synced, before the rename.
    BeforeRename,
    /// After the rename, before the directory sync.
    BeforeDirSync,
}

/// Atomic file-backed [`StateStore`].
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    // Serialises saves within the process: one temp file name, one writer.
    write_lock: Mutex<()>,
    #[cfg(test)]
    crash_at: Mutex<Option<CrashPoint>>,
}

impl FileStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| io_error(&dir, source))?;
        Ok(Self {
            dir,
            write_lock: Mutex::new(()),
            #[cfg(test)]
            crash_at: Mutex::new(None),
        })
    }

    /// The committed state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(TEMP_FILE)
    }

    #[cfg(test)]
    pub(crate) fn crash_next_save_at(&self, point: CrashPoint) {
        *self.crash_at.lock().expect("crash point lock") = Some(point);
    }

    #[cfg(test)]
    fn crash_here(&self, point: CrashPoint) -> bool {
        let mut armed = self.crash_at.lock().expect("crash point lock");
        if *armed == Some(point) {
            *armed = None;
            true
        } else {
            false
        }
    }

    #[cfg(not(test))]
    fn crash_here(&self, _point: ()) -> bool {
        false
    }
}

/// Encodes a state as the file's bytes.
fn encode(state: &PersistedState) -> Result<Vec<u8>, StoreError> {
    let body = serde_json::to_vec_pretty(state).map_err(|error| StoreError::Corrupt {
        path: STATE_FILE.into(),
        reason: format!("cannot encode state: {error}"),
    })?;
    let digest = hex::encode(Sha256::digest(&body));
    let mut bytes = format!("{HEADER_PREFIX}{digest}\n").into_bytes();
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes and checks a state file's bytes.
fn decode(bytes: &[u8], path: &Path) -> Result<PersistedState, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let newline = bytes
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| corrupt("missing header line".into()))?;
    let header = std::str::from_utf8(&bytes[..newline])
        .map_err(|_| corrupt("header is not UTF-8".into()))?;
    let expected = header
        .strip_prefix(HEADER_PREFIX)
        .ok_or_else(|| corrupt(format!("unknown header {header:?}")))?;
    let body = &bytes[newline + 1..];
    let actual = hex::encode(Sha256::digest(body));
    if actual != expected {
        return Err(corrupt("checksum mismatch (torn or damaged file)".into()));
    }
    serde_json::from_slice(body).map_err(|error| corrupt(format!("invalid JSON body: {error}")))
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| io_error(dir, source))
}

impl StateStore for FileStore {
    fn load(&self) -> Result<Option<PersistedState>, StoreError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => decode(&bytes, &path).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error(&path, source)),
        }
    }

    fn save(&self, state: &PersistedState) -> Result<(), StoreError> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes = encode(state)?;
        let temp = self.temp_path();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|source| io_error(&temp, source))?;
        #[cfg(test)]
        if self.crash_here(CrashPoint::MidWrite) {
            let half = &bytes[..bytes.len() / 2];
            file.write_all(half)
                .map_err(|source| io_error(&temp, source))?;
            return Err(simulated_crash());
        }
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| io_error(&temp, source))?;
        drop(file);
        #[cfg(test)]
        if self.crash_here(CrashPoint::BeforeRename) {
            return Err(simulated_crash());
        }
        let path = self.state_path();
        fs::rename(&temp, &path).map_err(|source| io_error(&path, source))?;
        #[cfg(test)]
        if self.crash_here(CrashPoint::BeforeDirSync) {
            return Err(simulated_crash());
        }
        #[cfg(not(test))]
        let _ = self.crash_here(());
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
fn simulated_crash() -> StoreError {
    StoreError::Io {
        path: "simulated crash".into(),
        source: std::io::Error::other("simulated crash"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::sample_state;

    fn changed(mut state: PersistedState) -> PersistedState {
        state.pop_attempts.failures = 3;
        state
    }

    #[test]
    fn round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert!(store.load().unwrap().is_none());
        let state = sample_state();
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), Some(state.clone()));
        let next = changed(state);
        store.save(&next).unwrap();
        assert_eq!(store.load().unwrap(), Some(next));
        assert!(!store.temp_path().exists());
    }

    #[test]
    fn a_crash_at_any_point_leaves_old_or_new_state() {
        for point in [
            CrashPoint::MidWrite,
            CrashPoint::BeforeRename,
            CrashPoint::BeforeDirSync,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = FileStore::open(dir.path()).unwrap();
            let old = sample_state();
            store.save(&old).unwrap();
            let new = changed(old.clone());
            store.crash_next_save_at(point);
            assert!(store.save(&new).is_err());
            // "Restart": a new store over the same directory.
            let reopened = FileStore::open(dir.path()).unwrap();
            let loaded = reopened.load().unwrap().unwrap();
            match point {
                CrashPoint::BeforeDirSync => assert_eq!(loaded, new, "{point:?}"),
                _ => assert_eq!(loaded, old, "{point:?}"),
            }
            // The next save works over any leftover temp file.
            let newer = PersistedState {
                seen_nonces: vec![],
                ..changed(loaded)
            };
            reopened.save(&newer).unwrap();
            assert_eq!(reopened.load().unwrap(), Some(newer));
        }
    }

    #[test]
    fn leftover_temp_files_never_shadow_the_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let state = sample_state();
        store.save(&state).unwrap();
        // A complete but uncommitted temp (crash before rename), then a truncated one.
        let full = encode(&changed(state.clone())).unwrap();
        fs::write(store.temp_path(), &full).unwrap();
        assert_eq!(store.load().unwrap(), Some(state.clone()));
        fs::write(store.temp_path(), &full[..full.len() / 3]).unwrap();
        assert_eq!(store.load().unwrap(), Some(state.clone()));
        fs::write(store.temp_path(), b"").unwrap();
        assert_eq!(store.load().unwrap(), Some(state));
    }

    #[test]
    fn a_damaged_committed_file_is_reported_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        store.save(&sample_state()).unwrap();
        let mut bytes = fs::read(store.state_path()).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        fs::write(store.state_path(), &bytes).unwrap();
        let error = store.load().unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        fs::write(store.state_path(), b"garbage").unwrap();
        assert!(matches!(
            store.load().unwrap_err(),
            StoreError::Corrupt { .. }
        ));
    }

    #[test]
    fn the_file_does_not_show_secrets_in_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        store.save(&sample_state()).unwrap();
        let text = fs::read_to_string(store.state_path()).unwrap();
        assert!(text.starts_with(HEADER_PREFIX));
        assert!(text.contains("\"registration_id\": \"sensor-0001\""));
    }

    proptest::proptest! {
        /// Any truncation or single-bit flip of a state file is refused, never read as some
        /// other state.
        #[test]
        fn damaged_files_are_refused(cut in 0usize..4096, flip in 0usize..4096, bit in 0u8..8) {
            let mut state = sample_state();
            state.pop_attempts.failures = 2;
            let bytes = encode(&state).unwrap();
            let cut = cut % bytes.len();
            proptest::prop_assert!(decode(&bytes[..cut], Path::new("t")).is_err());
            let mut flipped = bytes.clone();
            let at = flip % flipped.len();
            flipped[at] ^= 1 << bit;
            proptest::prop_assert!(decode(&flipped, Path::new("t")).is_err());
            proptest::prop_assert_eq!(decode(&bytes, Path::new("t")).unwrap(), state);
        }
    }
}
