//! The SOAP envelope reader and the Content-Type parser on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use visiodroits::soap::envelope::{parse, XmlLimits};
use visiodroits::soap::{parse_content_type, SoapVersion};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for version in [SoapVersion::V12, SoapVersion::V11] {
            let _ = parse(text, version, &XmlLimits::default());
        }
        let _ = parse_content_type(text);
    }
});
