//! The encrypted prescription path: CMS decryption with the trusted third party's key, then the
//! checks of the decrypted prescription. Uses the fuzz-only key in fuzz/ttp (seeds are encrypted
//! to it); never a production key.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use visiodroits::exchange::tarification::encrypted::Decryptor;
use visiodroits::exchange::wire;

fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| {
        let cert = openssl::x509::X509::from_pem(include_bytes!("../ttp/ttp.pem")).unwrap();
        let key = openssl::pkey::PKey::private_key_from_pem(include_bytes!("../ttp/ttp.key")).unwrap();
        Decryptor::new(cert, key).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(clear) = decryptor().decrypt(data) {
        let _ = wire::check_decrypted(&clear);
    }
    // The decrypted-content checks on their own, for reach beyond the cipher.
    let _ = wire::check_decrypted(data);
});
