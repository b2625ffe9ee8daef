//! A software WebAuthn authenticator written from the WebAuthn Level 3 and COSE specifications
//! (not from the server's verifier), for the server's unit tests and its integration tests:
//! each includes this file with `#[path]`. Its knobs make the broken variants a verifier must
//! refuse: another origin, another RP ID, no user verification, a counter that goes back.

use backchannel_protocol::jose::{Algorithm, SigningKey, b64, random_bytes, sha256};
use minicbor::Encoder;

pub struct SoftAuthenticator {
    pub key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The RP ID whose hash goes into authenticator data.
    pub rp_id: String,
    /// The origin written into client data.
    pub origin: String,
    pub counter: u32,
    /// Whether the authenticator reports a verified user (UV flag).
    pub verifies_user: bool,
}

/// What `navigator.credentials.create` returns, as raw bytes.
pub struct Attestation {
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub attestation_object: Vec<u8>,
}

/// What `navigator.credentials.get` returns, as raw bytes.
pub struct Assertion {
    pub credential_id: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SoftAuthenticator {
    pub fn new(alg: Algorithm, rp_id: &str, origin: &str) -> Self {
        SoftAuthenticator {
            key: SigningKey::generate(alg).unwrap(),
            credential_id: random_bytes(16).unwrap(),
            rp_id: rp_id.into(),
            origin: origin.into(),
            counter: 0,
            verifies_user: true,
        }
    }

    fn client_data(&self, kind: &str, challenge: &[u8]) -> Vec<u8> {
        serde_json::json!({
            "type": kind,
            "challenge": b64::encode(challenge),
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn auth_data_head(&self, extra_flags: u8) -> Vec<u8> {
        let mut data = sha256(self.rp_id.as_bytes()).to_vec();
        let uv = if self.verifies_user { 0x04 } else { 0 };
        data.push(0x01 | uv | extra_flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }

    /// The credential public key as a COSE_Key (RFC 9053 §7.1, §7.2; RFC 8230 §4).
    pub fn cose_key(&self) -> Vec<u8> {
        let jwk = self.key.public_jwk();
        let member = |m: &Option<String>| b64::decode(m.as_deref().unwrap()).unwrap();
        let mut e = Encoder::new(Vec::new());
        match self.key.alg() {
            Algorithm::ES256 => {
                e.map(5).unwrap();
                e.i64(1).unwrap().i64(2).unwrap();
                e.i64(3).unwrap().i64(-7).unwrap();
                e.i64(-1).unwrap().i64(1).unwrap();
                e.i64(-2).unwrap().bytes(&member(&jwk.x)).unwrap();
                e.i64(-3).unwrap().bytes(&member(&jwk.y)).unwrap();
            }
            Algorithm::EdDSA => {
                e.map(4).unwrap();
                e.i64(1).unwrap().i64(1).unwrap();
                e.i64(3).unwrap().i64(-8).unwrap();
                e.i64(-1).unwrap().i64(6).unwrap();
                e.i64(-2).unwrap().bytes(&member(&jwk.x)).unwrap();
            }
            Algorithm::RS256 => {
                e.map(4).unwrap();
                e.i64(1).unwrap().i64(3).unwrap();
                e.i64(3).unwrap().i64(-257).unwrap();
                e.i64(-1).unwrap().bytes(&member(&jwk.n)).unwrap();
                e.i64(-2).unwrap().bytes(&member(&jwk.e)).unwrap();
            }
            other => panic!("no COSE key for {other:?}"),
        }
        e.into_writer()
    }

    /// A registration with `none` attestation.
    pub fn register(&mut self, challenge: &[u8]) -> Attestation {
        let mut auth_data = self.auth_data_head(0x40);
        auth_data.extend_from_slice(&[0u8; 16]); // aaguid
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&self.cose_key());
        let mut e = Encoder::new(Vec::new());
        e.map(3).unwrap();
        e.str("fmt").unwrap().str("none").unwrap();
        e.str("attStmt").unwrap().map(0).unwrap();
        e.str("authData").unwrap().bytes(&auth_data).unwrap();
        Attestation {
            credential_id: self.credential_id.clone(),
            client_data_json: self.client_data("webauthn.create", challenge),
            attestation_object: e.into_writer(),
        }
    }

    /// An assertion over `challenge`; the counter goes up by one first.
    pub fn assert(&mut self, challenge: &[u8]) -> Assertion {
        self.counter += 1;
        let authenticator_data = self.auth_data_head(0);
        let client_data_json = self.client_data("webauthn.get", challenge);
        let mut signed = authenticator_data.clone();
        signed.extend_from_slice(&sha256(&client_data_json));
        let raw = self.key.sign(&signed).unwrap();
        let signature = match self.key.alg() {
            Algorithm::ES256 => fixed_to_der(&raw),
            _ => raw,
        };
        Assertion {
            credential_id: self.credential_id.clone(),
            authenticator_data,
            client_data_json,
            signature,
        }
    }
}

/// `r ‖ s` as `SEQUENCE { INTEGER r, INTEGER s }` (RFC 3279 §2.2.3), as authenticators send.
fn fixed_to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |v: &[u8]| {
        let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}
