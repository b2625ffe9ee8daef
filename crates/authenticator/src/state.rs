//! The device's state file: server URL, issuer, device id and private key (SPEC §3.2). Written
//! with mode 0600, atomically (temporary file, fsync, rename), so a crash never leaves a
//! half-written key behind.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use backchannel_protocol::jose::{self, Jwk};
use serde::{Deserialize, Serialize};

use crate::AuthenticatorError;

/// What a device keeps between runs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The URL the device talks to (a node or the public URL).
    pub server: String,
    /// The issuer: the public URL that `htu` and challenge `iss` name.
    pub issuer: String,
    pub device_id: String,
    /// The device's private key. It never leaves the device.
    pub private_jwk: Jwk,
}

impl std::fmt::Debug for DeviceState {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("server", &self.server)
            .field("issuer", &self.issuer)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl DeviceState {
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuthenticatorError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| io_err(path, source))?;
        serde_json::from_slice(&bytes).map_err(|e| AuthenticatorError::StateFormat {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes the state to `path` with mode 0600, replacing any previous file atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), AuthenticatorError> {
        let path = path.as_ref();
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| AuthenticatorError::StateFormat {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = jose::random_token(6)?;
        let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
        let written = (|| {
            // The mode is set at creation: the key is never readable by others, not even for
            // the moment between create and chmod.
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // Make the rename durable too.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(|source| io_err(path, source))
    }
}

fn io_err(path: &Path, source: std::io::Error) -> AuthenticatorError {
    AuthenticatorError::StateIo {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_protocol::jose::{Algorithm, SigningKey};
    use std::os::unix::fs::PermissionsExt as _;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bc-auth-state-{tag}-{}-{}",
            std::process::id(),
            jose::random_token(4).unwrap()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn state() -> DeviceState {
        DeviceState {
            server: "http://127.0.0.1:1".into(),
            issuer: "https://id.example".into(),
            device_id: "dev-1".into(),
            private_jwk: SigningKey::generate(Algorithm::ES256)
                .unwrap()
                .to_private_jwk(),
        }
    }

    #[test]
    fn saved_file_is_private_and_round_trips() {
        let dir = temp_dir("mode");
        let path = dir.join("device.json");
        let s = state();
        s.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(DeviceState::load(&path).unwrap(), s);
        // The key loads back into a usable signing key.
        SigningKey::from_jwk(&DeviceState::load(&path).unwrap().private_jwk).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn save_replaces_a_world_readable_file_with_a_private_one() {
        let dir = temp_dir("replace");
        let path = dir.join("device.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        state().save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn debug_output_hides_the_key() {
        let s = state();
        let d = format!("{s:?}");
        assert!(d.contains("dev-1"));
        assert!(!d.contains(s.private_jwk.d.as_deref().unwrap()));
    }

    #[test]
    fn a_malformed_file_is_a_format_error() {
        let dir = temp_dir("bad");
        let path = dir.join("device.json");
        fs::write(&path, "{\"server\": 1}").unwrap();
        assert!(matches!(
            DeviceState::load(&path),
            Err(AuthenticatorError::StateFormat { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }
}
