//! Writing messages (the server's responses, the client's requests): a small string builder for
//! `vd:`-prefixed elements inside an envelope. Messages are small and their shape fixed by the WSDL, so direct writing beats a serializer.

use crate::{SoapVersion, VD_NS};

/// Builds the XML of a message body.
pub struct Xml {
    buf: String,
}

impl Xml {
    fn new(version: SoapVersion) -> Self {
        let mut buf = String::with_capacity(2048);
        buf.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env=""#);
        buf.push_str(version.namespace());
        buf.push_str(r#"" xmlns:vd=""#);
        buf.push_str(VD_NS);
        buf.push_str(r#""><env:Body>"#);
        Xml { buf }
    }

    /// Opens `<vd:name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("<vd:");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// Closes `</vd:name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</vd:");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<vd:name>text</vd:name>`, text escaped.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        escape_into(&mut self.buf, text);
        self.close(name)
    }

    /// A leaf only when there is a value.
    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    /// Raw markup written by the SOAP layer itself (Fault elements); never request data.
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    /// Escaped text inside an element opened with `raw`.
    pub fn text(&mut self, text: &str) -> &mut Self {
        escape_into(&mut self.buf, text);
        self
    }

    fn finish(mut self) -> String {
        self.buf.push_str("</env:Body></env:Envelope>");
        self.buf
    }
}

/// Writes a whole envelope whose body the closure fills.
pub fn envelope(version: SoapVersion, body: impl FnOnce(&mut Xml)) -> String {
    let mut xml = Xml::new(version);
    body(&mut xml);
    xml.finish()
}

/// Writes `vd:` elements without an envelope; the caller declares the namespace where the
/// fragment ends up.
pub fn fragment(body: impl FnOnce(&mut Xml)) -> String {
    let mut xml = Xml {
        buf: String::with_capacity(1024),
    };
    body(&mut xml);
    xml.buf
}

/// Copies the runs between the five special characters whole (they are ASCII, so a byte scan
/// never splits a UTF-8 sequence) rather than character by character.
fn escape_into(buf: &mut String, text: &str) {
    let mut rest = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            _ => continue,
        };
        buf.push_str(&text[rest..i]);
        buf.push_str(entity);
        rest = i + 1;
    }
    buf.push_str(&text[rest..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text() {
        let out = envelope(SoapVersion::V12, |x| {
            x.leaf("nom", "A <&> B");
        });
        assert!(out.contains("<vd:nom>A &lt;&amp;&gt; B</vd:nom>"), "{out}");
        assert!(out.starts_with("<?xml"));
    }

    #[test]
    fn escapes_every_special_character_and_keeps_multibyte_text_whole() {
        let out = fragment(|x| {
            x.leaf("a", "Léa \"d'Été\" <é>&");
            x.leaf("b", "");
            x.leaf("c", "&&");
        });
        assert_eq!(
            out,
            "<vd:a>Léa &quot;d&apos;Été&quot; &lt;é&gt;&amp;</vd:a><vd:b></vd:b><vd:c>&amp;&amp;</vd:c>"
        );
    }
}
