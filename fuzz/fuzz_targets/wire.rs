//! Every message's wire → domain checks, behind the envelope reader.
#![no_main]
use libfuzzer_sys::fuzz_target;
use visiodroits::exchange::wire;
use visiodroits::soap::envelope::{parse, XmlLimits};
use visiodroits::soap::SoapVersion;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(env) = parse(text, SoapVersion::V12, &XmlLimits::default()) {
            let _ = wire::check(&env.body);
        }
    }
});
